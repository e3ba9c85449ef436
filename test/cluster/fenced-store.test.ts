/**
 * The PostgreSQL store committing under the fence, against the real PostgreSQL
 * with real slot leases: entries store the epoch they were committed under; after
 * a takeover the old holder's commit is refused with SlotFencedError and nothing
 * of its batch is stored; epochs never decrease along a conversation's log.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Entry } from '../../packages/client/src/protocol/index.js';
import { SlotFencedError as ClusterSlotFencedError } from '../../packages/server/src/cluster/fence.js';
import { clusterPoolConfig } from '../../packages/server/src/cluster/pg-session.js';
import { assignSlots, slotOf } from '../../packages/server/src/cluster/slots.js';
import { type CommitBatch, type CommitFence, SlotFencedError, type Store, StoreConflictError } from '../../packages/server/src/store/index.js';
import { openPostgresStore } from '../../packages/server/src/store/postgres.js';
import { msg, system } from '../store/conformance.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { startNode, type TestNode } from './cluster-nodes.js';
import { createTestDatabase, sleep, type TestDatabase, until } from './databases.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const SLOTS = 16;
const LEASE = 500;
let db: TestDatabase | undefined;
const nodes: TestNode[] = [];
const stores: Store[] = [];

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close().catch(() => {})));
  await Promise.all(nodes.splice(0).map((n) => n.close().catch(() => {})));
  await db?.drop();
  db = undefined;
});

async function start(name: string): Promise<TestNode> {
  db ??= await createTestDatabase();
  const node = await startNode(db.url, name, { leaseMs: LEASE, slots: SLOTS, releasePerTick: SLOTS });
  nodes.push(node);
  return node;
}

/** A node's store: its own pool with the cluster's session settings, as a node would open it. */
async function storeOf(): Promise<Store> {
  const { connectionString: _url, max: _max, query_timeout: _timeout, ...session } = clusterPoolConfig({ url: db!.url, leaseMs: LEASE });
  // the lease statements' lock_timeout (lease/4) and query_timeout are not for commits, which wait for their rows
  const options = session.options?.replace(/-c lock_timeout=\d+/, '');
  const store = openPostgresStore({ url: db!.url, maxConnections: 3, poolConfig: { ...session, options } });
  stores.push(store);
  await store.init();
  return store;
}

/** A slot `winner` wins over `other`, so `other` takes it over when `winner` dies. */
const slotWonBy = (winner: string, other: string, nth = 0) =>
  assignSlots(SLOTS, [winner, other])
    .map((owner, slot) => ({ owner, slot }))
    .filter((x) => x.owner === winner)[nth]!.slot;

/** A conversation id in `slot`. */
function convIn(slot: number, tag: string): string {
  for (let i = 0; ; i++) if (slotOf(`g:${tag}${i}`, SLOTS) === slot) return `g:${tag}${i}`;
}

const fences = (...pairs: [string, CommitFence][]) => new Map(pairs);

function createGroup(conv: string, owner: string, members: string[]): CommitBatch {
  return {
    newConvs: [{ conv, kind: 'group' }],
    entries: [system(conv, 1, owner, { op: 'create', members })],
    memberships: [owner, ...members].map((user) => ({ op: 'add' as const, conv, user, seq: 1 })),
  };
}

const entries = (entries: Entry[], extra: Partial<CommitBatch> = {}): CommitBatch => ({ newConvs: [], entries, memberships: [], ...extra });

/** The stored (seq, epoch) of a conversation's log, read straight from the table. */
async function epochs(conv: string): Promise<{ seq: number; epoch: number }[]> {
  const pg = (await import('pg')).default;
  const client = new pg.Client({ connectionString: db!.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ seq: string; epoch: string }>(`SELECT seq, epoch FROM sequent.entries WHERE conv = $1 ORDER BY seq`, [conv]);
    return rows.map((r) => ({ seq: Number(r.seq), epoch: Number(r.epoch) }));
  } finally {
    await client.end();
  }
}

/** Nodes a and b with a store each, and a conversation in a slot a holds now and b wins once a is gone. */
async function contested(tag: string) {
  const a = await start('a');
  const b = await start('b');
  const [storeA, storeB] = [await storeOf(), await storeOf()];
  const slot = slotWonBy('a', 'b');
  const conv = convIn(slot, tag);
  return { a, b, storeA, storeB, slot, conv, old: await held(a, slot) };
}

async function held(node: TestNode, slot: number): Promise<CommitFence> {
  await until(`${node.name} holds slot ${slot}`, () => node.leases.epochOf(slot) !== undefined);
  return { slot, epoch: node.leases.epochOf(slot)! };
}

describe.skipIf(!available)('the PostgreSQL store under the fence', () => {
  it('a commit at the current epoch stores each entry with that epoch; an unfenced one with 0', async () => {
    const a = await start('a');
    const store = await storeOf();
    const [s1, s2] = [a.leases.held()[0]!.slot, a.leases.held()[1]!.slot];
    const [c1, c2] = [convIn(s1, 'one'), convIn(s2, 'two')];
    const f1 = await held(a, s1);
    const f2 = await held(a, s2);
    // one batch across two slots
    await store.commit({
      newConvs: [...createGroup(c1, 'alice', ['bob']).newConvs, ...createGroup(c2, 'alice', []).newConvs],
      entries: [...createGroup(c1, 'alice', ['bob']).entries, ...createGroup(c2, 'alice', []).entries, msg(c1, 2, 'alice', 'phone', 'x1', 1, 'hi')],
      memberships: [...createGroup(c1, 'alice', ['bob']).memberships, ...createGroup(c2, 'alice', []).memberships],
      fences: fences([c1, f1], [c2, f2]),
    });
    expect(await epochs(c1)).toEqual([
      { seq: 1, epoch: f1.epoch },
      { seq: 2, epoch: f1.epoch },
    ]);
    expect(await epochs(c2)).toEqual([{ seq: 1, epoch: f2.epoch }]);
    expect(f1.epoch).toBeGreaterThan(0);

    const solo = 'dm:solo:node';
    await store.commit(createGroup(solo, 'alice', []));
    expect(await epochs(solo)).toEqual([{ seq: 1, epoch: 0 }]);
    // what was committed reads back as any entry does
    expect((await store.read(c1, 0, 10, 10)).map((e) => e.body)).toEqual([{ op: 'create', members: ['bob'] }, 'hi']);
  });

  it("after a takeover the old holder's commit is refused with SlotFencedError, and nothing of its batch is stored", async () => {
    const { a, b, storeA, storeB, slot, conv, old } = await contested('taken');
    await storeA.commit({ ...createGroup(conv, 'alice', ['bob']), fences: fences([conv, old]) });
    await storeA.commit({ ...entries([msg(conv, 2, 'alice', 'phone', 'c1', 1, 'before')]), fences: fences([conv, old]) });

    a.leases.halt(); // a GC pause: no heartbeat, no renewal
    const now = await held(b, slot);
    expect(now.epoch).toBe(old.epoch + 1);

    // everything a commit could touch, to compare after the refusal
    const stored = async () => ({
      conv: await storeA.getConv(conv),
      log: await storeA.read(conv, 0, 100, 100),
      members: await storeA.getMemberships(conv),
      lane: await storeA.lane(conv, 'alice', 'phone'),
      positions: await storeA.readPositions(conv),
      listing: await storeA.listConvs('carol'),
    });
    const before = await stored();
    // a resumes with the epoch it had: a new conversation, entries, a member, a lane, a read move
    const fresh = convIn(slot, 'new');
    const stale: CommitBatch = {
      newConvs: [{ conv: fresh, kind: 'group' }],
      entries: [
        system(fresh, 1, 'alice', { op: 'create', members: [] }),
        msg(conv, 3, 'alice', 'phone', 'c2', 2, 'after'),
        system(conv, 4, 'alice', { op: 'members', add: ['carol'], remove: [] }),
      ],
      memberships: [
        { op: 'add', conv: fresh, user: 'alice', seq: 1 },
        { op: 'add', conv, user: 'carol', seq: 4 },
      ],
      reads: [{ conv, user: 'bob', seq: 3, public: true }],
      fences: fences([conv, old], [fresh, old]),
    };
    const refused = await storeA.commit(stale).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(SlotFencedError);
    expect(refused).toBeInstanceOf(ClusterSlotFencedError); // one class, whichever module the caller imports it from
    expect(refused).not.toBeInstanceOf(StoreConflictError);
    expect(refused).toMatchObject({ slot, epoch: old.epoch });

    expect(await stored()).toEqual(before);
    expect(await storeA.getConv(fresh)).toBeNull();

    // the new holder continues the log where it was
    await storeB.commit({ ...entries([msg(conv, 3, 'bob', 'web', 'b1', 1, 'new owner')]), fences: fences([conv, now]) });
    expect(await epochs(conv)).toEqual([
      { seq: 1, epoch: old.epoch },
      { seq: 2, epoch: old.epoch },
      { seq: 3, epoch: now.epoch },
    ]);
    // and a fence with an epoch nobody acquired yet refuses too
    await expect(storeB.commit({ ...entries([msg(conv, 4, 'bob', 'web', 'b2', 2, 'x')]), fences: fences([conv, { slot, epoch: now.epoch + 1 }]) })).rejects.toMatchObject({
      name: 'SlotFencedError',
      epoch: now.epoch + 1,
    });
  });

  it('one stale slot refuses the whole batch, its current slots included', async () => {
    const a = await start('a');
    const b = await start('b');
    const storeB = await storeOf();
    // the stale lease sorts after the current one: the refusal must name the one that failed, not the first
    const owners = assignSlots(SLOTS, ['a', 'b']);
    const lost = owners.lastIndexOf('a');
    const kept = owners.indexOf('b');
    expect(kept).toBeLessThan(lost);
    const [convLost, convKept] = [convIn(lost, 'lost'), convIn(kept, 'kept')];
    const old = await held(a, lost);
    const mine = await held(b, kept);
    a.leases.halt();
    await until('b took the slot over', () => b.leases.epochOf(lost) !== undefined);
    await storeB.commit({ ...createGroup(convKept, 'bob', []), fences: fences([convKept, mine]) });

    // b commits with an epoch of the lost slot it never held (say, a forwarded batch gone stale)
    const mixed: CommitBatch = {
      newConvs: [{ conv: convLost, kind: 'group' }],
      entries: [system(convLost, 1, 'alice', { op: 'create', members: [] }), msg(convKept, 2, 'bob', 'web', 'k1', 1, 'kept?')],
      memberships: [{ op: 'add', conv: convLost, user: 'alice', seq: 1 }],
      fences: fences([convLost, old], [convKept, mine]),
    };
    await expect(storeB.commit(mixed)).rejects.toMatchObject({ name: 'SlotFencedError', slot: lost, epoch: old.epoch });
    expect(await storeB.getConv(convLost)).toBeNull();
    expect(await epochs(convKept)).toEqual([{ seq: 1, epoch: mine.epoch }]);
    expect(await storeB.lane(convKept, 'bob', 'web')).toEqual({ lastDseq: 0, minCmid: null, maxCmid: null });
  });

  it('a fenced commit in flight when the lease runs out holds the takeover off, and the new holder continues after it', async () => {
    const { a, b, storeA, storeB, slot, conv, old } = await contested('inflight');
    await storeA.commit({ ...createGroup(conv, 'alice', []), fences: fences([conv, old]) });

    // another session holds the conversation's row: a's next commit passes the fence, then waits
    // inside its transaction, as a commit slowed down by the database would
    const pg = (await import('pg')).default;
    const blocker = new pg.Client({ connectionString: db!.url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query(`SELECT 1 FROM sequent.convs WHERE conv = $1 FOR UPDATE`, [conv]);
    const inFlight = storeA.commit({ ...entries([msg(conv, 2, 'alice', 'phone', 'f1', 1, 'in flight')]), fences: fences([conv, old]) });
    await until('a is waiting inside its commit', async () => {
      const { rows } = await blocker.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
      return rows.length > 0;
    });
    a.leases.halt();
    // three leases: the lease ran out long ago, but the row a's commit holds FOR KEY SHARE cannot move
    await sleep(LEASE * 3);
    expect(b.acquired.filter((x) => x.slot === slot)).toEqual([]);
    await blocker.query('COMMIT');
    await blocker.end();
    await inFlight;

    const now = await held(b, slot);
    expect(now.epoch).toBe(old.epoch + 1);
    await storeB.commit({ ...entries([msg(conv, 3, 'bob', 'web', 'b1', 1, 'next')]), fences: fences([conv, now]) });
    expect(await epochs(conv)).toEqual([
      { seq: 1, epoch: old.epoch },
      { seq: 2, epoch: old.epoch },
      { seq: 3, epoch: now.epoch },
    ]);
  });

  it('a fenced batch must fence every conversation it touches; otherwise it writes nothing', async () => {
    const a = await start('a');
    const store = await storeOf();
    const slot = a.leases.held()[0]!.slot;
    const conv = convIn(slot, 'some');
    const other = convIn(slot, 'unfenced');
    const f = await held(a, slot);
    const both = createGroup(conv, 'alice', []);
    const batch: CommitBatch = {
      newConvs: [...both.newConvs, { conv: other, kind: 'group' }],
      entries: [...both.entries, system(other, 1, 'alice', { op: 'create', members: [] })],
      memberships: both.memberships,
      fences: fences([conv, f]),
    };
    await expect(store.commit(batch)).rejects.toThrow(TypeError);
    await expect(store.commit({ ...both, fences: fences([conv, { slot, epoch: -1 }]) })).rejects.toThrow(TypeError);
    expect(await store.getConv(conv)).toBeNull();
    expect(await store.getConv(other)).toBeNull();
  });

  it("epochs never decrease along a conversation's log across a takeover, with both holders writing", async () => {
    const { a, b, storeA, storeB, slot, conv, old } = await contested('race');
    const epochA = old.epoch;
    await storeA.commit({ ...createGroup(conv, 'alice', ['bob']), fences: fences([conv, { slot, epoch: epochA }]) });

    type Tally = { ok: number; fenced: number; conflicts: number; other: unknown[] };
    const outcome: Record<'a' | 'b', Tally> = {
      a: { ok: 0, fenced: 0, conflicts: 0, other: [] },
      b: { ok: 0, fenced: 0, conflicts: 0, other: [] },
    };
    let running = true;
    // a's writer ignores its local lease rule and keeps committing with its epoch:
    // only the store's fenced commit stands between it and b
    const writer = async (name: 'a' | 'b', store: Store, epochNow: () => number | undefined) => {
      const tally = outcome[name];
      let dseq = 0;
      while (running) {
        const epoch = epochNow();
        if (epoch !== undefined) {
          const last = (await store.getConv(conv))!.last;
          try {
            await store.commit({ ...entries([msg(conv, last + 1, name, 'dev', `${name}${dseq + 1}`, dseq + 1, name)]), fences: fences([conv, { slot, epoch }]) });
            dseq++;
            tally.ok++;
          } catch (error) {
            if (error instanceof SlotFencedError) tally.fenced++;
            else if (error instanceof StoreConflictError) tally.conflicts++;
            else tally.other.push(error);
          }
        }
        await sleep(2);
      }
    };
    const writers = [writer('a', storeA, () => epochA), writer('b', storeB, () => b.leases.epochOf(slot))];
    await until('a has committed a few', () => outcome.a.ok >= 10);
    a.leases.halt();
    await until('b has committed after the takeover', () => outcome.b.ok >= 30, 15_000);
    running = false;
    await Promise.all(writers);

    expect(outcome.a.other).toEqual([]);
    expect(outcome.b.other).toEqual([]);
    expect(outcome.a.fenced).toBeGreaterThan(0);
    const log = await storeB.read(conv, 0, 10_000, 10_000);
    const stored = await epochs(conv);
    expect(stored.map((r) => r.seq)).toEqual(stored.map((_, i) => i + 1)); // gapless
    for (let i = 1; i < stored.length; i++) expect(stored[i]!.epoch).toBeGreaterThanOrEqual(stored[i - 1]!.epoch);
    const writerOf = (seq: number) => log.find((e) => e.seq === seq)!.from;
    expect(stored.filter((r) => writerOf(r.seq) === 'a').every((r) => r.epoch === epochA)).toBe(true);
    expect(stored.filter((r) => writerOf(r.seq) === 'b').every((r) => r.epoch === epochA + 1)).toBe(true);
    expect(log.filter((e) => e.from === 'a')).toHaveLength(outcome.a.ok);
    expect(log.filter((e) => e.from === 'b')).toHaveLength(outcome.b.ok);
  });

  it('a database from before the epoch column gets it on init, its entries at epoch 0, and keeps working', async () => {
    const a = await start('a');
    const store = await storeOf();
    await store.commit(createGroup('g:old', 'alice', []));
    await store.close();
    // the schema as a store of the previous version left it
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: db!.url });
    await client.connect();
    await client.query(`ALTER TABLE sequent.entries DROP COLUMN epoch`);
    // As a database from before has it: no fingerprint of the current schema.
    await client.query(`DELETE FROM sequent.meta WHERE key = 'schema_sql'`);
    await client.end();

    const again = await storeOf();
    await again.init(); // idempotent
    // the only node holds every slot: the log goes on from epoch 0 to the lease's
    const f = await held(a, slotOf('g:old', SLOTS));
    await again.commit({ ...entries([msg('g:old', 2, 'alice', 'phone', 'o1', 1, 'fenced')]), fences: fences(['g:old', f]) });
    expect(await epochs('g:old')).toEqual([
      { seq: 1, epoch: 0 },
      { seq: 2, epoch: f.epoch },
    ]);
    expect((await again.read('g:old', 0, 10, 10)).map((e) => e.seq)).toEqual([1, 2]);
  });
});
