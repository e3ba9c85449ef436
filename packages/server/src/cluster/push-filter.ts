/**
 * Pushes that cross the bus are hints: they may come twice, late, out of order
 * or not at all. A gateway keeps one PushFilter per connection; per
 * conversation it remembers the highest seq pushed to that connection and
 *
 * - drops anything at or below it (a duplicate, or a hint overtaken by a fill);
 * - pushes the next seq at once;
 * - on a gap, asks `fill(conv, after, upTo)` for the missing entries from the
 *   store and pushes them in order before what arrived, and keeps anything that
 *   arrives meanwhile to push in order after the fill.
 *
 * If a fill fails or comes back short, the filter reports it (`onUnfilled`) and
 * pushes what it holds anyway, in order: the client sees the gap itself and
 * syncs, which is slower but never wrong, and one bad read does not stall the
 * conversation for this connection. No I/O here: the store read and the socket
 * write are the callbacks.
 */

export interface PushedEntry<T> {
  seq: number;
  item: T;
}

export interface PushFilterOptions<T> {
  /** Entries of `conv` with after < seq <= upTo, as the store has them. */
  fill: (conv: string, after: number, upTo: number) => Promise<readonly PushedEntry<T>[]>;
  /** Pushes one entry to the connection; called in strictly increasing seq per conversation. */
  deliver: (conv: string, seq: number, item: T) => void;
  /** A fill failed or came back short: (after, upTo] was not all pushed. */
  onUnfilled?: (conv: string, after: number, upTo: number, error?: unknown) => void;
}

export type OfferOutcome = 'delivered' | 'dropped' | 'queued';

interface ConvState<T> {
  /** Highest seq pushed; undefined until the first push or setHighWater. */
  high: number | undefined;
  /** Arrived during a fill, by seq, all above `high`. */
  pending: Map<number, T>;
  filling: Promise<void> | undefined;
}

export class PushFilter<T> {
  private readonly convs = new Map<string, ConvState<T>>();

  constructor(private readonly options: PushFilterOptions<T>) {}

  /** The highest seq pushed in `conv`, if any. */
  highWater(conv: string): number | undefined {
    return this.convs.get(conv)?.high;
  }

  /**
   * What the connection already has in `conv` (e.g. the head of a sync reply it
   * was sent); only ever raises the mark. Pending entries at or below it go.
   */
  setHighWater(conv: string, seq: number): void {
    const state = this.state(conv);
    if (state.high !== undefined && seq <= state.high) return;
    state.high = seq;
    for (const s of state.pending.keys()) if (s <= seq) state.pending.delete(s);
  }

  /** The connection no longer follows `conv` (or is closing): drop its state. */
  forget(conv: string): void {
    this.convs.delete(conv);
  }

  /** Conversations with state, for a bounded-memory check. */
  size(): number {
    return this.convs.size;
  }

  /** A push of `seq` in `conv` arrived. Resolves once it (and any fill it started) is handled. */
  offer(conv: string, seq: number, item: T): { outcome: OfferOutcome; done: Promise<void> } {
    const state = this.state(conv);
    if (state.high !== undefined && seq <= state.high) return { outcome: 'dropped', done: Promise.resolve() };
    if (state.filling !== undefined) {
      if (!state.pending.has(seq)) state.pending.set(seq, item);
      return { outcome: 'queued', done: state.filling };
    }
    if (state.high === undefined || seq === state.high + 1) {
      state.high = seq;
      this.options.deliver(conv, seq, item);
      return { outcome: 'delivered', done: Promise.resolve() };
    }
    state.pending.set(seq, item);
    state.filling = this.fillGaps(conv, state);
    return { outcome: 'queued', done: state.filling };
  }

  private state(conv: string): ConvState<T> {
    let state = this.convs.get(conv);
    if (state === undefined) {
      state = { high: undefined, pending: new Map(), filling: undefined };
      this.convs.set(conv, state);
    }
    return state;
  }

  /** Until nothing is pending: push what follows on, fill the gap before the lowest pending seq. */
  private async fillGaps(conv: string, state: ConvState<T>): Promise<void> {
    try {
      await this.fillLoop(conv, state);
    } finally {
      // Cleared in the same step that sees nothing pending: a hint arriving a microtask
      // later must start its own fill, not queue behind one that has ended.
      state.filling = undefined;
    }
  }

  private async fillLoop(conv: string, state: ConvState<T>): Promise<void> {
    for (;;) {
      this.pushContiguous(conv, state);
      if (state.pending.size === 0 || this.convs.get(conv) !== state) {
        state.filling = undefined; // in the very step that saw nothing pending
        return;
      }
      const next = Math.min(...state.pending.keys());
      const after = state.high!;
      let entries: readonly PushedEntry<T>[] = [];
      let failure: unknown;
      try {
        entries = await this.options.fill(conv, after, next - 1);
      } catch (error) {
        failure = error;
      }
      if (this.convs.get(conv) !== state) return; // forgotten meanwhile
      // the store's entries and hints that arrived meanwhile, merged: whichever has the next seq goes
      for (const entry of entries) {
        if (entry.seq > state.high! && entry.seq < next && !state.pending.has(entry.seq)) state.pending.set(entry.seq, entry.item);
      }
      this.pushContiguous(conv, state);
      if (state.high! < next - 1) {
        // The fill came back short: push on past the hole (the client sees it and syncs).
        const holeEnd = Math.min(next, ...state.pending.keys()) - 1;
        this.options.onUnfilled?.(conv, state.high!, holeEnd, failure);
        state.high = holeEnd;
      }
    }
  }

  private pushContiguous(conv: string, state: ConvState<T>): void {
    for (const s of state.pending.keys()) if (s <= state.high!) state.pending.delete(s);
    for (let seq = state.high! + 1; state.pending.has(seq); seq++) {
      const item = state.pending.get(seq) as T;
      state.pending.delete(seq);
      state.high = seq;
      this.options.deliver(conv, seq, item);
    }
  }
}
