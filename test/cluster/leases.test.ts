/** Membership and slot leases against the real PostgreSQL: who is live, who holds what, epochs, hand-off, restart and takeover. */
import { afterEach, describe, expect, it } from 'vitest';
import { Membership } from '../../packages/server/src/cluster/membership.js';
import { SlotRows } from '../../packages/server/src/cluster/slot-rows.js';
import { assignSlots } from '../../packages/server/src/cluster/slots.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { heldSlots, startNode, type TestNode } from './cluster-nodes.js';
import { createTestDatabase, sleep, type TestDatabase, until } from './databases.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const SLOTS = 64;
const LEASE = 1000;
let db: TestDatabase;
const nodes: TestNode[] = [];
const start = async (name: string, leaseMs = LEASE, releasePerTick = SLOTS / 4) => {
  const node = await startNode(db.url, name, { leaseMs, slots: SLOTS, releasePerTick });
  nodes.push(node);
  return node;
};
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.close().catch(() => {})));
  await db?.drop();
});

const rowsOf = (node: TestNode) => new SlotRows(node.db.pool, node.db.tables).all();
const won = (name: string, live: string[]) => assignSlots(SLOTS, live).flatMap((owner, slot) => (owner === name ? [slot] : []));

describe.skipIf(!available)('cluster leases', () => {
  it('a node is live while its heartbeat is younger than the lease, on the database clock', async () => {
    db = await createTestDatabase();
    const first = await start('a');
    const m = new Membership(first.db.pool, first.db.tables, 'b', 300);
    expect((await m.join()).live).toEqual(['a', 'b']);
    const beat = await m.heartbeat();
    expect(beat).toEqual({ own: true, live: ['a', 'b'] });
    await sleep(450);
    const rows = await m.nodes();
    // 'a' keeps heartbeating every tick; 'b' did not for longer than its 300 ms lease
    expect(rows.find((r) => r.name === 'b')).toMatchObject({ live: false });
    expect(rows.find((r) => r.name === 'b')!.ageMs).toBeGreaterThanOrEqual(400);
    expect((await m.heartbeat()).live).toEqual(['a', 'b']);
  });

  it('two nodes split the slots by rendezvous hashing, every acquisition at a new epoch', async () => {
    db = await createTestDatabase();
    const a = await start('a');
    expect(heldSlots(a)).toHaveLength(SLOTS);
    const b = await start('b');
    await until('the slots are split as rendezvous hashing says', () => {
      return JSON.stringify(heldSlots(a)) === JSON.stringify(won('a', ['a', 'b'])) && JSON.stringify(heldSlots(b)) === JSON.stringify(won('b', ['a', 'b']));
    });
    const rows = await rowsOf(a);
    for (const row of rows) {
      const owner = won('a', ['a', 'b']).includes(row.slot) ? 'a' : 'b';
      expect(row).toMatchObject({ holder: owner, live: true });
      // a's slots were acquired once; b's were acquired by a, released, then acquired by b
      expect(row.epoch).toBe(owner === 'a' ? 1 : 2);
      if (owner === 'b') expect(a.lost).toContainEqual({ slot: row.slot, epoch: 1, reason: 'released' });
    }
    expect(b.acquired.map((x) => x.epoch).every((e) => e === 2)).toBe(true);
    for (const slot of heldSlots(b)) expect(b.leases.epochOf(slot)).toBe(2);
    for (const slot of heldSlots(b)) expect(a.leases.epochOf(slot)).toBeUndefined();
  });

  it('a node that stops gracefully leaves at once: the other takes its slots on its next tick, not after the lease', async () => {
    db = await createTestDatabase();
    const a = await start('a', 5000, SLOTS);
    const b = await start('b', 5000, SLOTS);
    await until('b holds its slots', () => heldSlots(b).length === won('b', ['a', 'b']).length, 10_000);
    const stoppedAt = performance.now();
    await b.close();
    nodes.splice(nodes.indexOf(b), 1);
    await until('a holds every slot', () => heldSlots(a).length === SLOTS, 4000);
    // a 5 s lease: waiting for expiry would take far longer than a tick or two
    expect(performance.now() - stoppedAt).toBeLessThan(4000);
    expect(b.lost.filter((l) => l.reason === 'stopped')).toHaveLength(won('b', ['a', 'b']).length);
  });

  it('a node restarted under its own name takes its slots back at once, and its paused predecessor is superseded', async () => {
    db = await createTestDatabase();
    const old = await start('a', 5000);
    const epochs = new Map(old.leases.held().map((h) => [h.slot, h.epoch]));
    old.leases.halt(); // paused: no heartbeat, no renewal, no release
    const restarted = await start('a', 5000);
    // no wait for the 5 s lease: the first tick of the new process took every slot back
    expect(heldSlots(restarted)).toHaveLength(SLOTS);
    for (const h of restarted.leases.held()) expect(h.epoch).toBe(epochs.get(h.slot)! + 1);
    // the predecessor resumes: its heartbeat, renewals and acquisitions find the name taken by another incarnation
    const resumed = new Membership(old.db.pool, old.db.tables, 'a', 5000, old.leases.incarnation);
    expect((await resumed.heartbeat()).own).toBe(false);
    const rows = new SlotRows(old.db.pool, old.db.tables);
    expect(await rows.renew({ name: 'a', incarnation: old.leases.incarnation }, old.leases.held(), 5000)).toEqual(new Set());
    expect(await rows.acquire({ name: 'a', incarnation: old.leases.incarnation }, [0, 1, 2], 5000)).toEqual([]);
  });

  it('a superseded process that still ticks stops and reports every slot lost', async () => {
    db = await createTestDatabase();
    const old = await start('a', 5000);
    const count = heldSlots(old).length;
    const m = new Membership(old.db.pool, old.db.tables, 'a', 5000);
    await m.join();
    await old.leases.tickNow();
    expect(old.superseded).toBe(true);
    expect(heldSlots(old)).toEqual([]);
    expect(old.lost.filter((l) => l.reason === 'superseded')).toHaveLength(count);
  });

  it('a killed node\'s slots are taken over after its lease, at epoch + 1; it never serves them again', async () => {
    db = await createTestDatabase();
    const a = await start('a', 600);
    const b = await start('b', 600);
    await until('the slots are split', () => heldSlots(a).length + heldSlots(b).length === SLOTS && heldSlots(b).length === won('b', ['a', 'b']).length);
    const before = new Map(b.leases.held().map((h) => [h.slot, h.epoch]));
    b.leases.halt();
    const killedAt = performance.now();
    await until('a holds every slot', () => heldSlots(a).length === SLOTS);
    // not before the lease ran out on the database's clock (less a little for the clocks' offsets)
    const takeovers = a.acquired.filter((x) => before.has(x.slot) && x.epoch === before.get(x.slot)! + 1);
    expect(takeovers).toHaveLength(before.size);
    // b's last renewal was sent at most a tick (150 ms) before the kill: never taken before that plus the lease
    expect(Math.min(...takeovers.map((x) => x.at)) - killedAt).toBeGreaterThan(600 - 150 - 100);
    for (const h of a.leases.held()) if (before.has(h.slot)) expect(h.epoch).toBe(before.get(h.slot)! + 1);
    // the halted node's local rule stopped it serving before the database let a in
    for (const slot of before.keys()) expect(b.leases.epochOf(slot)).toBeUndefined();
  });
});
