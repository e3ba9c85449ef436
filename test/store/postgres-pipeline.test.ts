/**
 * The PostgreSQL store's pipelined commits against the real server: commits of
 * different conversations run at once and still settle in call order; those
 * sharing a conversation run one after the other; a failed batch takes the later
 * batch that continues its conversation down with it, and nothing else. Per-user
 * versions: commits sharing no user never wait for each other, a reader
 * following `since` misses no change while two stores commit side by side, and a
 * schema of the one counter moves over without a version going down.
 *
 * The test holds rows locked from a connection of its own to keep a chosen
 * commit in flight for as long as it needs.
 */
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Entry } from '../../packages/client/src/protocol/index.js';
import type { CommitBatch, ConvListing, MembershipChange, Store } from '../../packages/server/src/store/index.js';
import { openPostgresStore } from '../../packages/server/src/store/postgres.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { msg, system } from './conformance.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const run = `p${process.pid}_${Date.now().toString(36)}`;
let n = 0;
const schemas: string[] = [];
const open: Store[] = [];
const clients: pg.Client[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => {});
  for (const s of open.splice(0)) await s.close();
});

afterAll(async () => {
  if (!available || schemas.length === 0) return;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

async function freshStore(schema = `sequent_pipe_${run}_${++n}`): Promise<{ store: Store; schema: string }> {
  if (!schemas.includes(schema)) schemas.push(schema);
  const store = openPostgresStore({ url: POSTGRES_URL, schema, maxConnections: 6 });
  open.push(store);
  await store.init();
  return { store, schema };
}

async function connection(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  clients.push(client);
  return client;
}

/** A transaction of the test's own holding `sql`'s row locks until release(). */
async function holding(sql: string, values: unknown[]): Promise<{ release(): Promise<void> }> {
  const client = await connection();
  await client.query('BEGIN');
  const { rowCount } = await client.query(sql, values);
  expect(rowCount).toBeGreaterThan(0);
  return { release: async () => void (await client.query('ROLLBACK')) };
}

const batch = (b: Partial<CommitBatch>): CommitBatch => ({
  newConvs: b.newConvs ?? [],
  entries: b.entries ?? [],
  memberships: b.memberships ?? [],
  ...(b.reads ? { reads: b.reads } : {}),
  ...(b.fences ? { fences: b.fences } : {}),
});
const add = (conv: string, user: string, seq: number): MembershipChange => ({ op: 'add', conv, user, seq });

function createGroup(conv: string, owner: string, members: string[]): CommitBatch {
  return batch({
    newConvs: [{ conv, kind: 'group' }],
    entries: [system(conv, 1, owner, { op: 'create', members })],
    memberships: [owner, ...members].map((u) => add(conv, u, 1)),
  });
}

const readAll = (store: Store, conv: string): Promise<Entry[]> => store.read(conv, 0, Number.MAX_SAFE_INTEGER, 1_000_000);

/** Each commit's index as its promise settles, and how it settled. */
function track(commits: Promise<void>[]): { order: number[]; outcomes: Promise<PromiseSettledResult<void>[]> } {
  const order: number[] = [];
  commits.forEach((c, i) =>
    c.then(
      () => order.push(i),
      () => order.push(i),
    ),
  );
  return { order, outcomes: Promise.allSettled(commits) };
}

/** Backends of this test's stores waiting for a row lock in `schema`'s tables. */
async function lockWaiters(schema: string): Promise<number> {
  const client = await connection();
  const { rows } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1`,
    [`%${schema}.%`],
  );
  await client.end();
  clients.splice(clients.indexOf(client), 1);
  return Number(rows[0]!.n);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe.skipIf(!available)('PostgreSQL store: pipelined commits', () => {
  it('says it pipelines commits', async () => {
    const { store } = await freshStore();
    expect(store.pipelinesCommits).toBe(true);
  });

  it('a commit of another conversation is stored while an earlier one is held, and yet settles after it', async () => {
    const { store, schema } = await freshStore();
    await store.commit(createGroup('g:a', 'alice', ['bob']));
    await store.commit(createGroup('g:b', 'carol', ['dave']));
    const lock = await holding(`SELECT 1 FROM ${schema}.convs WHERE conv = 'g:a' FOR UPDATE`, []);
    const first = msg('g:a', 2, 'alice', 'd', 'a2', 1, 'held');
    const second = msg('g:b', 2, 'carol', 'd', 'b2', 1, 'free');
    const { order, outcomes } = track([store.commit(batch({ entries: [first] })), store.commit(batch({ entries: [second] }))]);
    // The second is durable (seen from another connection) while the first still waits for its row ...
    const other = openPostgresStore({ url: POSTGRES_URL, schema, maxConnections: 1 });
    open.push(other);
    await until('g:b has its entry', async () => (await other.getConv('g:b'))?.last === 2);
    expect((await other.getConv('g:a'))?.last).toBe(1);
    await sleep(100);
    // ... but its promise waits for the first's: callers are answered in call order.
    expect(order).toEqual([]);
    await lock.release();
    expect((await outcomes).map((o) => o.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(order).toEqual([0, 1]);
    expect((await readAll(store, 'g:a')).at(-1)).toEqual(first);
    expect((await readAll(store, 'g:b')).at(-1)).toEqual(second);
  });

  it('a commit sharing a conversation with one in flight does not start before it ends; both are stored in order', async () => {
    const { store, schema } = await freshStore();
    await store.commit(createGroup('g:a', 'alice', ['bob']));
    await store.commit(createGroup('g:b', 'carol', []));
    const lock = await holding(`SELECT 1 FROM ${schema}.convs WHERE conv = 'g:a' FOR UPDATE`, []);
    const entries = [msg('g:a', 2, 'alice', 'd', 'a2', 1, 2), msg('g:a', 3, 'bob', 'd', 'a3', 1, 3), msg('g:b', 2, 'carol', 'd', 'b2', 1, 2)];
    // the second touches g:a and g:b: it waits for the first (g:a) and so holds up nothing of g:b's but its own
    const { order, outcomes } = track([
      store.commit(batch({ entries: [entries[0]!] })),
      store.commit(batch({ entries: [entries[1]!, entries[2]!] })),
    ]);
    await until('the first commit waits for the row', async () => (await lockWaiters(schema)) === 1);
    await sleep(200);
    // Only the first is at the row: the second has not begun (had it, it would wait there too, or take the row first).
    expect(await lockWaiters(schema)).toBe(1);
    expect((await store.getConv('g:b'))?.last).toBe(1);
    await lock.release();
    expect((await outcomes).map((o) => o.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(order).toEqual([0, 1]);
    expect((await readAll(store, 'g:a')).slice(1)).toEqual(entries.slice(0, 2));
    expect((await readAll(store, 'g:b')).slice(1)).toEqual([entries[2]]);
  });

  it('a failed batch fails the later one continuing its conversation, which stores nothing; an independent one commits', async () => {
    const { store, schema } = await freshStore();
    for (const conv of ['g:a', 'g:b', 'g:c']) await store.commit(createGroup(conv, 'alice', ['bob']));
    await store.commit(batch({ entries: [msg('g:a', 2, 'alice', 'd', 'taken', 1, 0)] }));
    const lock = await holding(`SELECT 1 FROM ${schema}.convs WHERE conv = 'g:a' FOR UPDATE`, []);
    // 1: g:a 3..4, the second entry reusing a stored cmid: refused once it runs.
    const failing = batch({ entries: [msg('g:a', 3, 'alice', 'd', 'a3', 2, 3), msg('g:a', 4, 'alice', 'd', 'taken', 3, 4)] });
    // 2: continues g:a from 4, and writes g:c, a member and a read: all of it must go.
    const dependent = batch({
      entries: [msg('g:a', 5, 'bob', 'p', 'a5', 1, 5), msg('g:c', 2, 'bob', 'p', 'c2', 1, 2)],
      memberships: [add('g:c', 'carol', 2)],
      reads: [{ conv: 'g:c', user: 'alice', seq: 2, public: true }],
    });
    // 3: g:b only.
    const independent = batch({ entries: [msg('g:b', 2, 'bob', 'p', 'b2', 1, 2)] });
    const before = { c: await readAll(store, 'g:c'), members: await store.getMemberships('g:c'), reads: await store.readPositions('g:c'), carol: await store.listConvs('carol') };
    const { order, outcomes } = track([store.commit(failing), store.commit(dependent), store.commit(independent)]);
    await until('g:b has its entry', async () => (await store.getConv('g:b'))?.last === 2);
    await lock.release();
    const settled = await outcomes;
    expect(settled.map((o) => o.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    for (const o of settled.slice(0, 2)) expect((o as PromiseRejectedResult).reason).toMatchObject({ name: 'StoreConflictError' });
    expect(order).toEqual([0, 1, 2]);
    expect(await store.getConv('g:a')).toMatchObject({ last: 2 });
    expect((await readAll(store, 'g:a')).map((e) => e.seq)).toEqual([1, 2]);
    expect(await store.getConv('g:c')).toMatchObject({ last: 1 });
    expect({ c: await readAll(store, 'g:c'), members: await store.getMemberships('g:c'), reads: await store.readPositions('g:c'), carol: await store.listConvs('carol') }).toEqual(before);
    expect((await readAll(store, 'g:b')).at(-1)).toEqual(independent.entries[0]);
    // The log goes on from what is stored.
    await store.commit(batch({ entries: [msg('g:a', 3, 'alice', 'd', 'a3', 2, 3)] }));
    expect((await readAll(store, 'g:a')).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('a batch refused before any write (a fenced batch missing a fence) is still answered in call order', async () => {
    const { store, schema } = await freshStore();
    await store.commit(createGroup('g:a', 'alice', []));
    const lock = await holding(`SELECT 1 FROM ${schema}.convs WHERE conv = 'g:a' FOR UPDATE`, []);
    const unfencedConv = batch({ entries: [msg('g:b', 1, 'alice', 'd', 'b1', 1, 0)], fences: new Map([['g:c', { slot: 1, epoch: 1 }]]) });
    const { order, outcomes } = track([store.commit(batch({ entries: [msg('g:a', 2, 'alice', 'd', 'a2', 1, 0)] })), store.commit(unfencedConv)]);
    await sleep(100);
    expect(order).toEqual([]);
    await lock.release();
    const settled = await outcomes;
    expect(settled.map((o) => o.status)).toEqual(['fulfilled', 'rejected']);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(TypeError);
    expect(order).toEqual([0, 1]);
  });

  it('many commits over a few conversations, issued without waiting: each log holds them all in seq order, gapless', async () => {
    const { store } = await freshStore();
    const convs = Array.from({ length: 8 }, (_, i) => `g:m${i}`);
    for (const conv of convs) await store.commit(createGroup(conv, 'alice', ['bob', `u${conv}`]));
    const last = new Map(convs.map((c) => [c, 1]));
    const sent = new Map<string, Entry[]>(convs.map((c) => [c, []]));
    const commits: Promise<void>[] = [];
    let seed = 7;
    const pick = () => (seed = (seed * 48271) % 2147483647) % convs.length;
    for (let i = 0; i < 300; i++) {
      // one to three conversations a batch, one to three entries each
      const touched = new Set([convs[pick()]!, ...(i % 3 === 0 ? [convs[pick()]!] : []), ...(i % 5 === 0 ? [convs[pick()]!] : [])]);
      const entries: Entry[] = [];
      for (const conv of touched) {
        for (let k = 0; k <= i % 3; k++) {
          const seq = last.get(conv)! + 1;
          last.set(conv, seq);
          const entry = msg(conv, seq, k % 2 ? 'alice' : 'bob', 'd', `${conv}-${seq}`, seq, { i, k });
          entries.push(entry);
          sent.get(conv)!.push(entry);
        }
      }
      commits.push(store.commit(batch({ entries })));
    }
    const { order, outcomes } = track(commits);
    expect((await outcomes).every((o) => o.status === 'fulfilled')).toBe(true);
    expect(order).toEqual(commits.map((_, i) => i));
    for (const conv of convs) expect((await readAll(store, conv)).slice(1)).toEqual(sent.get(conv));
  });

  it('commits that share no user do not wait for each other on versions; one sharing a user waits for its row', async () => {
    const { store, schema } = await freshStore();
    await store.commit(createGroup('g:ab', 'alice', ['bob']));
    await store.commit(createGroup('g:cd', 'carol', ['dave']));
    const aliceBefore = (await store.convsState('alice')).version;
    const lock = await holding(`SELECT 1 FROM ${schema}.user_versions WHERE member = 'bob' FOR UPDATE`, []);
    const { outcomes } = track([store.commit(batch({ entries: [msg('g:ab', 2, 'alice', 'd', 'x', 1, 0)] })), store.commit(batch({ entries: [msg('g:cd', 2, 'carol', 'd', 'y', 1, 0)] }))]);
    // g:cd (carol, dave) commits while g:ab waits for bob's version row.
    await until('g:cd has its entry', async () => (await store.getConv('g:cd'))?.last === 2);
    expect((await store.getConv('g:ab'))?.last).toBe(1);
    expect(await lockWaiters(schema)).toBe(1);
    await lock.release();
    expect((await outcomes).map((o) => o.status)).toEqual(['fulfilled', 'fulfilled']);
    expect((await store.convsState('alice')).version).toBeGreaterThan(aliceBefore);
  });

  it('a commit that has taken a user’s version holds back the next one of that user until it ends, so since never skips it', async () => {
    const { store, schema } = await freshStore();
    const other = openPostgresStore({ url: POSTGRES_URL, schema, maxConnections: 2 });
    open.push(other);
    await store.commit(createGroup('g:x', 'xavier', ['eve']));
    await store.commit(createGroup('g:y', 'yann', ['eve']));
    const v0 = (await store.convsState('eve')).version;
    // The commit of g:x stops after taking eve's version, at the write of her row of g:x.
    const lock = await holding(`SELECT 1 FROM ${schema}.member_state WHERE conv = 'g:x' AND member = 'eve' FOR UPDATE`, []);
    const { outcomes } = track([store.commit(batch({ entries: [msg('g:x', 2, 'xavier', 'd', 'x2', 1, 0)] })), other.commit(batch({ entries: [msg('g:y', 2, 'yann', 'd', 'y2', 1, 0)] }))]);
    // Both wait (g:y at eve's version row), or (were versions not ordered by commit) g:y is stored.
    let waiting = 0;
    await until('both commits wait, or g:y is stored', async () => (waiting = await lockWaiters(schema)) === 2 || (await other.getConv('g:y'))?.last === 2);
    // A reader now, then once more after both committed: between them it sees both changes.
    const mid = await store.convsSnapshot('eve', { since: v0, sinceLimit: 500, fullLimit: 500 });
    await lock.release();
    expect((await outcomes).map((o) => o.status)).toEqual(['fulfilled', 'fulfilled']);
    const after = await store.convsSnapshot('eve', { since: mid.version, sinceLimit: 500, fullLimit: 500 });
    const changed = [...mid.rows, ...after.rows].filter((r) => r.last === 2).map((r) => r.conv);
    expect(changed.sort()).toEqual(['g:x', 'g:y']);
    // Because g:y's commit waited at eve's version row the while (it had been visible first, numbered above g:x's).
    expect(waiting).toBe(2);
    expect(mid.rows).toEqual([]);
  });

  it('a reader following since misses no change while two stores commit conversations sharing its user', async () => {
    const { store, schema } = await freshStore();
    const other = openPostgresStore({ url: POSTGRES_URL, schema, maxConnections: 6 });
    open.push(other);
    await other.init();
    // eve is in every conversation; the two stores (two nodes) own disjoint halves of them
    const convs = Array.from({ length: 12 }, (_, i) => `g:r${i}`);
    for (const conv of convs) await store.commit(createGroup(conv, `o${conv}`, ['eve']));
    const seen = new Map<string, ConvListing>();
    const first = await store.convsSnapshot('eve', { since: undefined, sinceLimit: 500, fullLimit: 1000 });
    for (const row of first.rows) seen.set(row.conv, row);
    let version = first.version;
    const follow = async (): Promise<boolean> => {
      const snap = await store.convsSnapshot('eve', { since: version, sinceLimit: 5, fullLimit: 1000 });
      expect(snap.changedOnly).toBe(true);
      for (const row of snap.rows) seen.set(row.conv, row);
      // as the server answers (reads.ts): a full page's newest row, else the snapshot's version
      const full = snap.rows.length >= 5;
      version = full ? snap.rows.at(-1)!.version : Math.max(snap.version, snap.rows.at(-1)?.version ?? version);
      return full;
    };
    let writing = true;
    const reader = (async () => {
      for (let i = 0; writing && i < 2000; i++) await follow();
    })();
    const last = new Map(convs.map((c) => [c, 1]));
    const writer = async (owner: Store, mine: string[], rounds: number) => {
      const inFlight: Promise<void>[] = [];
      for (let r = 0; r < rounds; r++) {
        const conv = mine[r % mine.length]!;
        const seq = last.get(conv)! + 1;
        last.set(conv, seq);
        // entries, and now and then eve reading: every one changes eve's row of the conversation
        const reads = r % 4 === 0 ? [{ conv, user: 'eve', seq: seq - 1, public: r % 8 === 0 }] : undefined;
        inFlight.push(owner.commit(batch({ entries: [msg(conv, seq, `o${conv}`, 'd', `${conv}-${seq}`, seq, r)], ...(reads ? { reads } : {}) })));
        if (inFlight.length >= 16) await inFlight.shift();
      }
      await Promise.all(inFlight);
    };
    await Promise.all([writer(store, convs.slice(0, 6), 150), writer(other, convs.slice(6), 150)]);
    writing = false;
    await reader;
    // Only rows that changed after the last catch-up may be missing from what the reader holds; one more catches them.
    for (let i = 0; i < 100 && (await follow()); i++);
    const truth = await store.listConvs('eve');
    expect(new Map(truth.map((r) => [r.conv, r]))).toEqual(seen);
  });

  it('a schema of the one version counter moves to per-user versions above every version issued, and keeps the counter from coming back', async () => {
    const { store, schema } = await freshStore();
    await store.commit(createGroup('g:old', 'alice', ['bob']));
    await store.close();
    // As a store of the one counter left it: no per-user rows, the counter well above the users' versions.
    const admin = await connection();
    await admin.query(`DROP TABLE ${schema}.user_versions`);
    await admin.query(`ALTER TABLE ${schema}.counters DROP CONSTRAINT counters_no_global_version`);
    // As a database from before has it: no fingerprint of the current schema.
    await admin.query(`DELETE FROM ${schema}.meta WHERE key = 'schema_sql'`);
    await admin.query(`INSERT INTO ${schema}.counters (name, value) VALUES ('version', 5000)`);
    const { store: reopened } = await freshStore(schema);
    expect((await reopened.convsState('bob')).version).toBeLessThan(5000);
    await reopened.commit(batch({ entries: [msg('g:old', 2, 'alice', 'd', 'n', 1, 0)] }));
    expect((await reopened.convsState('bob')).version).toBeGreaterThan(5000);
    // A node still on the one counter can neither recreate it ...
    await expect(admin.query(`INSERT INTO ${schema}.counters (name, value) VALUES ('version', 0) ON CONFLICT DO NOTHING`)).rejects.toMatchObject({ code: '23514' });
    // ... nor take a version from it.
    expect((await admin.query(`UPDATE ${schema}.counters SET value = value + 1 WHERE name = 'version' RETURNING value`)).rowCount).toBe(0);
    // A second init changes nothing.
    await reopened.init();
    const v = (await reopened.convsState('bob')).version;
    await reopened.commit(batch({ entries: [msg('g:old', 3, 'alice', 'd', 'm', 2, 0)] }));
    expect((await reopened.convsState('bob')).version).toBe(v + 1);
  });

  it('a database of a release without the commit function gets it on init and commits through it; a second init leaves it', async () => {
    const { store, schema } = await freshStore();
    await store.commit(createGroup('g:old', 'alice', ['bob']));
    await store.close();
    // As a store of the previous release left it: its own fingerprint, no commit function.
    const admin = await connection();
    await admin.query(`DROP FUNCTION ${schema}.sequent_commit`);
    await admin.query(`UPDATE ${schema}.meta SET value = 'a previous schema' WHERE key = 'schema_sql'`);
    const { store: reopened } = await freshStore(schema);
    await reopened.commit(batch({ entries: [msg('g:old', 2, 'alice', 'd', 'n', 1, 0)] }));
    expect((await reopened.read('g:old', 0, 10, 10)).map((e) => e.seq)).toEqual([1, 2]);
    expect((await reopened.listConvs('bob')).map((r) => [r.conv, r.last, r.unread])).toEqual([['g:old', 2, 1]]);
    const fingerprint = async () => (await admin.query(`SELECT value FROM ${schema}.meta WHERE key = 'schema_sql'`)).rows[0]?.value as unknown;
    const current = await fingerprint();
    expect(current).not.toBe('a previous schema');
    await reopened.init();
    expect(await fingerprint()).toBe(current);
    // a refused batch (its second entry does not follow) leaves nothing of its first behind
    await expect(
      reopened.commit(batch({ entries: [msg('g:old', 3, 'alice', 'd', 'o', 2, 0), msg('g:old', 5, 'alice', 'd', 'p', 3, 0)] })),
    ).rejects.toThrow(/g:old: seq 5 does not follow 3/);
    expect((await reopened.getConv('g:old'))?.last).toBe(2);
    expect(await reopened.lane('g:old', 'alice', 'd')).toMatchObject({ lastDseq: 1 });
  });
});
