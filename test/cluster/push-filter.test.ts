/**
 * The push filter, property-tested with fast-check's scheduler: hints arrive
 * duplicated, reordered and with holes, the store's fills resolve at random
 * moments among them, and yet each connection sees every conversation's
 * entries once, in order, without a gap.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PushFilter, type PushedEntry } from '../../packages/server/src/cluster/push-filter.js';

type Delivered = Map<string, number[]>;
const CONVS = ['c1', 'c2', 'c3'];

/** The store of the test: conversation c has entries 1..length, item `${c}#${seq}`. */
const storeFill = (lengths: Record<string, number>) => async (conv: string, after: number, upTo: number): Promise<PushedEntry<string>[]> => {
  const out: PushedEntry<string>[] = [];
  for (let seq = after + 1; seq <= Math.min(upTo, lengths[conv] ?? 0); seq++) out.push({ seq, item: `${conv}#${seq}` });
  return out;
};

/** A hint stream: every seq of every conversation at least once unless `dropped`, shuffled, some twice. */
const hints = fc
  .record({
    lengths: fc.record(Object.fromEntries(CONVS.map((c) => [c, fc.integer({ min: 1, max: 25 })])) as Record<string, fc.Arbitrary<number>>),
    seed: fc.array(fc.tuple(fc.nat(), fc.boolean(), fc.boolean()), { minLength: 80, maxLength: 80 }),
  })
  .map(({ lengths, seed }) => {
    const all = CONVS.flatMap((conv) => Array.from({ length: lengths[conv]! }, (_, i) => ({ conv, seq: i + 1 })));
    const stream: { conv: string; seq: number }[] = [];
    for (const [i, h] of all.entries()) {
      const [, dropped, twice] = seed[i % seed.length]!;
      // the newest entry of each conversation is never dropped (something must reveal the tail)
      if (dropped && h.seq !== lengths[h.conv]) continue;
      stream.push(h);
      if (twice) stream.push(h);
    }
    // a local shuffle: a hint moves at most a few places (a bus reorders, it does not scramble)
    const keyed = stream.map((h, i) => ({ h, key: i + ((seed[i % seed.length]![0] % 7) - 3) }));
    keyed.sort((a, b) => a.key - b.key);
    return { lengths, stream: keyed.map((k) => k.h) };
  });

function makeFilter(fill: (conv: string, after: number, upTo: number) => Promise<readonly PushedEntry<string>[]>) {
  const delivered: Delivered = new Map();
  const items: string[] = [];
  const unfilled: [string, number, number][] = [];
  const filter = new PushFilter<string>({
    fill,
    deliver: (conv, seq, item) => {
      delivered.set(conv, [...(delivered.get(conv) ?? []), seq]);
      items.push(item);
    },
    onUnfilled: (conv, after, upTo) => unfilled.push([conv, after, upTo]),
  });
  return { filter, delivered, items, unfilled };
}

async function settle(s: fc.Scheduler): Promise<void> {
  while (s.count() > 0) await s.waitOne();
  // let the filters' continuations run and schedule any further fill
  for (let i = 0; i < 5; i++) await Promise.resolve();
  if (s.count() > 0) await settle(s);
}

describe('push filter', () => {
  it('delivers every entry exactly once, in order, with no gap, from a hint stream with holes, duplicates and reordering', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), hints, fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }), async (s, { lengths, stream }, steps) => {
        const { filter, delivered, items, unfilled } = makeFilter(s.scheduleFunction(storeFill(lengths)));
        // the connection starts knowing nothing above 0 in every conversation (it has just synced)
        for (const conv of CONVS) filter.setHighWater(conv, 0);
        for (const [i, h] of stream.entries()) {
          filter.offer(h.conv, h.seq, `${h.conv}#${h.seq}`);
          if (steps[i % steps.length] && s.count() > 0) await s.waitOne();
        }
        await settle(s);
        for (const conv of CONVS) {
          expect(delivered.get(conv)).toEqual(Array.from({ length: lengths[conv]! }, (_, i) => i + 1));
          expect(filter.highWater(conv)).toBe(lengths[conv]);
        }
        // the item pushed for a seq is that seq's
        for (const item of items) expect(item).toMatch(/^c\d#\d+$/);
        expect(new Set(items).size).toBe(items.length);
        expect(unfilled).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });

  it('with a store that fails or comes back short, still never pushes a seq twice or out of order, and reports every hole', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), hints, fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 30 }), async (s, { lengths, stream }, faults) => {
        let call = 0;
        const full = storeFill(lengths);
        const faulty = async (conv: string, after: number, upTo: number) => {
          const fault = faults[call++ % faults.length];
          if (fault === 0) throw new Error('store unreachable');
          const entries = await full(conv, after, upTo);
          return fault === 1 ? entries.slice(0, Math.floor(entries.length / 2)) : entries;
        };
        const { filter, delivered, unfilled } = makeFilter(s.scheduleFunction(faulty));
        for (const conv of CONVS) filter.setHighWater(conv, 0);
        for (const h of stream) filter.offer(h.conv, h.seq, `${h.conv}#${h.seq}`);
        await settle(s);
        for (const conv of CONVS) {
          const seqs = delivered.get(conv) ?? [];
          for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
          // the newest entry was hinted, so it is pushed whatever the store did
          expect(seqs.at(-1)).toBe(lengths[conv]);
          // every seq not pushed lies in a reported hole
          const missing = Array.from({ length: lengths[conv]! }, (_, i) => i + 1).filter((q) => !seqs.includes(q));
          for (const q of missing) expect(unfilled.some(([c, after, upTo]) => c === conv && after < q && q <= upTo)).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('drops at or below the high-water mark, asks for exactly the hole, and forgets', async () => {
    const asked: [string, number, number][] = [];
    const { filter, delivered } = makeFilter(async (conv, after, upTo) => {
      asked.push([conv, after, upTo]);
      return storeFill({ c: 100 })(conv, after, upTo);
    });
    expect(filter.offer('c', 5, 'c#5').outcome).toBe('delivered'); // no mark yet: the first push sets it
    expect(filter.offer('c', 5, 'c#5').outcome).toBe('dropped');
    expect(filter.offer('c', 3, 'c#3').outcome).toBe('dropped');
    const gap = filter.offer('c', 9, 'c#9');
    expect(gap.outcome).toBe('queued');
    expect(filter.offer('c', 10, 'c#10').outcome).toBe('queued');
    await gap.done;
    expect(asked).toEqual([['c', 5, 8]]);
    expect(delivered.get('c')).toEqual([5, 6, 7, 8, 9, 10]);
    filter.setHighWater('c', 7); // never lowers
    expect(filter.highWater('c')).toBe(10);
    filter.forget('c');
    expect(filter.size()).toBe(0);
    expect(filter.offer('c', 2, 'c#2').outcome).toBe('delivered');
  });
});
