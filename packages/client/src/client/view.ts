/**
 * One conversation as the app shows it: the delivered entries in seq order,
 * then the app's own messages still on their way, in send order. When one of
 * those is acked and its seq delivered, it leaves `pending` and takes its
 * place among the entries.
 */
import type { Entry } from '../protocol/frames.js';
import type { SendHandle } from './send-handle.js';

export type ViewItem = { kind: 'entry'; entry: Entry } | { kind: 'pending'; handle: SendHandle };

export class ConversationView {
  private readonly delivered: Entry[] = [];
  private readonly outgoing: SendHandle[] = [];

  /** Delivered entries, ascending seq. In immediate mode there may be holes, filled later. */
  get entries(): readonly Entry[] {
    return this.delivered;
  }

  /** Own messages not yet delivered at their seq, in dseq order. */
  get pending(): readonly SendHandle[] {
    return this.outgoing;
  }

  /** The highest delivered seq (0 when none): the default ctx.seen of a new message. */
  get highestSeq(): number {
    return this.delivered.at(-1)?.seq ?? 0;
  }

  /** Inserts a delivered entry where its seq belongs and returns that index. */
  insert(entry: Entry): number {
    let low = 0;
    let high = this.delivered.length;
    // Entries nearly always go at the end: check that first.
    if (high === 0 || (this.delivered[high - 1] as Entry).seq < entry.seq) {
      this.delivered.push(entry);
      return high;
    }
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.delivered[middle] as Entry).seq < entry.seq) low = middle + 1;
      else high = middle;
    }
    this.delivered.splice(low, 0, entry);
    return low;
  }

  addPending(handle: SendHandle): void {
    let index = this.outgoing.length;
    while (index > 0 && (this.outgoing[index - 1] as SendHandle).dseq > handle.dseq) index--;
    this.outgoing.splice(index, 0, handle);
  }

  /** Removes the pending message with this cmid; returns it if it was there. */
  takePending(cmid: string): SendHandle | undefined {
    const index = this.outgoing.findIndex((handle) => handle.cmid === cmid);
    if (index < 0) return undefined;
    return this.outgoing.splice(index, 1)[0];
  }

  items(): ViewItem[] {
    return [
      ...this.delivered.map((entry): ViewItem => ({ kind: 'entry', entry })),
      ...this.outgoing.map((handle): ViewItem => ({ kind: 'pending', handle })),
    ];
  }
}
