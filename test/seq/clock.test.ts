import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { DEFAULT_MAX_DRIFT_MS, HybridClock } from '../../packages/server/src/seq/clock.js';

/** A wall clock the test sets by hand. */
function manualWall(start: number) {
  const wall = { t: start, read: () => wall.t };
  return wall;
}

const T0 = Date.UTC(2026, 0, 1);

describe('HybridClock', () => {
  it('follows the wall clock while it moves forward', () => {
    const wall = manualWall(T0);
    const clock = new HybridClock({ wall: wall.read });
    expect(clock.now()).toBe(T0);
    wall.t = T0 + 5;
    expect(clock.now()).toBe(T0 + 5);
  });

  it('does not move back when the wall clock jumps back, and resumes once it catches up', () => {
    const wall = manualWall(T0 + 1000);
    const clock = new HybridClock({ wall: wall.read });
    expect(clock.now()).toBe(T0 + 1000);
    wall.t = T0; // an NTP step back by one second
    expect(clock.now()).toBe(T0 + 1000);
    wall.t = T0 + 999;
    expect(clock.now()).toBe(T0 + 1000);
    wall.t = T0 + 1001;
    expect(clock.now()).toBe(T0 + 1001);
  });

  it('adopts an observed timestamp within the drift bound', () => {
    const wall = manualWall(T0);
    const clock = new HybridClock({ wall: wall.read, maxDriftMs: 500 });
    clock.observe(T0 + 500);
    expect(clock.now()).toBe(T0 + 500);
    expect(clock.clampedObservations).toBe(0);
  });

  it('ignores observed timestamps at or below its current time', () => {
    const wall = manualWall(T0 + 100);
    const clock = new HybridClock({ wall: wall.read });
    clock.now();
    clock.observe(T0);
    clock.observe(Number.NaN);
    clock.observe(Number.POSITIVE_INFINITY);
    expect(clock.now()).toBe(T0 + 100);
    expect(clock.clampedObservations).toBe(0);
  });

  it('clamps a timestamp further ahead than maxDriftMs to wall + maxDriftMs and reports it', () => {
    const wall = manualWall(T0);
    const seen: Array<[number, number]> = [];
    const clock = new HybridClock({ wall: wall.read, maxDriftMs: 500, onClamp: (o, a) => seen.push([o, a]) });
    clock.observe(T0 + 3_600_000);
    expect(clock.now()).toBe(T0 + 500);
    expect(clock.clampedObservations).toBe(1);
    expect(seen).toEqual([[T0 + 3_600_000, T0 + 500]]);
  });

  it('defaults the drift bound to one minute', () => {
    const wall = manualWall(T0);
    const clock = new HybridClock({ wall: wall.read });
    expect(clock.maxDriftMs).toBe(DEFAULT_MAX_DRIFT_MS);
    clock.observe(T0 + DEFAULT_MAX_DRIFT_MS + 1);
    expect(clock.now()).toBe(T0 + DEFAULT_MAX_DRIFT_MS);
  });

  it('floors fractional wall readings and refuses a non-finite wall clock', () => {
    const wall = manualWall(T0 + 0.9);
    const clock = new HybridClock({ wall: wall.read });
    expect(clock.now()).toBe(T0);
    wall.t = Number.NaN;
    expect(() => clock.now()).toThrow(/wall clock returned NaN/);
  });

  it('refuses a negative or fractional maxDriftMs', () => {
    expect(() => new HybridClock({ maxDriftMs: -1 })).toThrow(RangeError);
    expect(() => new HybridClock({ maxDriftMs: 1.5 })).toThrow(RangeError);
  });

  it('property: never decreases, never below the wall, never beyond the highest wall reading + maxDriftMs', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('wall' as const), delta: fc.integer({ min: -86_400_000, max: 86_400_000 }) }),
      fc.record({ kind: fc.constant('now' as const) }),
      fc.record({ kind: fc.constant('observe' as const), delta: fc.integer({ min: -86_400_000, max: 86_400_000 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 120_000 }), fc.array(step, { maxLength: 200 }), (maxDriftMs, steps) => {
        const wall = manualWall(T0);
        const clock = new HybridClock({ wall: wall.read, maxDriftMs });
        let previous = Number.NEGATIVE_INFINITY;
        let highestWall = wall.t;
        for (const s of steps) {
          if (s.kind === 'wall') {
            wall.t += s.delta;
            continue;
          }
          if (s.kind === 'observe') {
            clock.observe(wall.t + s.delta);
            highestWall = Math.max(highestWall, wall.t);
            continue;
          }
          const now = clock.now();
          highestWall = Math.max(highestWall, wall.t);
          expect(now).toBeGreaterThanOrEqual(previous);
          expect(now).toBeGreaterThanOrEqual(wall.t);
          expect(now).toBeLessThanOrEqual(highestWall + maxDriftMs);
          previous = now;
        }
      }),
    );
  });

  it('property: after observe(ts), now() is at least min(ts, wall + maxDriftMs)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.array(fc.tuple(fc.integer({ min: -50_000, max: 50_000 }), fc.integer({ min: -50_000, max: 50_000 })), { maxLength: 100 }),
        (maxDriftMs, steps) => {
          const wall = manualWall(T0);
          const clock = new HybridClock({ wall: wall.read, maxDriftMs });
          for (const [wallDelta, tsDelta] of steps) {
            wall.t += wallDelta;
            const ts = wall.t + tsDelta;
            clock.observe(ts);
            expect(clock.now()).toBeGreaterThanOrEqual(Math.min(ts, wall.t + maxDriftMs));
          }
        },
      ),
    );
  });
});
