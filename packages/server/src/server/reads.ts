/**
 * Reads come from the durable log, never from memory, so recovery is always
 * complete: `sync` returns every readable entry after a seq, `convs` the
 * caller's conversations by recent activity.
 */
import { DEFAULT_CONVS_LIMIT, DEFAULT_SYNC_LIMIT, type ConvSummary, type ConvsFrame, type ConvsReplyFrame, type Entry, type SyncFrame } from 'sequent-client/protocol';
import type { ConvListing, Store } from '../store/index.js';
import type { ConversationOwner } from './owner.js';
import type { Session } from './session.js';

export interface ReadLimits {
  /** Bytes of entries in one batch (entrySize); a page stops short of `limit` rather than pass it. */
  readonly maxSyncBytes: number;
  /** Reads one connection may have waiting for the store. */
  readonly maxPendingReads: number;
  /** Rows in one convs reply. */
  readonly maxConvs: number;
}

export class Reads {
  constructor(
    private readonly store: Store,
    private readonly conversations: ConversationOwner,
    private readonly limits: ReadLimits,
  ) {}

  sync(session: Session, frame: SyncFrame): Promise<void> {
    return this.bounded(session, frame.id, () => this.syncNow(session, frame));
  }

  convs(session: Session, frame: ConvsFrame): Promise<void> {
    return this.bounded(session, frame.id, () => this.convsNow(session, frame));
  }

  /** A client that asks faster than the store answers is told to slow down, instead of piling up replies in memory. */
  private async bounded(session: Session, id: number, read: () => Promise<void>): Promise<void> {
    if (session.pendingReads >= this.limits.maxPendingReads) {
      return session.error(id, 'rate_limited', `more than ${this.limits.maxPendingReads} reads waiting on this connection`);
    }
    session.pendingReads++;
    try {
      await read();
    } finally {
      session.pendingReads--;
    }
  }

  private async syncNow(session: Session, frame: SyncFrame): Promise<void> {
    const state = await this.conversations.get(frame.conv);
    if (!state) return session.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
    if (!state.exists) return session.error(frame.id, 'not_found', `no conversation ${frame.conv}`);
    const range = state.readableRange(session.user);
    if (!range) return session.error(frame.id, 'forbidden', `${session.user} is not a member of ${frame.conv}`);
    const limit = frame.limit ?? DEFAULT_SYNC_LIMIT;
    const msgs =
      frame.before !== undefined
        ? await this.readBefore(state.conv, frame.before, range, limit)
        : await this.readAfter(state.conv, frame.after ?? 0, range, limit);
    session.send({ t: 'batch', id: frame.id, conv: state.conv, msgs, last: range.until });
  }

  private async readAfter(conv: string, afterSeq: number, range: { from: number; until: number }, limit: number): Promise<Entry[]> {
    // Before its first entry a DM has nothing to read; that is an empty log, not an error.
    const after = Math.max(afterSeq, range.from - 1);
    return after >= range.until ? [] : this.store.read(conv, after, range.until, limit, this.limits.maxSyncBytes);
  }

  /**
   * The `limit` readable entries just below `before`. A page the byte budget cuts
   * would end short of `before` and leave a gap, so it is read again, fewer and
   * newer, until it reaches `before - 1`.
   */
  private async readBefore(conv: string, before: number, range: { from: number; until: number }, limit: number): Promise<Entry[]> {
    const until = Math.min(before - 1, range.until);
    let count = Math.min(limit, until - (range.from - 1));
    while (count > 0) {
      const page = await this.store.read(conv, until - count, until, count, this.limits.maxSyncBytes);
      if (page.length === count) return page;
      count = page.length;
    }
    return [];
  }

  private summary(listing: ConvListing): ConvSummary {
    const summary: ConvSummary = { conv: listing.conv, last: listing.last, ts: listing.ts, from: listing.fromSeq };
    if (listing.toSeq !== null) {
      summary.last = Math.min(listing.last, listing.toSeq);
      summary.until = listing.toSeq;
    }
    summary.read = listing.read;
    summary.unread = listing.unread;
    return summary;
  }

  /**
   * The version, the total and the rows come from one snapshot of the store:
   * the total always agrees with the rows, and a row that changes after it
   * shows up again on the next `since`.
   */
  private async convsNow(session: Session, frame: ConvsFrame): Promise<void> {
    const { id, since } = frame;
    // One row more than is sent tells whether the whole list was cut.
    const query = { since, sinceLimit: frame.limit ?? DEFAULT_CONVS_LIMIT, fullLimit: this.limits.maxConvs + 1 };
    const snapshot = await this.store.convsSnapshot(session.user, query);
    const { rows, unread } = snapshot;
    if (snapshot.changedOnly) {
      const more = rows.length >= query.sinceLimit;
      const newest = rows.at(-1)?.version ?? (since as number);
      const version = more ? newest : Math.max(snapshot.version, newest);
      return session.send({ t: 'convs', id, convs: rows.map((r) => this.summary(r)), version, unread, more });
    }
    const truncated = rows.length > this.limits.maxConvs;
    if (truncated) rows.length = this.limits.maxConvs;
    const reply: ConvsReplyFrame = { t: 'convs', id, convs: rows.map((r) => this.summary(r)), version: snapshot.version, unread };
    if (truncated) reply.truncated = true;
    if (since !== undefined) reply.full = true;
    session.send(reply);
  }
}
