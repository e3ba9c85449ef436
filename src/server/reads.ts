/**
 * Reads come from the durable log, never from memory, so recovery is always
 * complete: `sync` returns every readable entry after a seq, `convs` the
 * caller's conversations by recent activity.
 */
import { DEFAULT_SYNC_LIMIT, type ConvSummary, type SyncFrame } from '../protocol/index.js';
import type { Store } from '../store/index.js';
import type { Conversations } from './conversations.js';
import type { Session } from './session.js';

export class Reads {
  constructor(
    private readonly store: Store,
    private readonly conversations: Conversations,
  ) {}

  async sync(session: Session, frame: SyncFrame): Promise<void> {
    const state = await this.conversations.get(frame.conv);
    if (!state) return session.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
    if (!state.exists) return session.error(frame.id, 'not_found', `no conversation ${frame.conv}`);
    const range = state.readableRange(session.user);
    if (!range) return session.error(frame.id, 'forbidden', `${session.user} is not a member of ${frame.conv}`);
    // Before its first entry a DM has nothing to read; that is an empty log, not an error.
    const after = Math.max(frame.after, range.from - 1);
    const limit = frame.limit ?? DEFAULT_SYNC_LIMIT;
    const msgs = after >= range.until ? [] : await this.store.read(state.conv, after, range.until, limit);
    session.send({ t: 'batch', id: frame.id, conv: state.conv, msgs, last: range.until });
  }

  async convs(session: Session, id: number): Promise<void> {
    const listings = await this.store.listConvs(session.user);
    const convs: ConvSummary[] = listings.map((listing) => {
      const summary: ConvSummary = { conv: listing.conv, last: listing.last, ts: listing.ts, from: listing.fromSeq };
      if (listing.toSeq !== null) {
        summary.last = Math.min(listing.last, listing.toSeq);
        summary.until = listing.toSeq;
      }
      return summary;
    });
    session.send({ t: 'convs', id, convs });
  }
}
