/**
 * One conversation's receive side: entries arrive from pushes, sync batches and
 * our own acks, in any order and possibly twice; they leave exactly once.
 *
 * - `ordered`: an entry is delivered only when every lower seq has been; later
 *   ones wait in `held`.
 * - `immediate`: an entry is delivered as soon as it arrives (the view gives
 *   the index where it belongs); `above` remembers what was delivered past the
 *   cursor, for dedup.
 *
 * Both modes keep `cursor`, the highest seq up to which everything has been
 * delivered (or is unreadable for this user), and both report a gap that stays
 * open for gapWaitMs, so that a sync can fill it.
 */
import type { Entry } from '../protocol/frames.js';
import { startTimer, type TimerHandle } from './backoff.js';
import type { DeliveryMode } from './options.js';

export interface ReorderHooks {
  deliver(entry: Entry): void;
  /** The cursor moved up (persist it). */
  cursor(cursor: number): void;
  /** A gap stayed open for gapWaitMs. */
  gap(): void;
}

export class ReorderBuffer {
  private readonly held = new Map<number, Entry>();
  private readonly above = new Set<number>();
  private gapTimer: TimerHandle | undefined;
  private highest: number;

  constructor(
    readonly conv: string,
    private position: number,
    private readonly mode: DeliveryMode,
    private readonly gapWaitMs: number,
    private readonly hooks: ReorderHooks,
  ) {
    this.highest = position;
  }

  /** Everything up to here was delivered (or is not readable). */
  get cursor(): number {
    return this.position;
  }

  /** The highest seq seen so far. */
  get highestSeen(): number {
    return this.highest;
  }

  get hasGap(): boolean {
    return this.held.size > 0 || this.above.size > 0;
  }

  /** Takes one entry; returns false if it was already delivered or is waiting. */
  accept(entry: Entry): boolean {
    const seq = entry.seq;
    if (seq <= this.position || this.held.has(seq) || this.above.has(seq)) return false;
    this.highest = Math.max(this.highest, seq);
    if (this.mode === 'immediate') {
      this.hooks.deliver(entry);
      if (seq === this.position + 1) this.advance(seq);
      else this.above.add(seq);
    } else if (seq === this.position + 1) {
      this.hooks.deliver(entry);
      this.advance(seq);
    } else {
      this.held.set(seq, entry);
    }
    this.recheck();
    return true;
  }

  /** Seqs up to `seq` cannot be read by this user (before it joined): stop waiting for them. */
  skipTo(seq: number): void {
    if (seq <= this.position) return;
    this.highest = Math.max(this.highest, seq);
    // Entries that did arrive are readable after all: deliver them, never drop.
    for (const held of [...this.held.keys()].sort((a, b) => a - b)) {
      if (held > seq) break;
      const entry = this.held.get(held) as Entry;
      this.held.delete(held);
      this.hooks.deliver(entry);
    }
    for (const delivered of [...this.above]) if (delivered <= seq) this.above.delete(delivered);
    this.advance(seq);
    this.recheck();
  }

  /** Arms the gap timer if a gap is open and no timer runs; disarms it when none is. */
  recheck(): void {
    if (!this.hasGap) {
      // Called for every entry: clearTimeout only when a timer runs.
      if (this.gapTimer !== undefined) {
        clearTimeout(this.gapTimer);
        this.gapTimer = undefined;
      }
      return;
    }
    this.gapTimer ??= startTimer(() => {
      this.gapTimer = undefined;
      if (this.hasGap) this.hooks.gap();
    }, this.gapWaitMs);
  }

  stop(): void {
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
  }

  /** Sets the cursor to `seq`, then moves it over everything contiguous behind it. */
  private advance(seq: number): void {
    let cursor = seq;
    for (;;) {
      const next = cursor + 1;
      const waiting = this.held.get(next);
      if (waiting) {
        this.held.delete(next);
        this.hooks.deliver(waiting);
      } else if (this.above.has(next)) {
        this.above.delete(next);
      } else {
        break;
      }
      cursor = next;
    }
    this.position = cursor;
    this.hooks.cursor(cursor);
  }
}
