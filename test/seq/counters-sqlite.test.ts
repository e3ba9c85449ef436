/** The counter conformance suite on the SQLite backend, a fresh file per test; plus the file's settings. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SEQ_ERROR_CODES } from '../../packages/server/src/seq/index.js';
import { openSqliteSeqBackend } from '../../packages/server/src/seq/backends/sqlite.js';
import { describeCounterConformance } from './counter-conformance.js';

const root = mkdtempSync(join(tmpdir(), 'sequent-counters-sqlite-'));
let n = 0;
afterAll(() => rmSync(root, { recursive: true, force: true }));

describeCounterConformance(
  'sqlite',
  async () => {
    // A directory that does not exist yet: the backend creates it.
    const dir = join(root, `t${++n}`);
    const path = join(dir, 'seq.db');
    return {
      open: async () => openSqliteSeqBackend(path),
      child: { kind: 'sqlite', path },
      dispose: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
  { propertyRuns: 40, crashRounds: 20 },
);

describe('sqlite sequence backend settings', () => {
  it('uses WAL, synchronous FULL and a busy timeout, with prefixed STRICT tables', async () => {
    const path = join(root, `settings-${++n}.db`);
    const backend = openSqliteSeqBackend(path, { tablePrefix: 'ctr_', busyTimeoutMs: 1234 });
    const raw = (backend as unknown as { db: Database.Database }).db;
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.pragma('synchronous', { simple: true })).toBe(2);
    expect(raw.pragma('busy_timeout', { simple: true })).toBe(1234);
    await backend.close();
    const db = new Database(path, { readonly: true });
    try {
      const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`).pluck().all();
      expect(tables).toEqual(['ctr_meta', 'ctr_sections']);
    } finally {
      db.close();
    }
  });

  it('refuses a table prefix that is not a plain identifier', () => {
    expect(() => openSqliteSeqBackend(join(root, 'bad.db'), { tablePrefix: 'x"; DROP TABLE y; --' })).toThrow(RangeError);
  });

  it('refuses calls after close with code "closed"', async () => {
    const backend = openSqliteSeqBackend(join(root, `closed-${++n}.db`));
    await backend.close();
    await expect(backend.acquire('s', 'A', 1000)).rejects.toMatchObject({ code: 'closed' });
  });
});

describe('docs/seq.md', () => {
  it('names every sequence error code', () => {
    const page = readFileSync(new URL('../../docs/seq.md', import.meta.url), 'utf8');
    for (const code of Object.keys(SEQ_ERROR_CODES)) expect(page).toContain(`\`${code}\``);
  });
});
