/**
 * What the page knows of each conversation's log: the entries the SDK
 * delivered in this session merged with the older ones the page read itself,
 * one per seq, plus counters for the debug panel. The SDK stays the source of
 * truth for order, dedup and sends; this only remembers what was shown.
 */
import type { Entry } from 'sequent-client';

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
  /** `sync` requests the SDK made for this conversation (catch-up after a connect, or a gap fill). */
  syncs: number;
  /** Entries that a sync of the SDK brought which no push had. */
  filled: number;
  /** The highest seq seen in a push or an SDK sync. */
  highestSeen: number;
}

export class ConvLog {
  private readonly bySeq = new Map<number, Entry>();
  private sorted: Entry[] | undefined;
  readonly debug: ConvDebug = { gapsDetected: 0, syncs: 0, filled: 0, highestSeen: 0 };
  /** The first seq this user may read; entries below it never come. */
  from = 1;
  loadingEarlier = false;

  add(entry: Entry): boolean {
    if (this.bySeq.has(entry.seq)) return false;
    this.bySeq.set(entry.seq, entry);
    this.sorted = undefined;
    return true;
  }

  has(seq: number): boolean {
    return this.bySeq.has(seq);
  }

  entries(): readonly Entry[] {
    this.sorted ??= [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
    return this.sorted;
  }

  /** The lowest seq on hand, or undefined when none. */
  lowest(): number | undefined {
    return this.entries()[0]?.seq;
  }
}

export class ChatModel {
  private readonly logs = new Map<string, ConvLog>();

  log(conv: string): ConvLog {
    let log = this.logs.get(conv);
    if (!log) {
      log = new ConvLog();
      this.logs.set(conv, log);
    }
    return log;
  }

  /** Watches the frames for the debug counters: gaps in pushes, and what SDK syncs filled. */
  observeFrame(direction: 'in' | 'out', text: string, pageRequest: boolean): void {
    let frame: { t?: string; conv?: string; seq?: number; msgs?: { seq: number }[] };
    try {
      frame = JSON.parse(text) as typeof frame;
    } catch {
      return;
    }
    if (pageRequest || typeof frame.conv !== 'string') return;
    const log = this.log(frame.conv);
    if (direction === 'out' && frame.t === 'sync') log.debug.syncs++;
    if (direction !== 'in') return;
    if (frame.t === 'ack' && typeof frame.seq === 'number') {
      // Our own entry: it moves the expected next seq as a push would.
      log.debug.highestSeen = Math.max(log.debug.highestSeen, frame.seq);
    } else if (frame.t === 'msg' && typeof frame.seq === 'number') {
      if (log.debug.highestSeen > 0 && frame.seq > log.debug.highestSeen + 1) log.debug.gapsDetected++;
      log.debug.highestSeen = Math.max(log.debug.highestSeen, frame.seq);
    } else if (frame.t === 'batch' && Array.isArray(frame.msgs)) {
      for (const msg of frame.msgs) if (msg.seq <= log.debug.highestSeen && !log.has(msg.seq)) log.debug.filled++;
      const newest = frame.msgs.at(-1)?.seq;
      if (newest !== undefined) log.debug.highestSeen = Math.max(log.debug.highestSeen, newest);
    }
  }
}
