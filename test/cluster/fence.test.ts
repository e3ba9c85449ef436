/**
 * The commit fence against the real PostgreSQL: an old holder paused past its
 * lease is refused after a takeover, a transaction it left open cannot commit,
 * and two writers never both commit in one slot across a takeover.
 */
import type pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { fencedTransaction, SlotFencedError } from '../../packages/server/src/cluster/fence.js';
import { SlotRows } from '../../packages/server/src/cluster/slot-rows.js';
import { assignSlots } from '../../packages/server/src/cluster/slots.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { heldSlots, startNode, type TestNode } from './cluster-nodes.js';
import { createTestDatabase, sleep, type TestDatabase, until } from './databases.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const SLOTS = 16;
const LEASE = 500;
let db: TestDatabase;
const nodes: TestNode[] = [];
const start = async (name: string) => {
  const node = await startNode(db.url, name, { leaseMs: LEASE, slots: SLOTS, releasePerTick: SLOTS });
  nodes.push(node);
  return node;
};
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.close().catch(() => {})));
  await db?.drop();
});

/** A log of entries per slot, as a store would keep: seq is unique per slot, each entry records its epoch. */
async function createLog(node: TestNode): Promise<void> {
  await node.db.pool.query(`CREATE TABLE entries (slot integer, seq integer, epoch bigint NOT NULL, writer text NOT NULL, PRIMARY KEY (slot, seq))`);
}

/** One fenced commit of the next entry of `slot`; resolves to its seq. `pause` runs inside the transaction, before COMMIT. */
function commitNext(node: TestNode, slot: number, epoch: number, pause?: (client: pg.PoolClient) => Promise<void>): Promise<number> {
  return fencedTransaction(node.db, slot, epoch, async (client) => {
    const { rows } = await client.query<{ seq: number }>(
      `INSERT INTO entries (slot, seq, epoch, writer) SELECT $1, coalesce(max(seq), 0) + 1, $2, $3 FROM entries WHERE slot = $1 RETURNING seq`,
      [slot, epoch, node.name],
    );
    await pause?.(client);
    return rows[0]!.seq;
  });
}

/** A slot `a` wins over `b`, so `b` takes it over when `a` dies. */
const slotOf = (winner: string, other: string) => assignSlots(SLOTS, [winner, other]).indexOf(winner);

describe.skipIf(!available)('the commit fence', () => {
  it('an old holder paused past its lease is refused after the takeover, and writes nothing', async () => {
    db = await createTestDatabase();
    const a = await start('a');
    const b = await start('b');
    await createLog(a);
    const slot = slotOf('a', 'b');
    await until('a holds its slot', () => a.leases.epochOf(slot) !== undefined);
    const epoch = a.leases.epochOf(slot)!;
    expect(await commitNext(a, slot, epoch)).toBe(1);

    a.leases.halt(); // a GC pause: no heartbeat, no renewal
    await until('b took the slot over', () => b.leases.epochOf(slot) !== undefined);
    expect(b.leases.epochOf(slot)).toBe(epoch + 1);

    // a resumes and commits with the epoch it had
    await expect(commitNext(a, slot, epoch)).rejects.toBeInstanceOf(SlotFencedError);
    expect(await commitNext(b, slot, epoch + 1)).toBe(2);
    // a fence with an epoch nobody acquired yet refuses too
    await expect(commitNext(b, slot, epoch + 2)).rejects.toBeInstanceOf(SlotFencedError);
    const { rows } = await a.db.pool.query(`SELECT seq, epoch, writer FROM entries ORDER BY seq`);
    expect(rows).toEqual([
      { seq: 1, epoch: String(epoch), writer: 'a' },
      { seq: 2, epoch: String(epoch + 1), writer: 'b' },
    ]);
  });

  it('a released slot refuses its last epoch at once', async () => {
    db = await createTestDatabase();
    const a = await start('a');
    await createLog(a);
    const [lease] = a.leases.held();
    await new SlotRows(a.db.pool, a.db.tables).release({ name: 'a', incarnation: a.leases.incarnation }, [lease!]);
    await expect(commitNext(a, lease!.slot, lease!.epoch)).rejects.toBeInstanceOf(SlotFencedError);
  });

  it('a holder paused inside a fenced commit holds the takeover off until the server ends its transaction, which then never commits', async () => {
    db = await createTestDatabase();
    const a = await start('a');
    const b = await start('b');
    await createLog(a);
    const slot = slotOf('a', 'b');
    await until('a holds its slot', () => a.leases.epochOf(slot) !== undefined);
    const epoch = a.leases.epochOf(slot)!;
    let pausedAt = 0;
    const paused = commitNext(a, slot, epoch, async () => {
      a.leases.halt();
      pausedAt = performance.now();
      await sleep(LEASE * 3); // the process stops here, its transaction open
    });
    await until('b took the slot over', () => b.leases.epochOf(slot) !== undefined, 10_000);
    const takenAt = b.acquired.find((x) => x.slot === slot && x.epoch === epoch + 1)!.at;
    // the lease ran out after about LEASE; the open transaction held b off until the
    // server's idle_in_transaction_session_timeout (LEASE) ended it
    expect(takenAt - pausedAt).toBeGreaterThan(LEASE - 150);
    await expect(paused).rejects.toThrow();
    const { rows } = await b.db.pool.query(`SELECT seq FROM entries`);
    expect(rows).toEqual([]);
  });

  it('a commit in flight when the lease runs out holds the takeover off, and is visible to the new holder', async () => {
    db = await createTestDatabase();
    const a = await start('a');
    const b = await start('b');
    await createLog(a);
    const slot = slotOf('a', 'b');
    await until('a holds its slot', () => a.leases.epochOf(slot) !== undefined);
    const epoch = a.leases.epochOf(slot)!;
    const committed = commitNext(a, slot, epoch, async (client) => {
      // this transaction outlives the lease, and the server lets it (idle timeout 3 leases)
      await client.query(`SET LOCAL idle_in_transaction_session_timeout = ${LEASE * 3}`);
      a.leases.halt();
      await sleep(LEASE * 2);
    }).then((seq) => ({ seq, at: performance.now() }));
    const { seq, at } = await committed;
    expect(seq).toBe(1);
    await until('b took the slot over', () => b.leases.epochOf(slot) !== undefined, 10_000);
    const takenAt = b.acquired.find((x) => x.slot === slot && x.epoch === epoch + 1)!.at;
    // the lease had run out a whole lease earlier, but the takeover could only commit after a's commit
    expect(takenAt).toBeGreaterThan(at);
    expect(await commitNext(b, slot, epoch + 1)).toBe(2);
  });

  it('two writers never both commit in one slot across a takeover: epochs never decrease along seq', async () => {
    db = await createTestDatabase();
    const a = await start('a');
    const b = await start('b');
    await createLog(a);
    const slot = slotOf('a', 'b');
    await until('a holds its slot', () => a.leases.epochOf(slot) !== undefined);
    const epochA = a.leases.epochOf(slot)!;
    const outcome = { a: { ok: 0, fenced: 0, other: [] as unknown[] }, b: { ok: 0, fenced: 0, other: [] as unknown[] } };
    let running = true;
    // a's writer ignores its local lease rule and keeps committing with its epoch:
    // only the database's fence stands between it and b
    const writer = async (node: TestNode, epochNow: () => number | undefined, tally: (typeof outcome)['a']) => {
      while (running) {
        const epoch = epochNow();
        if (epoch !== undefined) {
          try {
            await commitNext(node, slot, epoch);
            tally.ok++;
          } catch (error) {
            if (error instanceof SlotFencedError) tally.fenced++;
            else tally.other.push(error);
          }
        }
        await sleep(2);
      }
    };
    const writers = [writer(a, () => epochA, outcome.a), writer(b, () => b.leases.epochOf(slot), outcome.b)];
    await until('a has committed a few', () => outcome.a.ok >= 10);
    a.leases.halt();
    await until('b has committed after the takeover', () => outcome.b.ok >= 30, 15_000);
    running = false;
    await Promise.all(writers);

    expect(outcome.a.other).toEqual([]);
    expect(outcome.b.other).toEqual([]); // a duplicate seq (two writers past the fence) would land here
    expect(outcome.a.fenced).toBeGreaterThan(0);
    const { rows } = await a.db.pool.query<{ seq: number; epoch: string; writer: string }>(`SELECT seq, epoch, writer FROM entries WHERE slot = $1 ORDER BY seq`, [slot]);
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
    const epochs = rows.map((r) => Number(r.epoch));
    for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThanOrEqual(epochs[i - 1]!);
    expect(rows.filter((r) => r.writer === 'a').every((r) => Number(r.epoch) === epochA)).toBe(true);
    expect(rows.filter((r) => r.writer === 'b').every((r) => Number(r.epoch) === epochA + 1)).toBe(true);
    expect(rows.filter((r) => r.writer === 'a')).toHaveLength(outcome.a.ok);
    expect(heldSlots(b)).toContain(slot);
  });
});
