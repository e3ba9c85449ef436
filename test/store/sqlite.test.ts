/** The SQLite adapter against the conformance suite, on a fresh file per test; plus its own settings. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../src/store/index.js';
import { describeStoreConformance } from './conformance.js';

const root = mkdtempSync(join(tmpdir(), 'sequent-store-sqlite-'));
let n = 0;
afterAll(() => rmSync(root, { recursive: true, force: true }));

for (const [durability, writer] of [['full', 'thread'], ['process', 'thread'], ['full', 'inline']] as const) {
  describeStoreConformance(`sqlite (durability ${durability}, ${writer} writer)`, async () => {
    // a directory that does not exist yet: the store creates it
    const path = join(root, `t${++n}`, 'sequent.db');
    const open = () => openSqliteStore({ path, durability, writer });
    return {
      store: open(),
      reopen: async () => open(),
      another: async () => open(),
      dispose: async () => rmSync(join(path, '..'), { recursive: true, force: true }),
    };
  });
}

describe('sqlite settings', () => {
  const pragmas = (path: string) => {
    const db = new Database(path, { readonly: true });
    try {
      return { journal: db.pragma('journal_mode', { simple: true }) };
    } finally {
      db.close();
    }
  };

  it('uses WAL, synchronous FULL by default and NORMAL for durability "process"', async () => {
    for (const [durability, expected] of [[undefined, 2], ['full', 2], ['process', 1]] as const) {
      const path = join(root, `s${++n}.db`);
      const store = openSqliteStore(durability ? { path, durability } : { path });
      await store.init();
      // synchronous is per connection: read it through the store's own handle
      const handle = (store as unknown as { db: Database.Database }).db;
      expect(handle.pragma('synchronous', { simple: true })).toBe(expected);
      await store.close();
      expect(pragmas(path).journal).toBe('wal');
    }
  });

  it('refuses an unknown durability and a database from a newer schema', async () => {
    expect(() => openSqliteStore({ path: join(root, 'x.db'), durability: 'fast' as 'full' })).toThrow(/durability/);
    const path = join(root, `v${++n}.db`);
    const store = openSqliteStore({ path });
    await store.setMeta('store.schema', '999');
    await store.close();
    await expect(openSqliteStore({ path }).init()).rejects.toThrow(/schema version 999/);
  });

  it('commits on a writer thread for a file unless told otherwise, inline for :memory:', async () => {
    const threaded = openSqliteStore({ path: join(root, `w${++n}.db`) });
    const inline = openSqliteStore({ path: join(root, `w${++n}.db`), writer: 'inline' });
    const memory = openSqliteStore({ path: ':memory:' });
    expect([threaded.writerKind, inline.writerKind, memory.writerKind]).toEqual(['thread', 'inline', 'inline']);
    expect(() => openSqliteStore({ path: join(root, 'y.db'), writer: 'fork' as 'thread' })).toThrow(/writer/);
    await Promise.all([threaded.close(), inline.close(), memory.close()]);
  });

  it('rejects calls after close', async () => {
    const store = openSqliteStore({ path: join(root, `c${++n}.db`) });
    await store.init();
    await store.close();
    await store.close();
    await expect(store.getConv('g:a')).rejects.toThrow(/closed/);
  });
});
