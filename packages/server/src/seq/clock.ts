/**
 * A hybrid clock in milliseconds: it follows the wall clock, never moves back when
 * the wall clock does, and folds in timestamps seen from other nodes (or read back
 * from storage) so that what it reports next is not below them.
 *
 * Guarantees, for one HybridClock instance:
 * - now() never decreases, whatever the wall clock does (a wall clock that jumps
 *   back leaves now() where it was until the wall clock catches up);
 * - now() is never below the wall clock's current reading;
 * - after observe(ts), now() >= min(ts, wall + maxDriftMs), with wall read at the
 *   observe;
 * - drift bound: now() never exceeds W + maxDriftMs, where W is the highest wall
 *   reading this clock has taken. A remote timestamp further ahead than that is
 *   clamped to wall + maxDriftMs (not adopted), counted in `clampedObservations`
 *   and reported to `onClamp`, so one node with a runaway clock cannot drag every
 *   other node's timestamps into the future.
 */

export const DEFAULT_MAX_DRIFT_MS = 60_000;

export interface HybridClockOptions {
  /** Wall clock in ms since the Unix epoch; Date.now by default (injectable for tests). */
  wall?: () => number;
  /** How far ahead of the local wall clock an observed timestamp may pull now(); default 60 s. */
  maxDriftMs?: number;
  /** Called when observe() had to clamp a timestamp: the value seen and the value adopted. */
  onClamp?: (observed: number, adopted: number) => void;
}

export class HybridClock {
  readonly maxDriftMs: number;
  /** How many observed timestamps were further ahead than maxDriftMs and clamped. */
  clampedObservations = 0;
  private readonly wall: () => number;
  private readonly onClamp: ((observed: number, adopted: number) => void) | undefined;
  private last = Number.NEGATIVE_INFINITY;

  constructor(options: HybridClockOptions = {}) {
    const maxDriftMs = options.maxDriftMs ?? DEFAULT_MAX_DRIFT_MS;
    if (!Number.isSafeInteger(maxDriftMs) || maxDriftMs < 0) {
      throw new RangeError(`maxDriftMs must be a non-negative integer, got ${maxDriftMs}`);
    }
    this.maxDriftMs = maxDriftMs;
    this.wall = options.wall ?? Date.now;
    this.onClamp = options.onClamp;
  }

  /** The current time in ms; never below an earlier now() of this clock. */
  now(): number {
    const wall = this.readWall();
    if (wall > this.last) this.last = wall;
    return this.last;
  }

  /**
   * Merges a timestamp from elsewhere: later now() calls return at least it, unless
   * it is more than maxDriftMs ahead of the wall clock, in which case it is clamped
   * to wall + maxDriftMs and reported. Non-finite values are ignored.
   */
  observe(ts: number): void {
    if (!Number.isFinite(ts) || ts <= this.last) return;
    const wall = this.readWall();
    const ceiling = wall + this.maxDriftMs;
    let adopted = ts;
    if (ts > ceiling) {
      adopted = ceiling;
      this.clampedObservations++;
      this.onClamp?.(ts, ceiling);
    }
    if (adopted > this.last) this.last = adopted;
  }

  private readWall(): number {
    // A wall clock returning fractions or garbage must not leak into timestamps.
    const wall = Math.floor(this.wall());
    if (!Number.isFinite(wall)) throw new RangeError(`the wall clock returned ${wall}`);
    return wall;
  }
}
