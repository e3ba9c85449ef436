/**
 * The one conformance suite of the step-persisted counters: every SeqBackend
 * (SQLite, PostgreSQL) runs it. A factory hands each test fresh, empty data and a
 * way to open more handles on it (a second handle stands for a second process or
 * a restarted one); the child-process tests in counter-processes.ts run the same
 * data from real processes killed with SIGKILL.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  FencedError,
  LeaseExpiredError,
  LeaseHeldError,
  MAX_COUNTER,
  SeqError,
  SeqExhaustedError,
  SeqOverflowError,
  SequenceCounters,
  type SequenceCountersOptions,
  type SeqBackend,
} from '../../packages/server/src/seq/index.js';
import { describeCounterProcesses, type ChildBackendSpec } from './counter-processes.js';
import { ProbeBackend, eventually, sleep } from './counter-probe.js';

/** What fn threw (undefined if it returned). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

export interface CounterFixture {
  /** A new handle on this fixture's data: a new file handle or connection pool. */
  open(): Promise<SeqBackend>;
  /** How a child process opens the same data. */
  child: ChildBackendSpec;
  /** Drops the data; every handle is closed by then. */
  dispose(): Promise<void>;
}

export interface CounterConformanceOptions {
  /** fast-check runs of the restart property. */
  propertyRuns: number;
  /** SIGKILL rounds of the crash test. */
  crashRounds: number;
}

export function describeCounterConformance(name: string, factory: () => Promise<CounterFixture>, options: CounterConformanceOptions): void {
  describe(`counters on ${name}`, () => {
    let fixture: CounterFixture;
    let handles: SeqBackend[];
    let counters: SequenceCounters[];

    beforeEach(async () => {
      fixture = await factory();
      handles = [];
      counters = [];
    });
    afterEach(async () => {
      for (const c of counters) await c.close();
      for (const h of handles) await h.close();
      await fixture.dispose();
    });

    const backend = async (): Promise<SeqBackend> => {
      const b = await fixture.open();
      handles.push(b);
      return b;
    };
    const probe = async () => new ProbeBackend(await backend());
    const open = async (b: SeqBackend, opts: SequenceCountersOptions = {}) => {
      const c = await SequenceCounters.open(b, opts);
      counters.push(c);
      return c;
    };

    describe('backend contract', () => {
      it('acquire creates a section at max 0, epoch 1; read shows it and nothing for unknown sections', async () => {
        const b = await backend();
        expect(await b.read('s')).toBeUndefined();
        const lease = await b.acquire('s', 'A', 60_000);
        expect(lease).toMatchObject({ section: 's', holder: 'A', epoch: 1, max: 0 });
        expect(await b.read('s')).toMatchObject({ section: 's', holder: 'A', epoch: 1, max: 0 });
      });

      it('refuses a second holder while the lease is live; the same holder re-acquires under a new epoch that fences the old one', async () => {
        const [a, b] = [await backend(), await backend()];
        const first = await a.acquire('s', 'A', 60_000);
        const refused = await b.acquire('s', 'B', 60_000).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(LeaseHeldError);
        expect((refused as LeaseHeldError).code).toBe('lease_held');
        expect((refused as LeaseHeldError).holder).toBe('A');
        const again = await b.acquire('s', 'A', 60_000);
        expect(again.epoch).toBeGreaterThan(first.epoch);
        await expect(a.raise('s', first.epoch, 10, 60_000)).rejects.toBeInstanceOf(FencedError);
        await expect(a.renew('s', first.epoch, 60_000)).rejects.toMatchObject({ code: 'fenced' });
        expect((await a.read('s'))?.max).toBe(0);
      });

      it('lets another holder take over only after expiry, bumping the epoch; the stale holder can no longer raise, renew or release', async () => {
        const [a, b] = [await backend(), await backend()];
        const stale = await a.acquire('s', 'A', 100);
        await a.raise('s', stale.epoch, 50, 100);
        const taken = await eventually('the lease to expire', async () => {
          try {
            return await b.acquire('s', 'B', 60_000);
          } catch (err) {
            if (err instanceof LeaseHeldError) return undefined;
            throw err;
          }
        });
        expect(taken.epoch).toBe(stale.epoch + 1);
        expect(taken.max).toBe(50);
        await expect(a.raise('s', stale.epoch, 100, 60_000)).rejects.toBeInstanceOf(FencedError);
        await expect(a.renew('s', stale.epoch, 60_000)).rejects.toBeInstanceOf(FencedError);
        await a.release('s', stale.epoch);
        expect(await a.read('s')).toMatchObject({ holder: 'B', epoch: taken.epoch, max: 50 });
        await expect(a.acquire('s', 'C', 60_000)).rejects.toBeInstanceOf(LeaseHeldError);
      });

      it('raise is durable across handles and reopen, only goes up, and stops at 2^53 - 1', async () => {
        const a = await backend();
        const lease = await a.acquire('s', 'A', 60_000);
        await a.raise('s', lease.epoch, 1_000, 60_000);
        expect((await (await backend()).read('s'))?.max).toBe(1_000);
        await expect(a.raise('s', lease.epoch, 1_000, 60_000)).rejects.toBeInstanceOf(RangeError);
        await expect(a.raise('s', lease.epoch, 999, 60_000)).rejects.toBeInstanceOf(RangeError);
        await expect(a.raise('s', lease.epoch, MAX_COUNTER + 2, 60_000)).rejects.toBeInstanceOf(SeqOverflowError);
        await a.raise('s', lease.epoch, MAX_COUNTER, 60_000);
        await a.close();
        handles.splice(handles.indexOf(a), 1);
        expect((await (await backend()).read('s'))?.max).toBe(MAX_COUNTER);
      });

      it('release frees the section at once for another holder, even if a write of the old holder lands after it', async () => {
        const [a, b] = [await backend(), await backend()];
        const lease = await a.acquire('s', 'A', 60_000);
        await a.release('s', lease.epoch);
        // A raise or renewal that was in flight when the holder released.
        await a.raise('s', lease.epoch, 10, 60_000);
        await a.renew('s', lease.epoch, 60_000);
        expect((await b.acquire('s', 'B', 60_000)).epoch).toBe(lease.epoch + 1);
      });

      it('racing acquires of one section: exactly one wins', async () => {
        const handlesForRace = await Promise.all([backend(), backend(), backend()]);
        const results = await Promise.allSettled(handlesForRace.map((h, i) => h.acquire('s', `H${i}`, 60_000)));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LeaseHeldError);
      });

      it('meta: missing, set, overwritten; a fenced write with a stale epoch is refused and changes nothing', async () => {
        const [a, b] = [await backend(), await backend()];
        expect(await a.getMeta('k')).toBeUndefined();
        await a.setMeta('k', 'one');
        await a.setMeta('k', 'two');
        expect(await b.getMeta('k')).toBe('two');
        const old = await a.acquire('s', 'A', 60_000);
        await a.setMeta('k', 'three', { section: 's', epoch: old.epoch });
        await b.acquire('s', 'A', 60_000);
        await expect(a.setMeta('k', 'stale', { section: 's', epoch: old.epoch })).rejects.toBeInstanceOf(FencedError);
        await expect(a.setMeta('k', 'nowhere', { section: 'never-acquired', epoch: 1 })).rejects.toBeInstanceOf(FencedError);
        expect(await b.getMeta('k')).toBe('three');
      });
    });

    describe('SequenceCounters', () => {
      it('property: per key strictly increasing and unique over many keys, restarts and reopen without close; every number covered by a durable max first', async () => {
        let run = 0;
        const op = fc.oneof(
          { weight: 12, arbitrary: fc.record({ kind: fc.constant('next' as const), key: fc.integer({ min: 0, max: 9 }), count: fc.integer({ min: 1, max: 40 }) }) },
          // Uses a key up to exactly the persisted max: a restart right after is the edge that matters.
          { weight: 2, arbitrary: fc.record({ kind: fc.constant('to-max' as const), key: fc.integer({ min: 0, max: 9 }) }) },
          { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
          { weight: 1, arbitrary: fc.constant({ kind: 'reopen-without-close' as const }) },
        );
        const params = fc.record({
          step: fc.integer({ min: 1, max: 30 }),
          sections: fc.integer({ min: 1, max: 4 }),
          raiseAhead: fc.constantFrom(0, 0.25, 0.5, 1),
          ops: fc.array(op, { maxLength: 30 }),
        });
        await fc.assert(
          fc.asyncProperty(params, async ({ step, sections, raiseAhead, ops }) => {
            const opts = { step, maxStep: step * 4, sections, raiseAhead, holder: 'prop', name: `p${++run}` };
            // Handles and instances of this run only, closed when it ends (PostgreSQL pools are finite).
            const runHandles: SeqBackend[] = [];
            const runCounters: SequenceCounters[] = [];
            const start = async (p: ProbeBackend) => {
              const c = await SequenceCounters.open(p, opts);
              runCounters.push(c);
              return c;
            };
            const newProbe = async () => {
              const b = await fixture.open();
              runHandles.push(b);
              return new ProbeBackend(b);
            };
            try {
              let p = await newProbe();
              let c = await start(p);
              const last = new Map<string, number>();
              const seen = new Set<string>();
              const take = async (key: string): Promise<number> => {
                let n: number;
                try {
                  n = c.next(key);
                } catch (err) {
                  if (!(err instanceof SeqExhaustedError)) throw err;
                  await c.ready(key);
                  n = c.next(key);
                }
                const durable = p.durable.get(c.sectionOf(key)) ?? 0;
                if (n > durable) throw new Error(`${key}: ${n} handed out above the durable max ${durable}`);
                if (!(n > (last.get(key) ?? 0))) throw new Error(`${key}: ${n} after ${last.get(key)}`);
                if (seen.has(`${key}/${n}`)) throw new Error(`${key}: ${n} twice`);
                seen.add(`${key}/${n}`);
                last.set(key, n);
                return durable;
              };
              for (const o of ops) {
                if (o.kind === 'restart' || o.kind === 'reopen-without-close') {
                  if (o.kind === 'restart') {
                    await c.close();
                  } else {
                    // As after kill -9: the old instance is simply abandoned; a new handle takes over.
                    p = await newProbe();
                  }
                  c = await start(p);
                  // Every key used before must come back above where it was.
                  for (const key of [...last.keys()]) await take(key);
                  continue;
                }
                const key = `key-${o.key}`;
                if (o.kind === 'to-max') {
                  for (let i = 0; i < 10 * step + 10; i++) if ((await take(key)) === last.get(key)) break;
                } else {
                  for (let i = 0; i < o.count; i++) await take(key);
                }
              }
              for (const [key, n] of last) expect((await p.read(c.sectionOf(key)))?.max).toBeGreaterThanOrEqual(n);
            } finally {
              for (const c of runCounters) await c.close();
              for (const h of runHandles) await h.close();
            }
          }),
          { numRuns: options.propertyRuns },
        );
      });

      it('a restart right after a key used the last persisted number starts above it', async () => {
        const b = await backend();
        const opts = { step: 5, maxStep: 5, sections: 1, raiseAhead: 0 };
        const c = await open(b, opts);
        for (let n = 1; n <= 5; n++) expect(c.next('k')).toBe(n);
        expect((await b.read('counters:0'))?.max).toBe(5);
        await c.close();
        expect((await open(b, opts)).next('k')).toBe(6);
      });

      it('the persisted max read back after each next is never below the number returned', async () => {
        const b = await backend();
        const c = await open(b, { step: 7, maxStep: 7, sections: 2 });
        for (let i = 0; i < 60; i++) {
          const key = `k${i % 3}`;
          const n = await c.nextAsync(key);
          expect((await b.read(c.sectionOf(key)))?.max).toBeGreaterThanOrEqual(n);
        }
      });

      it('double buffering: the raise starts at the mark, numbers up to the old max flow while it is in flight, none above it', async () => {
        const p = await probe();
        const c = await open(p, { step: 100, maxStep: 100, sections: 1, raiseAhead: 0.5 });
        expect(p.raises).toEqual([{ section: 'counters:0', from: 0, to: 100 }]);
        const letRaisesThrough = p.hold();
        // Should an assertion fail, the held raise must still land, or closing would wait for it forever.
        onTestFinished(letRaisesThrough);
        for (let n = 1; n <= 50; n++) expect(c.next('k')).toBe(n);
        expect(p.raises).toHaveLength(1);
        expect(c.next('k')).toBe(51);
        expect(p.raises).toHaveLength(2);
        expect(p.pendingRaises).toBe(1);
        for (let n = 52; n <= 100; n++) expect(c.next('k')).toBe(n);
        const exhausted = thrown(() => c.next('k'));
        expect(exhausted).toBeInstanceOf(SeqExhaustedError);
        expect((exhausted as SeqError).code).toBe('seq_exhausted');
        expect((await p.read('counters:0'))?.max).toBe(100);
        letRaisesThrough();
        await c.ready('k');
        expect(c.next('k')).toBe(101);
        expect((await p.read('counters:0'))?.max).toBe(200);
      });

      it('adaptive step: doubles while segments go fast, bounded by maxStep; halves back to step when they go slow', async () => {
        let now = 0;
        const p = await probe();
        const c = await open(p, { step: 100, maxStep: 800, sections: 1, raiseAhead: 0, growBelowMs: 1_000, shrinkAboveMs: 5_000, leaseMs: 600_000, now: () => now });
        const drain = async (times: number, advanceMs: number) => {
          for (let i = 0; i < times; i++) {
            now += advanceMs;
            await c.nextAsync('k');
            while (p.pendingRaises === 0) {
              try {
                c.next('k');
              } catch (err) {
                if (!(err instanceof SeqExhaustedError)) throw err;
              }
            }
            await c.ready('k');
          }
        };
        await drain(5, 0);
        await drain(4, 6_000);
        expect(p.raises.map((r) => r.to - r.from)).toEqual([100, 200, 400, 800, 800, 800, 400, 200, 100, 100]);
      });

      it('a second holder is refused while the first is live; a refused open takes no section', async () => {
        const a = await open(await backend(), { sections: 4, holder: 'A' });
        await expect(open(await backend(), { sections: 4, holder: 'B' })).rejects.toBeInstanceOf(LeaseHeldError);
        expect(await a.nextAsync('x')).toBeGreaterThan(0);
        await a.close();

        const other = await backend();
        await other.acquire('counters:2', 'squatter', 60_000);
        await expect(open(await backend(), { sections: 4, holder: 'C' })).rejects.toBeInstanceOf(LeaseHeldError);
        for (const s of ['counters:0', 'counters:1', 'counters:3']) expect((await other.read(s))?.holder).not.toBe('C');
      });

      it('a stale instance is fenced by a restart under the same holder: its next raise fails with FencedError and its numbers stay below the new ones', async () => {
        const old = await open(await backend(), { step: 10, maxStep: 10, sections: 1, holder: 'H' });
        const before = [old.next('k'), old.next('k')];
        const fresh = await open(await backend(), { step: 10, maxStep: 10, sections: 1, holder: 'H' });
        const after = await fresh.nextAsync('k');
        const stale: number[] = [];
        const failure = await (async () => {
          for (;;) stale.push(await old.nextAsync('k'));
        })().catch((e: unknown) => e);
        expect(failure).toBeInstanceOf(FencedError);
        expect(() => old.next('k')).toThrow(FencedError);
        for (const n of [...before, ...stale]) expect(n).toBeLessThan(after);
      });

      it('takeover after expiry of a partitioned holder: it stops serving, the new holder starts above it, and its late renew is fenced for good', async () => {
        const p = await probe();
        const a = await open(p, { step: 10, maxStep: 10, sections: 1, holder: 'A', leaseMs: 200 });
        const fromA = [a.next('k'), a.next('k')];
        p.renewFails = true;
        const b = await eventually('the takeover', async () => open(await backend(), { step: 10, sections: 1, holder: 'B' }).catch((err: unknown) => {
          if (err instanceof LeaseHeldError) return undefined;
          throw err;
        }));
        const fromB = await b.nextAsync('k');
        expect(Math.max(...fromA)).toBeLessThan(fromB);
        const stale = p.leases.get('counters:0')!;
        expect((await p.read('counters:0'))!.epoch).toBeGreaterThan(stale.epoch);
        await expect(p.inner.raise('counters:0', stale.epoch, 1_000_000, 1_000)).rejects.toBeInstanceOf(FencedError);
        expect(() => a.next('k')).toThrow(LeaseExpiredError);
        p.renewFails = false;
        await eventually('the fenced renewal', () => {
          try {
            a.next('k');
          } catch (err) {
            return err instanceof FencedError ? true : undefined;
          }
          throw new Error('the stale holder handed out a number');
        });
      });

      it('a lease that ran out only locally (renewals failing, nobody took over) stops next() and resumes after a renewal', async () => {
        const p = await probe();
        const c = await open(p, { step: 1_000, sections: 1, leaseMs: 200 });
        const first = c.next('k');
        p.renewFails = true;
        const failure = await eventually('the local expiry', () => {
          try {
            c.next('k');
            return undefined;
          } catch (err) {
            return err;
          }
        });
        expect(failure).toBeInstanceOf(LeaseExpiredError);
        expect((failure as SeqError).code).toBe('lease_expired');
        p.renewFails = false;
        const resumed = await eventually('the renewal', () => {
          try {
            return c.next('k');
          } catch {
            return undefined;
          }
        });
        expect(resumed).toBeGreaterThan(first);
      });

      it('refuses to reopen with another number of sections (keys would move to sections with a lower max)', async () => {
        const b = await backend();
        const c = await open(b, { sections: 4 });
        await c.close();
        await expect(open(b, { sections: 8 })).rejects.toMatchObject({ code: 'config_mismatch' });
        await expect(open(b, { sections: 4 })).resolves.toBeInstanceOf(SequenceCounters);
      });

      it('stops at 2^53 - 1 with SeqOverflowError, never handing out an unsafe integer', async () => {
        const b = await backend();
        const setup = await b.acquire('counters:0', 'setup', 60_000);
        await b.raise('counters:0', setup.epoch, MAX_COUNTER - 5, 60_000);
        await b.release('counters:0', setup.epoch);
        const c = await open(b, { step: 10, sections: 1 });
        const got: number[] = [];
        for (let i = 0; i < 5; i++) got.push(await c.nextAsync('k'));
        expect(got).toEqual([MAX_COUNTER - 4, MAX_COUNTER - 3, MAX_COUNTER - 2, MAX_COUNTER - 1, MAX_COUNTER]);
        expect(() => c.next('k')).toThrow(SeqOverflowError);
        await expect(c.nextAsync('k')).rejects.toMatchObject({ code: 'seq_overflow' });
      });

      it('close: next() throws "closed", and the sections are free for another holder at once', async () => {
        const b = await backend();
        const c = await open(b, { sections: 2, holder: 'A' });
        const n = c.next('k');
        await c.close();
        expect(thrown(() => c.next('k'))).toMatchObject({ code: 'closed' });
        expect(thrown(() => c.next('new-key'))).toMatchObject({ code: 'closed' });
        const d = await open(await backend(), { sections: 2, holder: 'B' });
        expect(d.next('k')).toBeGreaterThan(n);
      });
    });

    describeCounterProcesses(() => fixture, options.crashRounds);
  });
}
