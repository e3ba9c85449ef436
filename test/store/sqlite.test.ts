/** The SQLite adapter against the conformance suite, on a fresh file per test; plus its own settings. */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { prepareChatWrites } from '../../packages/server/src/store/sqlite-chat.js';
import { openSqliteStore } from '../../packages/server/src/store/sqlite.js';
import { SQLITE_SCHEMA_VERSION } from '../../packages/server/src/store/sqlite.js';
import { describeStoreConformance, msg } from './conformance.js';
import { describeFencesIgnored } from './fences-ignored.js';

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
  }, { pipelined: true });
}

describeFencesIgnored('sqlite', async () => {
  const path = join(root, `f${++n}`, 'sequent.db');
  return { store: openSqliteStore({ path }), dispose: async () => rmSync(join(path, '..'), { recursive: true, force: true }) };
});

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

  it('migrates a schema 1 file: each device keeps its last dseq, entries stay readable', async () => {
    const path = join(root, `m${++n}.db`);
    const v1 = new Database(path);
    v1.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID, STRICT;
      CREATE TABLE convs (conv TEXT PRIMARY KEY, kind TEXT NOT NULL, last INTEGER NOT NULL DEFAULT 0, last_ts INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID, STRICT;
      CREATE TABLE entries (conv TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, mid TEXT NOT NULL, ts INTEGER NOT NULL,
        from_user TEXT NOT NULL, dev TEXT NOT NULL, cmid TEXT, dseq INTEGER, body TEXT NOT NULL, ctx TEXT, UNIQUE (conv, seq)) STRICT;
      CREATE UNIQUE INDEX entries_cmid ON entries (conv, from_user, dev, cmid) WHERE cmid IS NOT NULL;
      CREATE INDEX entries_dseq ON entries (conv, from_user, dev, dseq) WHERE dseq IS NOT NULL;
      CREATE TABLE memberships (conv TEXT NOT NULL, member TEXT NOT NULL, from_seq INTEGER NOT NULL, to_seq INTEGER, PRIMARY KEY (conv, member, from_seq)) WITHOUT ROWID, STRICT;
      INSERT INTO meta VALUES ('store.schema', '1');
      INSERT INTO convs VALUES ('g:a', 'group', 3, 103);
      INSERT INTO entries VALUES ('g:a', 1, 'msg', '1', 101, 'ann', 'p', 'x', 4, '1', NULL),
                                 ('g:a', 2, 'msg', '2', 102, 'ann', 'p', 'y', 5, '2', NULL),
                                 ('g:a', 3, 'msg', '3', 103, 'bob', 'q', 'z', 1, '3', NULL);
    `);
    v1.close();
    const store = openSqliteStore({ path });
    expect(await store.lane('g:a', 'ann', 'p')).toEqual({ lastDseq: 5, minCmid: 'x', maxCmid: 'y' });
    expect((await store.lane('g:a', 'bob', 'q')).lastDseq).toBe(1);
    expect((await store.lane('g:a', 'bob', 'p')).lastDseq).toBe(0);
    expect((await store.read('g:a', 0, 3, 10)).map((e) => e.cmid)).toEqual(['x', 'y', 'z']);
    expect(await store.getMeta('store.schema')).toBe(String(SQLITE_SCHEMA_VERSION));
    await store.close();
    const check = new Database(path, { readonly: true });
    const indexes = check.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries' AND sql IS NOT NULL ORDER BY name").all();
    // v2 dropped the dseq index; v3 leads the cmid index with the cmid; v5 adds the chat-state ones.
    expect(indexes.map((i) => i.name)).toEqual(['entries_by_cmid', 'entries_by_ref', 'entries_deleted']);
    check.close();
  });

  it.each([2, 3])('migrates a schema %i file: lanes get their cmid range, dedup and new commits work', async (version) => {
    const path = join(root, `m${++n}.db`);
    const old = new Database(path);
    old.exec(readFileSync(new URL(`./fixtures/sqlite-schema-v${version}.sql`, import.meta.url), 'utf8'));
    old.exec(`
      INSERT INTO meta VALUES ('store.schema', '${version}');
      INSERT INTO convs VALUES ('g:a', 'group', 4, 104);
      INSERT INTO entries VALUES ('g:a', 1, 'system', '1', 101, 'ann', 'server', NULL, NULL, '{}', NULL),
                                 ('g:a', 2, 'msg', '2', 102, 'ann', 'p', 'k-2', 1, '1', NULL),
                                 ('g:a', 3, 'msg', '3', 103, 'ann', 'p', 'k-9', 2, '2', NULL),
                                 ('g:a', 4, 'msg', '4', 104, 'ann', 'p', 'k-é', 3, '3', NULL);
      INSERT INTO device_lanes VALUES ('g:a', 'ann', 'p', 3);
      INSERT INTO memberships VALUES ('g:a', 'ann', 1, NULL);
    `);
    old.close();
    const store = openSqliteStore({ path });
    // Only printable-ASCII cmids are ranged; 'k-é' is always looked up instead.
    expect(await store.lane('g:a', 'ann', 'p')).toEqual({ lastDseq: 3, minCmid: 'k-2', maxCmid: 'k-9' });
    expect((await store.findByCmid('g:a', 'ann', 'p', 'k-é'))?.seq).toBe(4);
    await store.commit({ newConvs: [], entries: [msg('g:a', 5, 'ann', 'p', 'k-5', 4, 5)], memberships: [] });
    expect(await store.lane('g:a', 'ann', 'p')).toEqual({ lastDseq: 4, minCmid: 'k-2', maxCmid: 'k-9' });
    await expect(store.commit({ newConvs: [], entries: [msg('g:a', 6, 'ann', 'p', 'k-2', 5, 6)], memberships: [] })).rejects.toThrow();
    expect(await store.getMeta('store.schema')).toBe(String(SQLITE_SCHEMA_VERSION));
    await store.close();
    const check = new Database(path, { readonly: true });
    const indexes = check.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries' AND sql IS NOT NULL ORDER BY name").all();
    expect(indexes.map((i) => i.name)).toEqual(['entries_by_cmid', 'entries_by_ref', 'entries_deleted']);
    check.close();
  });

  it('migrates a schema 4 file: what was stored counts as read, and unread, edits and deletes work from there on', async () => {
    const path = join(root, `m${++n}.db`);
    const old = new Database(path);
    old.exec(readFileSync(new URL('./fixtures/sqlite-schema-v4.sql', import.meta.url), 'utf8'));
    old.exec(`
      INSERT INTO meta VALUES ('store.schema', '4');
      INSERT INTO convs VALUES ('g:a', 'group', 5, 105), ('g:b', 'group', 2, 202);
      INSERT INTO entries VALUES ('g:a', 1, 'system', '1', 101, 'ann', 'server', NULL, NULL, '{}', NULL),
                                 ('g:a', 2, 'msg', '2', 102, 'ann', 'p', 'a-1', 1, '"one"', NULL),
                                 ('g:a', 3, 'msg', '3', 103, 'bob', 'p', 'b-1', 1, '"two"', NULL),
                                 ('g:a', 4, 'system', '4', 104, 'ann', 'p', NULL, NULL, '{}', NULL),
                                 ('g:a', 5, 'msg', '5', 105, 'ann', 'p', 'a-2', 2, '"three"', NULL),
                                 ('g:b', 1, 'system', '6', 201, 'bob', 'server', NULL, NULL, '{}', NULL),
                                 ('g:b', 2, 'msg', '7', 202, 'bob', 'p', 'b-2', 1, '"four"', NULL);
      INSERT INTO device_lanes VALUES ('g:a', 'ann', 'p', 2, 'a-1', 'a-2'), ('g:a', 'bob', 'p', 1, 'b-1', 'b-1'), ('g:b', 'bob', 'p', 1, 'b-2', 'b-2');
      INSERT INTO memberships VALUES ('g:a', 'ann', 1, NULL), ('g:a', 'bob', 1, 4), ('g:b', 'bob', 1, NULL);
    `);
    old.close();
    const store = openSqliteStore({ path });
    const rows = await store.listConvs('bob');
    expect(rows.map((r) => [r.conv, r.read, r.unread])).toEqual([['g:b', 2, 0], ['g:a', 4, 0]]);
    expect((await store.listConvs('ann')).map((r) => [r.conv, r.read, r.unread])).toEqual([['g:a', 5, 0]]);
    expect((await store.convsState('bob')).version).toBeGreaterThan(0);
    // The prefix counts were rebuilt: a new message from someone else is one unread, its delete none.
    const next = (seq: number, kind: 'msg' | 'delete', body: unknown, ref?: number) => ({
      conv: 'g:a', seq, kind, mid: String(100 + seq), ts: 200 + seq, from: 'ann', dev: 'p', cmid: `a-${seq}`, dseq: seq, body, ...(ref ? { ref } : {}),
    });
    await store.commit({ newConvs: [], entries: [next(6, 'msg', 'five')], memberships: [], reads: [] });
    await store.commit({ newConvs: [], entries: [], memberships: [{ op: 'add', conv: 'g:a', user: 'cy', seq: 6 }] });
    expect((await store.listConvs('cy'))[0]).toMatchObject({ read: 5, unread: 1 });
    await store.commit({ newConvs: [], entries: [next(7, 'delete', null, 6)], memberships: [] });
    expect((await store.listConvs('cy'))[0]).toMatchObject({ unread: 0 });
    expect((await store.read('g:a', 1, 3, 2)).map((e) => e.body)).toEqual(['one', 'two']);
    expect(await store.getMeta('store.schema')).toBe(String(SQLITE_SCHEMA_VERSION));
    await store.close();
  });

  it('migrates a schema 5 file: the entries move to a table keyed by (conv, seq), and keep their order, dedup, unread and deletes', async () => {
    const path = join(root, `m${++n}.db`);
    const old = new Database(path);
    old.exec(readFileSync(new URL('./fixtures/sqlite-schema-v5.sql', import.meta.url), 'utf8'));
    // Rows in arrival order across two conversations, as a rowid table holds them.
    old.exec(`
      INSERT INTO meta VALUES ('store.schema', '5');
      UPDATE counters SET value = 3 WHERE name = 'version';
      INSERT INTO convs VALUES ('g:a', 'group', 3, 103, 2), ('g:b', 'group', 3, 203, 2);
      INSERT INTO entries VALUES ('g:b', 1, 'system', '1', 201, 'bob', 'server', NULL, NULL, '{}', NULL, NULL, NULL, NULL, 0),
                                 ('g:a', 1, 'system', '2', 101, 'ann', 'server', NULL, NULL, '{}', NULL, NULL, NULL, NULL, 0),
                                 ('g:b', 2, 'msg', '3', 202, 'bob', 'p', 'b-1', 1, '"four"', NULL, NULL, NULL, NULL, 1),
                                 ('g:a', 2, 'msg', '4', 102, 'ann', 'p', 'a-1', 1, '"one"', '{"k":1}', NULL, NULL, NULL, 1),
                                 ('g:a', 3, 'msg', '5', 103, 'bob', 'q', 'b-2', 1, '"two"', NULL, NULL, NULL, NULL, 2),
                                 ('g:b', 3, 'msg', '6', 203, 'bob', 'p', 'b-3', 2, '"five"', NULL, NULL, NULL, NULL, 2);
      INSERT INTO device_lanes VALUES ('g:a', 'ann', 'p', 1, 'a-1', 'a-1'), ('g:a', 'bob', 'q', 1, 'b-2', 'b-2'),
                                      ('g:b', 'bob', 'p', 2, 'b-1', 'b-3');
      INSERT INTO memberships VALUES ('g:a', 'ann', 1, NULL), ('g:a', 'bob', 1, NULL), ('g:b', 'ann', 1, NULL), ('g:b', 'bob', 1, NULL);
      INSERT INTO member_state VALUES ('g:a', 'ann', 2, 2, 2, 1), ('g:a', 'bob', 3, 3, 2, 1), ('g:b', 'ann', 1, 1, 3, 1), ('g:b', 'bob', 3, 3, 3, 1);
    `);
    old.close();
    const store = openSqliteStore({ path });
    expect((await store.read('g:a', 0, 3, 10)).map((e) => [e.seq, e.body, e.cmid])).toEqual([[1, {}, undefined], [2, 'one', 'a-1'], [3, 'two', 'b-2']]);
    expect((await store.read('g:a', 1, 3, 10))[0]).toMatchObject({ mid: '4', ts: 102, from: 'ann', dev: 'p', dseq: 1, ctx: { k: 1 } });
    expect((await store.readJson!('g:b', 0, 3, 10)).map((text) => JSON.parse(text).seq)).toEqual([1, 2, 3]);
    expect((await store.findByCmid('g:b', 'bob', 'p', 'b-3'))?.seq).toBe(3);
    expect((await store.listConvs('ann')).map((r) => [r.conv, r.read, r.unread])).toEqual([['g:b', 1, 2], ['g:a', 2, 1]]);
    // A stored cmid is still refused, the fence still holds, and deletes still scrub and count.
    await expect(store.commit({ newConvs: [], entries: [msg('g:a', 4, 'ann', 'p', 'a-1', 2, 'again')], memberships: [] })).rejects.toThrow();
    await expect(store.commit({ newConvs: [], entries: [msg('g:a', 3, 'ann', 'p', 'a-3', 2, 'stale')], memberships: [] })).rejects.toThrow();
    const del = { conv: 'g:a', seq: 4, kind: 'delete' as const, mid: '7', ts: 104, from: 'bob', dev: 'q', cmid: 'b-3', dseq: 2, body: null, ref: 3 };
    await store.commit({ newConvs: [], entries: [del], memberships: [] });
    expect((await store.read('g:a', 2, 3, 1))[0]).toMatchObject({ body: null, deleted: 4 });
    expect((await store.listConvs('ann')).find((r) => r.conv === 'g:a')).toMatchObject({ last: 4, unread: 0 });
    expect(await store.getMeta('store.schema')).toBe(String(SQLITE_SCHEMA_VERSION));
    await store.close();
    const check = new Database(path, { readonly: true });
    const table = check.prepare<[], { sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'entries'").get();
    expect(table?.sql).toMatch(/PRIMARY KEY \(conv, seq\)\s*\) WITHOUT ROWID, STRICT$/);
    const indexes = check.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries' AND sql IS NOT NULL ORDER BY name").all();
    expect(indexes.map((i) => i.name)).toEqual(['entries_by_cmid', 'entries_by_ref', 'entries_deleted']);
    expect(check.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'entries_v6'").get()).toEqual({ n: 0 });
    check.close();
  });

  it('reads a page of a conversation as one range of the table, not a lookup per row', async () => {
    const path = join(root, `p${++n}.db`);
    const store = openSqliteStore({ path });
    await store.init();
    const db = new Database(path, { readonly: true });
    const plan = db
      .prepare<[], { detail: string }>("EXPLAIN QUERY PLAN SELECT body FROM entries WHERE conv = 'g' AND seq > 1 AND seq <= 9 ORDER BY seq LIMIT 5")
      .all()
      .map((row) => row.detail);
    expect(plan).toEqual(['SEARCH entries USING PRIMARY KEY (conv=? AND seq>? AND seq<?)']);
    db.close();
    await store.close();
  });

  it('counts deleted messages and scrubs edits through their partial indexes, not a scan of the conversation by its key', async () => {
    const path = join(root, `p${++n}.db`);
    const store = openSqliteStore({ path });
    await store.init();
    const db = new Database(path);
    const plan = (sql: string, params: Record<string, unknown> = {}) =>
      db.prepare<[Record<string, unknown>], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`).all(params).map((row) => row.detail);
    const reads = (store as unknown as { statements: Record<string, { source?: string }> }).statements;
    const params: Record<string, Record<string, unknown>> = {
      list: { user: 'u', limit: 10 }, since: { user: 'u', since: 1, limit: 10 }, atVersion: { user: 'u', ver: 1 }, unread: { user: 'u' },
    };
    for (const [name, bound] of Object.entries(params)) {
      const details = plan(reads[name]!.source!, bound);
      expect(details).toContain('SEARCH d USING INDEX entries_deleted (conv=? AND seq>? AND seq<?)');
      expect(details.filter((d) => /^SCAN (d|e|u|r)\b/.test(d) || /entries.*PRIMARY KEY \(conv=\? AND seq>/.test(d))).toEqual([]);
    }
    expect(plan(prepareChatWrites(db).scrubEdits.source.replace(/\?/g, '1'))).toEqual(['SEARCH entries USING INDEX entries_by_ref (conv=? AND ref=?)']);
    db.close();
    await store.close();
  });

  it.each([['a short body', 40], ['a body spilling to overflow pages', 20_000]])(
    'a delete leaves no byte of %s in the database file or its WAL',
    async (_name, size) => {
      const path = join(root, `sd${++n}.db`);
      const store = openSqliteStore({ path });
      await store.init();
      const marker = `SECRET-${size}-`;
      const text = (marker + 'x'.repeat(size)).slice(0, Math.max(size, marker.length + 1));
      const entry = (seq: number, kind: 'system' | 'msg' | 'delete', body: unknown, ref?: number) => ({
        conv: 'g:s', seq, kind, mid: String(seq), ts: seq, from: 'u', dev: 'd', ...(kind === 'system' ? {} : { cmid: `c${seq}`, dseq: seq }), body, ...(ref ? { ref } : {}),
      });
      await store.commit({ newConvs: [{ conv: 'g:s', kind: 'group' }], entries: [entry(1, 'system', {})], memberships: [{ op: 'add', conv: 'g:s', user: 'u', seq: 1 }] });
      await store.commit({ newConvs: [], entries: [entry(2, 'msg', { text }), entry(3, 'msg', { text: 'kept' })], memberships: [] });
      const present = () =>
        [path, `${path}-wal`].some((file) => {
          try {
            return readFileSync(file).includes(marker);
          } catch {
            return false;
          }
        });
      expect(present()).toBe(true);
      await store.commit({ newConvs: [], entries: [entry(4, 'delete', null, 2)], memberships: [] });
      // The writer scrubs as soon as it is idle after the commit.
      const deadline = Date.now() + 5000;
      while (present() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(present()).toBe(false);
      expect((await store.read('g:s', 1, 3, 2)).map((e) => e.body)).toEqual([null, { text: 'kept' }]);
      await store.close();
      expect(present()).toBe(false);
    },
  );

  it('finds a cmid with one seek of the cmid-led index', async () => {
    const path = join(root, `p${++n}.db`);
    const store = openSqliteStore({ path });
    await store.init();
    const db = new Database(path, { readonly: true });
    const plan = db
      .prepare<[], { detail: string }>("EXPLAIN QUERY PLAN SELECT seq FROM entries WHERE conv = 'g' AND from_user = 'u' AND dev = 'd' AND cmid = 'c'")
      .all()
      .map((row) => row.detail);
    expect(plan).toEqual(['SEARCH entries USING COVERING INDEX entries_by_cmid (cmid=? AND conv=? AND from_user=? AND dev=?)']);
    db.close();
    await store.close();
  });

  it('keeps the WAL bounded: the writer thread checkpoints between commits, as SQLite would inside them', async () => {
    const path = join(root, `k${++n}.db`);
    const store = openSqliteStore({ path });
    await store.init();
    await store.commit({ newConvs: [{ conv: 'g:k', kind: 'group' }], entries: [], memberships: [] });
    const body = { text: 'x'.repeat(2000) };
    let seq = 0;
    // 300 transactions of 20 entries, about 12 MB of rows: without checkpoints the WAL would hold all of it.
    for (let commit = 0; commit < 300; commit++) {
      const entries = Array.from({ length: 20 }, () => {
        seq++;
        return msg('g:k', seq, 'u', 'd', `c${seq}`, seq, body);
      });
      await store.commit({ newConvs: [], entries, memberships: [] });
    }
    // SQLite's automatic checkpoint would keep it near 1000 pages (4 MB); without any, it holds everything.
    expect(statSync(`${path}-wal`).size).toBeLessThan(8 * 1024 * 1024);
    expect((await store.read('g:k', seq - 1, seq, 1))[0]).toMatchObject({ seq, body });
    await store.close();
  });

  it('rejects calls after close', async () => {
    const store = openSqliteStore({ path: join(root, `c${++n}.db`) });
    await store.init();
    await store.close();
    await store.close();
    await expect(store.getConv('g:a')).rejects.toThrow(/closed/);
  });
});
