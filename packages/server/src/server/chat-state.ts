/**
 * The chat-state requests that are not log entries: `read` (a durable, forward-
 * only position per user), `info` (members and their public positions) and
 * `typing` (forwarded, never stored).
 */
import { TYPING_INTERVAL_MS, type InfoFrame, type ReadFrame, type TypingFrame } from 'sequent-client/protocol';
import type { Store } from '../store/index.js';
import type { ConversationOwner } from './owner.js';
import type { ConvView, ConvViews } from './conv-view.js';
import type { Delivery } from './delivery.js';
import type { Origin, Requester } from './origin.js';

/** Past this many remembered typing times, the stale ones are swept. */
const TYPING_SWEEP_AT = 10_000;

export class ChatState {
  /** When each (user, conversation) last had a typing push forwarded. */
  private readonly typingAt = new Map<string, number>();

  constructor(
    private readonly store: Store,
    /** Where `read` moves positions: the conversation's owner. */
    private readonly conversations: ConversationOwner,
    /** Where `info` and `typing` learn membership: the owner's memory, or the store on a node that does not own it. */
    private readonly views: ConvViews,
    private readonly delivery: Delivery,
    private readonly now: () => number = Date.now,
  ) {}

  /** The conversation, if the caller is one of its current members; otherwise the error is sent and undefined returned. */
  private async memberState(session: Requester, id: number, conv: string): Promise<ConvView | undefined> {
    const state = await this.views.get(conv);
    if (!state) return void session.error(id, 'bad_request', `malformed conversation id ${conv}`);
    if (!state.exists) return void session.error(id, 'not_found', `no conversation ${conv}`);
    if (!state.isMember(session.user)) return void session.error(id, 'forbidden', `${session.user} is not a member of ${conv}`);
    return state;
  }

  async read(session: Origin, frame: ReadFrame): Promise<void> {
    const state = await this.conversations.get(frame.conv);
    if (!state) return session.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
    if (!state.exists) return session.error(frame.id, 'not_found', `no conversation ${frame.conv}`);
    const range = state.readableRange(session.user);
    if (!range) return session.error(frame.id, 'forbidden', `${session.user} is not a member of ${frame.conv}`);
    if (frame.seq > state.committed) return session.error(frame.id, 'bad_request', `seq ${frame.seq} is above the conversation's last (${state.committed})`);
    if (frame.seq > range.until) return session.error(frame.id, 'forbidden', `${session.user} may read ${frame.conv} only up to seq ${range.until}`);
    const isPublic = frame.private !== true;
    const current = state.readOf(session.user).read;
    if (frame.seq <= current) return session.ok(frame.id, state.conv, current);
    try {
      await this.store.commit({ newConvs: [], entries: [], memberships: [], reads: [{ conv: state.conv, user: session.user, seq: frame.seq, public: isPublic }] });
    } catch (error) {
      // The store may or may not have it: reload the truth on the next touch.
      this.conversations.invalidate(state);
      return session.error(frame.id, 'unavailable', `the read position could not be stored: ${error instanceof Error ? error.message : String(error)}`);
    }
    // Memory moves once the store has it: a read answered meanwhile on another device must not
    // say a position a crash could still undo (the chaos checker's read-backwards saw that).
    const moved = state.moveRead(session.user, frame.seq, isPublic);
    const seq = state.readOf(session.user).read;
    session.ok(frame.id, state.conv, seq);
    // A read that committed beside a higher one of the same user moved nothing: that one pushes.
    if (!moved) return;
    this.delivery.read([session.user], state.conv, session.user, seq, isPublic);
    if (isPublic) {
      const others = state.memberList.filter((user) => user !== session.user);
      // The position as it stands, not this request's: two reads committed at once must not push 123, then 122.
      this.delivery.read(others, state.conv, session.user, state.readOf(session.user).publicRead, true);
    }
  }

  async info(session: Requester, frame: InfoFrame): Promise<void> {
    const state = await this.memberState(session, frame.id, frame.conv);
    if (!state) return;
    const positions = await this.store.readPositions(state.conv);
    const members = [...state.memberList].sort();
    const publicRead = new Map(positions.map((p) => [p.user, p.publicRead]));
    const read: Record<string, number> = {};
    for (const user of members) read[user] = publicRead.get(user) ?? 0;
    session.send({ t: 'info', id: frame.id, conv: state.conv, members, last: state.committed, read });
  }

  async typing(session: Requester, frame: TypingFrame): Promise<void> {
    const state = await this.memberState(session, frame.id, frame.conv);
    if (!state) return;
    session.ok(frame.id, state.conv, state.committed);
    const key = `${session.user}\u0000${state.conv}`;
    const now = this.now();
    const last = this.typingAt.get(key);
    if (last !== undefined && now - last < TYPING_INTERVAL_MS) return;
    if (this.typingAt.size >= TYPING_SWEEP_AT) this.sweep(now);
    this.typingAt.set(key, now);
    const others = state.memberList.filter((user) => user !== session.user);
    this.delivery.typing(others, state.conv, session.user);
  }

  private sweep(now: number): void {
    for (const [key, at] of this.typingAt) if (now - at >= TYPING_INTERVAL_MS) this.typingAt.delete(key);
  }
}
