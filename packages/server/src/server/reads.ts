/**
 * Reads come from the durable log, never from memory, so recovery is always
 * complete: `sync` returns every readable entry after a seq, `convs` the
 * caller's conversations by recent activity.
 */
import { DEFAULT_SYNC_LIMIT, type ConvSummary, type SyncFrame } from 'sequent-client/protocol';
import type { Store } from '../store/index.js';
import type { Conversations } from './conversations.js';
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
    private readonly conversations: Conversations,
    private readonly limits: ReadLimits,
  ) {}

  sync(session: Session, frame: SyncFrame): Promise<void> {
    return this.bounded(session, frame.id, () => this.syncNow(session, frame));
  }

  convs(session: Session, id: number): Promise<void> {
    return this.bounded(session, id, () => this.convsNow(session, id));
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
    // Before its first entry a DM has nothing to read; that is an empty log, not an error.
    const after = Math.max(frame.after ?? 0, range.from - 1);
    const limit = frame.limit ?? DEFAULT_SYNC_LIMIT;
    const msgs = after >= range.until ? [] : await this.store.read(state.conv, after, range.until, limit, this.limits.maxSyncBytes);
    session.send({ t: 'batch', id: frame.id, conv: state.conv, msgs, last: range.until });
  }

  private async convsNow(session: Session, id: number): Promise<void> {
    // One row more than is sent tells whether the list was cut.
    const listings = await this.store.listConvs(session.user, this.limits.maxConvs + 1);
    const truncated = listings.length > this.limits.maxConvs;
    if (truncated) listings.length = this.limits.maxConvs;
    const convs: ConvSummary[] = listings.map((listing) => {
      const summary: ConvSummary = { conv: listing.conv, last: listing.last, ts: listing.ts, from: listing.fromSeq };
      if (listing.toSeq !== null) {
        summary.last = Math.min(listing.last, listing.toSeq);
        summary.until = listing.toSeq;
      }
      return summary;
    });
    session.send(truncated ? { t: 'convs', id, convs, truncated } : { t: 'convs', id, convs });
  }
}
