/**
 * Reads come from the durable log, never from memory, so recovery is always
 * complete: `sync` returns every readable entry after a seq, `convs` the
 * caller's conversations by recent activity. Who may read what comes from a
 * `ConvView`: the owner's memory on one node, the store on a cluster node.
 */
import { DEFAULT_CONVS_LIMIT, DEFAULT_SYNC_LIMIT, encodeBatch, type ConvSummary, type ConvsFrame, type ConvsReplyFrame, type SyncFrame } from 'sequent-client/protocol';
import type { ConvListing, Store } from '../store/index.js';
import type { ConvViews } from './conv-view.js';
import type { Requester } from './origin.js';

export interface ReadLimits {
  /** Bytes of entries in one batch (entrySize); a page stops short of `limit` rather than pass it. */
  readonly maxSyncBytes: number;
  /** Reads one connection may have waiting for the store. */
  readonly maxPendingReads: number;
  /** Rows in one convs reply. */
  readonly maxConvs: number;
}

/** One page of a conversation's log: the entries with after < seq <= until, at most count (fewer when the byte budget cuts). */
type PageReader<T> = (after: number, until: number, count: number) => Promise<T[]>;

export class Reads {
  constructor(
    private readonly store: Store,
    private readonly conversations: ConvViews,
    private readonly limits: ReadLimits,
  ) {}

  sync(session: Requester, frame: SyncFrame): Promise<void> {
    return this.bounded(session, frame.id, () => this.syncNow(session, frame));
  }

  convs(session: Requester, frame: ConvsFrame): Promise<void> {
    return this.bounded(session, frame.id, () => this.convsNow(session, frame));
  }

  /** A client that asks faster than the store answers is told to slow down, instead of piling up replies in memory. */
  private async bounded(session: Requester, id: number, read: () => Promise<void>): Promise<void> {
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

  private async syncNow(session: Requester, frame: SyncFrame): Promise<void> {
    const state = await this.conversations.get(frame.conv);
    if (!state) return session.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
    if (!state.exists) return session.error(frame.id, 'not_found', `no conversation ${frame.conv}`);
    const range = state.readableRange(session.user);
    if (!range) return session.error(frame.id, 'forbidden', `${session.user} is not a member of ${frame.conv}`);
    const limit = frame.limit ?? DEFAULT_SYNC_LIMIT;
    const conv = state.conv;
    const page = <T>(read: PageReader<T>): Promise<T[]> =>
      frame.before !== undefined ? this.readBefore(read, frame.before, range, limit) : this.readAfter(read, frame.after ?? 0, range, limit);
    const maxBytes = this.limits.maxSyncBytes;
    const store = this.store;
    if (store.readJson) {
      // The entries' stored JSON, spliced into the frame: the same text as serializing what read() gives.
      const texts = await page((after, until, count) => store.readJson!(conv, after, until, count, maxBytes));
      return session.sendText(encodeBatch(frame.id, conv, texts, range.until));
    }
    const msgs = await page((after, until, count) => store.read(conv, after, until, count, maxBytes));
    session.send({ t: 'batch', id: frame.id, conv, msgs, last: range.until });
  }

  private async readAfter<T>(read: PageReader<T>, afterSeq: number, range: { from: number; until: number }, limit: number): Promise<T[]> {
    // Before its first entry a DM has nothing to read; that is an empty log, not an error.
    const after = Math.max(afterSeq, range.from - 1);
    return after >= range.until ? [] : read(after, range.until, limit);
  }

  /**
   * The `limit` readable entries just below `before`. A page the byte budget cuts
   * would end short of `before` and leave a gap, so it is read again, fewer and
   * newer, until it reaches `before - 1`.
   */
  private async readBefore<T>(read: PageReader<T>, before: number, range: { from: number; until: number }, limit: number): Promise<T[]> {
    const until = Math.min(before - 1, range.until);
    let count = Math.min(limit, until - (range.from - 1));
    while (count > 0) {
      const page = await read(until - count, until, count);
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
  private async convsNow(session: Requester, frame: ConvsFrame): Promise<void> {
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
