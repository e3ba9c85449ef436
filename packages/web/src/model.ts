/**
 * What the page keeps per conversation beside the SDK: whether older history
 * remains, who is typing, and counters for the debug panel. The SDK stays the
 * source of truth for the messages (its fold), order, dedup and sends.
 */
export interface ChatBody {
  text: string;
}

export function textOf(body: unknown): string {
  if (typeof body === 'string') return body;
  if (typeof body === 'object' && body !== null && typeof (body as { text?: unknown }).text === 'string') return (body as ChatBody).text;
  return JSON.stringify(body);
}

export interface ConvDebug {
  /** Pushes that arrived past the next expected seq (the SDK holds them and fills the gap). */
  gapsDetected: number;
  /** `sync` requests the SDK made to catch up (after a connect, or to fill a gap). */
  syncs: number;
  /** `sync` requests for older history ("load earlier"). */
  historyReads: number;
  /** Entries that a catch-up sync brought which no push had. */
  filled: number;
  /** The highest seq seen in a push, an ack or a catch-up sync. */
  highestSeen: number;
}

export class ConvState {
  readonly debug: ConvDebug = { gapsDetected: 0, syncs: 0, historyReads: 0, filled: 0, highestSeen: 0 };
  /** Seqs seen on the wire (pushes, acks, syncs), for the debug panel's "filled" count. */
  readonly seen = new Set<number>();
  loadingEarlier = false;
  /** What the last history read said of older entries; undefined before the first read. */
  more: boolean | undefined;
  /** Who is typing here, and until when (local time). */
  readonly typing = new Map<string, number>();

  /** The users typing at `now`, sorted; drops those whose time is up. */
  typers(now: number): string[] {
    for (const [user, until] of this.typing) if (until <= now) this.typing.delete(user);
    return [...this.typing.keys()].sort();
  }
}

export class ChatModel {
  private readonly convs = new Map<string, ConvState>();
  /** Request ids of `sync` frames that read older history, until their answer. */
  private readonly historyIds = new Set<number>();

  conv(conv: string): ConvState {
    let state = this.convs.get(conv);
    if (!state) {
      state = new ConvState();
      this.convs.set(conv, state);
    }
    return state;
  }

  /** Watches the frames for the debug counters: gaps in pushes, and what catch-up syncs filled. */
  observeFrame(direction: 'in' | 'out', text: string): void {
    let frame: { t?: string; id?: number; conv?: string; seq?: number; before?: number; msgs?: { seq: number }[] };
    try {
      frame = JSON.parse(text) as typeof frame;
    } catch {
      return;
    }
    if (direction === 'in' && frame.t === 'error' && typeof frame.id === 'number') this.historyIds.delete(frame.id);
    if (typeof frame.conv !== 'string') return;
    const state = this.conv(frame.conv);
    const debug = state.debug;
    if (direction === 'out') {
      if (frame.t !== 'sync') return;
      if (frame.before !== undefined) {
        debug.historyReads++;
        if (typeof frame.id === 'number') this.historyIds.add(frame.id);
      } else {
        debug.syncs++;
      }
      return;
    }
    if (frame.t === 'ack' && typeof frame.seq === 'number') {
      // Our own entry: it moves the expected next seq as a push would.
      state.seen.add(frame.seq);
      debug.highestSeen = Math.max(debug.highestSeen, frame.seq);
    } else if (frame.t === 'msg' && typeof frame.seq === 'number') {
      if (debug.highestSeen > 0 && frame.seq > debug.highestSeen + 1) debug.gapsDetected++;
      state.seen.add(frame.seq);
      debug.highestSeen = Math.max(debug.highestSeen, frame.seq);
    } else if (frame.t === 'batch' && Array.isArray(frame.msgs)) {
      if (typeof frame.id === 'number' && this.historyIds.delete(frame.id)) return;
      for (const msg of frame.msgs) {
        if (msg.seq <= debug.highestSeen && !state.seen.has(msg.seq)) debug.filled++;
        state.seen.add(msg.seq);
      }
      const newest = frame.msgs.at(-1)?.seq;
      if (newest !== undefined) debug.highestSeen = Math.max(debug.highestSeen, newest);
    }
  }
}
