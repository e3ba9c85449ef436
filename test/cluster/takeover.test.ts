/**
 * Takeover of the lease layer alone, over many trials: a node's heartbeats and
 * renewals stop (kill), and another node acquires its slots. The assertions are
 * on correctness only (every slot moved once, to epoch + 1, never held twice);
 * the timings are printed for docs/cluster.md, never asserted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { SlotRows } from '../../packages/server/src/cluster/slot-rows.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { heldSlots, startNode } from './cluster-nodes.js';
import { createTestDatabase, type TestDatabase, until } from './databases.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const SLOTS = 32;
const LEASE = Number(process.env['SEQUENT_TAKEOVER_LEASE_MS'] ?? 500);
const TRIALS = Number(process.env['SEQUENT_TAKEOVER_TRIALS'] ?? 12);
let db: TestDatabase | undefined;
afterAll(async () => {
  await db?.drop();
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe.skipIf(!available)('takeover of the lease layer', () => {
  it(`moves every slot of a killed node to a live one at epoch + 1, ${TRIALS} trials`, async () => {
    db = await createTestDatabase();
    const first: number[] = [];
    const all: number[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const config = { leaseMs: LEASE, slots: SLOTS, releasePerTick: SLOTS };
      const survivor = await startNode(db.url, `survivor-${trial}`, config);
      const victim = await startNode(db.url, `victim-${trial}`, config);
      try {
        await until('the slots are split', () => heldSlots(survivor).length + heldSlots(victim).length === SLOTS && heldSlots(victim).length > 0);
        const before = new Map(victim.leases.held().map((h) => [h.slot, h.epoch]));
        // a random moment within the tick, so the kill does not always follow a renewal
        await new Promise((r) => setTimeout(r, Math.random() * survivor.leases.tickMs));
        victim.leases.halt();
        const killedAt = performance.now();
        await until('the survivor holds every slot', () => heldSlots(survivor).length === SLOTS, LEASE * 10);
        const taken = survivor.acquired.filter((x) => before.has(x.slot) && x.at >= killedAt);
        expect(taken.map((x) => x.slot).sort((p, q) => p - q)).toEqual([...before.keys()].sort((p, q) => p - q));
        for (const x of taken) expect(x.epoch).toBe(before.get(x.slot)! + 1);
        const rows = await new SlotRows(survivor.db.pool, survivor.db.tables).all();
        expect(rows.every((r) => r.holder === survivor.name && r.live)).toBe(true);
        first.push(Math.min(...taken.map((x) => x.at)) - killedAt);
        all.push(Math.max(...taken.map((x) => x.at)) - killedAt);
      } finally {
        await survivor.close();
        await victim.db.close();
      }
    }
    const sortedFirst = [...first].sort((p, q) => p - q);
    const sortedAll = [...all].sort((p, q) => p - q);
    const line = (name: string, xs: number[]) => `${name}: p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms, min ${xs[0]!.toFixed(0)}, max ${xs.at(-1)!.toFixed(0)}`;
    process.stdout.write(
      `takeover, lease ${LEASE} ms (tick ${Math.floor(LEASE / 4)} ms), ${TRIALS} trials, ${SLOTS} slots:\n  ${line('kill → first slot acquired', sortedFirst)}\n  ${line('kill → last slot acquired', sortedAll)}\n`,
    );
  }, 120_000);
});
