import { describe, it, expect, afterEach, vi } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_MID_EPOCH_MS,
  MID_MAX_SEQUENCE,
  MID_MAX_TIME,
  MID_MAX_WORKER,
  MidGenerator,
  type MidGeneratorOptions,
  decodeMid,
  midWorkerSection,
} from '../../packages/server/src/seq/ids.js';
import type { SeqBackend } from '../../packages/server/src/seq/backends/types.js';
import { MemorySeqBackend } from './support/memory-backend.js';

const E = DEFAULT_MID_EPOCH_MS;
const T0 = Date.UTC(2026, 5, 1);

/**
 * Injected time: `wall` is the (jumpy) wall clock; `mono` is real elapsed time,
 * which the generator uses only to bound borrowing. Every read of mono moves it
 * on a little, as real time does, so a borrowing wait always ends.
 */
function testTime(start = T0) {
  const t = {
    wall: start,
    monoNow: 0,
    clock: () => t.wall,
    monotonic: () => (t.monoNow += 0.01),
    /** Real time passes: both clocks move. */
    pass(ms: number) {
      t.wall += ms;
      t.monoNow += ms;
    },
  };
  return t;
}

const open: MidGenerator[] = [];
async function gen(backend: SeqBackend, time: ReturnType<typeof testTime>, options: MidGeneratorOptions = {}) {
  const g = await MidGenerator.open(backend, { clock: time.clock, monotonic: time.monotonic, ...options });
  open.push(g);
  return g;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((g) => g.close()));
});

/** next(), waiting for the high-water mark when the generator asks to. */
async function nextId(g: MidGenerator): Promise<string> {
  for (;;) {
    try {
      return g.next();
    } catch (error) {
      if ((error as { code?: string }).code !== 'mid_not_ready') throw error;
      await g.ready();
    }
  }
}

function persistedMax(backend: MemorySeqBackend, worker: number): number {
  return backend.sections.get(midWorkerSection(worker))?.max ?? 0;
}

describe('MidGenerator', () => {
  it('issues strictly increasing decimal ids carrying its worker id and the wall time', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const g = await gen(backend, time);
    const a = g.next();
    const b = g.next();
    time.pass(3);
    const c = g.next();
    expect(BigInt(b)).toBe(BigInt(a) + 1n);
    expect(BigInt(c)).toBeGreaterThan(BigInt(b));
    expect(decodeMid(a)).toEqual({ time: T0, worker: g.workerId, sequence: 0 });
    expect(decodeMid(b)).toEqual({ time: T0, worker: g.workerId, sequence: 1 });
    expect(decodeMid(c)).toEqual({ time: T0 + 3, worker: g.workerId, sequence: 0 });
    expect(g.nextBigInt()).toBe(BigInt(c) + 1n);
  });

  it('property: unique and strictly increasing under arbitrary wall clocks with backward and forward jumps, both policies', async () => {
    const step = fc.oneof(
      { weight: 6, arbitrary: fc.record({ pass: fc.integer({ min: 0, max: 3 }), jump: fc.constant(0), ids: fc.integer({ min: 0, max: 40 }) }) },
      { weight: 2, arbitrary: fc.record({ pass: fc.constant(0), jump: fc.integer({ min: -20_000, max: 20_000 }), ids: fc.integer({ min: 0, max: 40 }) }) },
      { weight: 1, arbitrary: fc.record({ pass: fc.constant(0), jump: fc.constant(0), ids: fc.integer({ min: MID_MAX_SEQUENCE - 2, max: MID_MAX_SEQUENCE + 300 }) }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 25 }), fc.constantFrom<'logical' | 'refuse'>('logical', 'refuse'), async (steps, policy) => {
        const backend = new MemorySeqBackend();
        const time = testTime();
        const g = await MidGenerator.open(backend, { clock: time.clock, monotonic: time.monotonic, policy, maxBackwardMs: 1_000 });
        try {
          let previous = 0n;
          const seen = new Set<string>();
          for (const s of steps) {
            time.pass(s.pass);
            time.wall += s.jump;
            for (let i = 0; i < s.ids; i++) {
              let mid: string;
              try {
                mid = await nextId(g);
              } catch (error) {
                // 'refuse' may refuse a large backward jump; nothing else may fail.
                expect(policy).toBe('refuse');
                expect(error).toMatchObject({ code: 'clock_moved_back' });
                break;
              }
              // Plain checks here: expect() per id would dominate the run time.
              const value = BigInt(mid);
              if (!(value > previous)) throw new Error(`${mid} after ${previous}`);
              if (seen.has(mid)) throw new Error(`duplicate ${mid}`);
              seen.add(mid);
              previous = value;
              const fields = decodeMid(mid);
              if (fields.worker !== g.workerId) throw new Error(`worker ${fields.worker} in ${mid}`);
              // Persisted ahead of use: no id's time reaches the durable mark.
              if (!(fields.time < persistedMax(backend, g.workerId))) throw new Error(`${mid} at or above the persisted mark`);
            }
          }
        } finally {
          await g.close();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('absorbs a small backward jump by staying on the last timestamp', async () => {
    const time = testTime();
    const g = await gen(new MemorySeqBackend(), time, { maxBackwardMs: 1_000, policy: 'refuse' });
    time.pass(10);
    const before = decodeMid(g.next());
    time.wall -= 1_000;
    const during = [g.next(), g.next()].map((m) => decodeMid(m));
    expect(during).toEqual([
      { time: before.time, worker: g.workerId, sequence: 1 },
      { time: before.time, worker: g.workerId, sequence: 2 },
    ]);
    time.wall += 1_001;
    expect(decodeMid(g.next())).toEqual({ time: before.time + 1, worker: g.workerId, sequence: 0 });
  });

  it("policy 'refuse': a larger backward jump throws clock_moved_back until the clock is back within the bound", async () => {
    const time = testTime();
    const g = await gen(new MemorySeqBackend(), time, { maxBackwardMs: 1_000, policy: 'refuse' });
    const last = g.next();
    time.wall -= 1_001;
    expect(() => g.next()).toThrow(expect.objectContaining({ code: 'clock_moved_back', backwardMs: 1_001 }));
    expect(() => g.next()).toThrow(/moved back by 1001 ms/);
    time.wall += 1;
    const resumed = g.next();
    expect(BigInt(resumed)).toBe(BigInt(last) + 1n);
  });

  it("policy 'logical': a larger backward jump keeps issuing on the logical timestamp and is reported once", async () => {
    const time = testTime();
    const reports: number[] = [];
    const g = await gen(new MemorySeqBackend(), time, { maxBackwardMs: 1_000, policy: 'logical', onClockBack: (ms) => reports.push(ms) });
    const last = decodeMid(g.next());
    time.wall -= 3_600_000;
    const ids = Array.from({ length: 5 }, () => decodeMid(g.next()));
    expect(ids.map((f) => [f.time, f.sequence])).toEqual([1, 2, 3, 4, 5].map((s) => [last.time, s]));
    expect(reports).toEqual([3_600_000]);
    expect(g.clockBackEvents).toBe(1);
  });

  it('on sequence overflow borrows the next millisecond, never wrapping, and never leads real time by more than maxLeadMs', async () => {
    const time = testTime();
    const maxLeadMs = 3;
    const g = await gen(new MemorySeqBackend(), time, { maxLeadMs });
    const mono0 = time.monoNow;
    let previous = 0n;
    const perMs = new Map<number, number>();
    for (let i = 0; i < 6 * (MID_MAX_SEQUENCE + 1); i++) {
      const mid = g.next();
      if (!(BigInt(mid) > previous)) throw new Error(`${mid} after ${previous}`);
      previous = BigInt(mid);
      const f = decodeMid(mid);
      perMs.set(f.time, (perMs.get(f.time) ?? 0) + 1);
      // The wall clock is frozen at T0; real time is what mono says has passed.
      if (f.time - T0 > Math.ceil(time.monoNow - mono0) + maxLeadMs) throw new Error(`${mid} leads real time by more than ${maxLeadMs} ms`);
    }
    expect([...perMs.keys()]).toEqual([0, 1, 2, 3, 4, 5].map((d) => T0 + d));
    expect([...perMs.values()]).toEqual(Array(6).fill(MID_MAX_SEQUENCE + 1));
  });

  it('persists the high-water mark before the first id and raises it ahead of use', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const g = await gen(backend, time, { hwmWindowMs: 1_000 });
    expect(persistedMax(backend, g.workerId)).toBe(T0 + 1_000);
    g.next();
    time.pass(600); // past half the window: a raise starts
    g.next();
    await g.ready();
    expect(persistedMax(backend, g.workerId)).toBe(T0 + 1_600);
  });

  it('a failed raise does not stop the generator: it stays below the durable mark and a later raise lands', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const g = await gen(backend, time, { hwmWindowMs: 1_000 });
    backend.failNextRaise = new Error('disk full');
    time.pass(600);
    g.next(); // starts the raise that fails
    await g.ready();
    expect(persistedMax(backend, g.workerId)).toBe(T0 + 1_000);
    time.pass(1);
    expect(decodeMid(g.next()).time).toBe(T0 + 601); // still issuing, still below the mark
    await g.ready(); // that id asked again, and this raise lands
    expect(persistedMax(backend, g.workerId)).toBe(T0 + 1_601);
  });

  it('after a forward jump past the mark keeps below it until the raise is durable, then follows the clock', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const g = await gen(backend, time, { hwmWindowMs: 1_000 });
    g.next();
    time.wall += 60_000;
    const capped = decodeMid(g.next());
    expect(capped.time).toBe(T0 + 999);
    await g.ready();
    expect(persistedMax(backend, g.workerId)).toBe(T0 + 61_000);
    expect(decodeMid(g.next()).time).toBe(T0 + 60_000);
  });

  it('says mid_not_ready (never a duplicate) when the capped millisecond is used up, and ready() clears it', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const g = await gen(backend, time, { hwmWindowMs: 1_000 });
    time.wall += 60_000;
    for (let i = 0; i <= MID_MAX_SEQUENCE; i++) expect(decodeMid(g.next()).time).toBe(T0 + 999);
    expect(() => g.next()).toThrow(expect.objectContaining({ code: 'mid_not_ready' }));
    await g.ready();
    expect(decodeMid(g.next()).time).toBe(T0 + 60_000);
  });

  it('restarts above the high-water mark when the clock is behind it (same worker after a clean close)', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime(T0 + 30_000);
    const first = await gen(backend, time);
    const lastOfFirst = BigInt(first.next());
    await first.close();
    time.wall = T0; // the machine's clock went back 30 s while down
    const second = await gen(backend, time);
    expect(second.workerId).toBe(first.workerId);
    const ids = Array.from({ length: 100 }, () => BigInt(second.next()));
    expect(ids[0]).toBeGreaterThan(lastOfFirst);
    expect(decodeMid(String(ids[0])).time).toBeGreaterThan(T0 + 30_000);
  });

  it('restarts above the mark of a crashed predecessor whose worker id is still leased', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime(T0 + 30_000);
    const crashed = await gen(backend, time); // never closed: its lease stays until expiry
    const lastOfCrashed = BigInt(crashed.next());
    time.wall = T0;
    const restarted = await gen(backend, time);
    expect(restarted.workerId).not.toBe(crashed.workerId);
    expect(BigInt(restarted.next())).toBeGreaterThan(lastOfCrashed);
  });

  it('gives live generators on one backend distinct worker ids within the field, and refuses the 129th', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const gens = [];
    for (let i = 0; i <= MID_MAX_WORKER; i++) gens.push(await gen(backend, time));
    expect(gens.map((g) => g.workerId)).toEqual(Array.from({ length: MID_MAX_WORKER + 1 }, (_, i) => i));
    for (const g of gens) expect(decodeMid(g.next()).worker).toBe(g.workerId);
    await expect(MidGenerator.open(backend, { clock: time.clock })).rejects.toMatchObject({ code: 'no_worker_id' });
    expect(backend.sections.has(midWorkerSection(MID_MAX_WORKER + 1))).toBe(false);
    await gens[5]!.close();
    expect((await gen(backend, time)).workerId).toBe(5);
  });

  it('a takeover after the lease expired fences the old holder; the two never issue the same id', async () => {
    let backendNow = T0;
    const backend = new MemorySeqBackend(() => backendNow);
    const time = testTime();
    const old = await gen(backend, time, { leaseMs: 1_000, hwmWindowMs: 1_000 });
    const oldIds = [old.next(), old.next()];
    backendNow += 1_001; // old holder stalled past its lease
    const successor = await gen(backend, time, { leaseMs: 1_000 });
    expect(successor.workerId).toBe(old.workerId);
    const newIds = [successor.next(), successor.next()];
    for (const n of newIds) for (const o of oldIds) expect(BigInt(n)).toBeGreaterThan(BigInt(o));
    // The old holder's next durable write is fenced: it stops issuing.
    time.pass(700);
    old.next();
    await expect(old.ready()).rejects.toMatchObject({ code: 'fenced' });
    expect(() => old.next()).toThrow(expect.objectContaining({ code: 'fenced' }));
  });

  it('stops with lease_expired when the store stalls past the lease, and keeps below the durable mark until then', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const g = await gen(backend, time, { leaseMs: 30 }); // renewal timer every 10 ms
    let resume = () => {};
    backend.stalled = new Promise<void>((resolve) => (resume = resolve));
    const before = g.next();
    time.pass(31); // real (monotonic) time passes beyond the lease without a renewal landing
    await vi.waitFor(() => expect(() => g.next()).toThrow(expect.objectContaining({ code: 'lease_expired' })));
    expect(decodeMid(before).time).toBeLessThan(persistedMax(backend, g.workerId));
    resume();
    backend.stalled = undefined;
  });

  it('a lease that ran out only here (renewals late, nobody took over) comes back after a renewal lands, above every id before', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const g = await gen(backend, time, { leaseMs: 30 });
    let resume = () => {};
    backend.stalled = new Promise<void>((resolve) => (resume = resolve));
    const before = g.next();
    time.pass(31);
    await vi.waitFor(() => expect(() => g.next()).toThrow(expect.objectContaining({ code: 'lease_expired' })));
    backend.stalled = undefined;
    resume();
    // The late renewal was sent before the lease ran out and does not count; the timer's next one does.
    const after = await vi.waitFor(() => g.next());
    expect(BigInt(after)).toBeGreaterThan(BigInt(before));
    expect(decodeMid(after).worker).toBe(g.workerId);
    await expect(g.ready()).resolves.toBeUndefined();
  });

  it('a takeover while the lease had run out here fences the old holder for good; the two never issue the same id', async () => {
    let backendNow = T0;
    const backend = new MemorySeqBackend(() => backendNow);
    const time = testTime();
    const old = await gen(backend, time, { leaseMs: 30, hwmWindowMs: 1_000 });
    const oldIds = [old.next()];
    let resume = () => {};
    backend.stalled = new Promise<void>((resolve) => (resume = resolve));
    time.pass(31);
    await vi.waitFor(() => expect(() => old.next()).toThrow(expect.objectContaining({ code: 'lease_expired' })));
    backend.stalled = undefined;
    backendNow += 31; // the store sees the lease run out too, and another process takes the worker id
    const successor = await gen(backend, time, { leaseMs: 30 });
    expect(successor.workerId).toBe(old.workerId);
    const newIds = [successor.next()];
    resume();
    await vi.waitFor(() => expect(() => old.next()).toThrow(expect.objectContaining({ code: 'fenced' })));
    time.pass(100);
    await new Promise((resolve) => setTimeout(resolve, 50)); // more of the old holder's timer ticks: it stays fenced
    expect(() => old.next()).toThrow(expect.objectContaining({ code: 'fenced' }));
    for (const n of newIds) for (const o of oldIds) expect(BigInt(n)).toBeGreaterThan(BigInt(o));
  });

  it('reaches the end of the time range with a clear error, every id before it positive and in range', async () => {
    const time = testTime(E + MID_MAX_TIME); // the wall clock sits on the last millisecond of the field
    const g = await gen(new MemorySeqBackend(), time);
    let previous = 0n;
    for (let i = 0; i <= MID_MAX_SEQUENCE; i++) {
      const mid = g.next();
      expect(mid).toMatch(/^[1-9][0-9]*$/);
      expect(BigInt(mid)).toBeGreaterThan(previous);
      expect(BigInt(mid)).toBeLessThanOrEqual((1n << 63n) - 1n);
      previous = BigInt(mid);
    }
    expect(previous).toBe((1n << 63n) - 1n - BigInt(MID_MAX_WORKER - g.workerId) * BigInt(MID_MAX_SEQUENCE + 1));
    expect(() => g.next()).toThrow(expect.objectContaining({ code: 'mid_time_exhausted' }));
    time.pass(5);
    expect(() => g.next()).toThrow(expect.objectContaining({ code: 'mid_time_exhausted' }));
  });

  it('refuses to open past the end of the time range or before the epoch', async () => {
    const backend = new MemorySeqBackend();
    await expect(MidGenerator.open(backend, { clock: () => E + MID_MAX_TIME + 1 })).rejects.toMatchObject({ code: 'mid_time_exhausted' });
    await expect(MidGenerator.open(backend, { clock: () => E - 1 })).rejects.toThrow(/not after the ids' epoch/);
    // Neither failed open keeps a worker id.
    expect((await gen(backend, testTime())).workerId).toBe(0);
  });

  it('close stops issuing and frees the worker id', async () => {
    const backend = new MemorySeqBackend();
    const time = testTime();
    const g = await gen(backend, time);
    g.next();
    await g.close();
    expect(() => g.next()).toThrow(expect.objectContaining({ code: 'closed' }));
    expect((await gen(backend, time)).workerId).toBe(0);
  });

  it('refuses bad options at open', async () => {
    const backend = new MemorySeqBackend();
    await expect(MidGenerator.open(backend, { leaseMs: 0 })).rejects.toThrow(/leaseMs/);
    await expect(MidGenerator.open(backend, { maxBackwardMs: -1 })).rejects.toThrow(/maxBackwardMs/);
    await expect(MidGenerator.open(backend, { policy: 'wrap' as 'logical' })).rejects.toThrow(/policy/);
    await expect(MidGenerator.open(backend, { hwmWindowMs: 1.5 })).rejects.toThrow(/hwmWindowMs/);
    expect(backend.sections.size).toBe(0);
  });
});
