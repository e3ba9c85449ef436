/**
 * The "recent chats" list: every conversation of the user, most recent
 * activity first, from the server's `convs` reply and kept current by pushes,
 * acks and syncs in between.
 */
import type { ConvSummary, Entry } from '../protocol/frames.js';

export interface ConversationInfo {
  conv: string;
  /** The newest seq known to exist. */
  last: number;
  /** Server time of the newest known activity (0 when unknown). */
  ts: number;
  /** Everything up to here has been delivered to the app. */
  cursor: number;
  /** The first seq this user may read (the entry that added it). */
  from: number;
  /** Set when the user was removed: the last seq it may read. */
  until?: number;
}

export class ConversationList {
  private readonly byConv = new Map<string, ConversationInfo>();
  private sorted: ConversationInfo[] | undefined;
  /** The seq of the newest membership change of the user known per conversation. */
  private readonly membershipSeq = new Map<string, number>();

  constructor(private readonly cursorOf: (conv: string) => number) {}

  get(conv: string): ConversationInfo | undefined {
    return this.byConv.get(conv);
  }

  /** Merges the server's list; returns true if anything changed. */
  applySummaries(summaries: readonly ConvSummary[]): boolean {
    let changed = false;
    for (const summary of summaries) {
      const info = this.ensure(summary.conv);
      const from = summary.from ?? 1;
      if (summary.last > info.last || summary.ts > info.ts || from !== info.from || summary.until !== info.until) changed = true;
      info.last = Math.max(info.last, summary.last);
      info.ts = Math.max(info.ts, summary.ts);
      info.from = from;
      this.membershipSeq.set(summary.conv, Math.max(this.membershipSeq.get(summary.conv) ?? 0, from, summary.until ?? 0));
      if (summary.until === undefined) delete info.until;
      else info.until = summary.until;
    }
    if (changed) this.sorted = undefined;
    return changed;
  }

  /** An entry exists (pushed, synced or acked); returns true if the list changed. */
  touch(entry: Pick<Entry, 'conv' | 'seq' | 'ts'>): boolean {
    const info = this.ensure(entry.conv);
    if (entry.seq <= info.last && entry.ts <= info.ts) return false;
    info.last = Math.max(info.last, entry.seq);
    info.ts = Math.max(info.ts, entry.ts);
    this.sorted = undefined;
    return true;
  }

  /** A system entry at `seq` that adds or removes `user` updates from/until, unless a later change is known. */
  applyMembership(conv: string, user: string, seq: number, body: unknown): boolean {
    const change = body as { op?: unknown; add?: unknown; remove?: unknown; members?: unknown };
    const names = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []);
    if (seq <= (this.membershipSeq.get(conv) ?? 0)) return false;
    const removed = names(change.remove).includes(user);
    const added = names(change.add).includes(user) || (change.op === 'create' && names(change.members).includes(user));
    if (!removed && !added) return false;
    const info = this.ensure(conv);
    this.membershipSeq.set(conv, seq);
    if (removed) {
      info.until = seq;
    } else {
      info.from = seq;
      delete info.until;
    }
    this.sorted = undefined;
    return true;
  }

  /** Most recent activity first; ties by conversation id, so the order is stable. */
  list(): ConversationInfo[] {
    this.sorted ??= [...this.byConv.values()].sort((a, b) => b.ts - a.ts || (a.conv < b.conv ? -1 : a.conv > b.conv ? 1 : 0));
    return this.sorted.map((info) => ({ ...info, cursor: this.cursorOf(info.conv) }));
  }

  private ensure(conv: string): ConversationInfo {
    let info = this.byConv.get(conv);
    if (!info) {
      info = { conv, last: 0, ts: 0, cursor: 0, from: 1 };
      this.byConv.set(conv, info);
      this.sorted = undefined;
    }
    return info;
  }
}
