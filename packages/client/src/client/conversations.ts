/**
 * The "recent chats" list: every conversation of the user, most recent
 * activity first, from the server's `convs` reply and kept current by pushes,
 * acks and syncs in between, with the user's read position and unread count.
 */
import type { ConvSummary, Entry } from '../protocol/frames.js';
import type { StoredConv, UnreadAnchor } from './store.js';
import { NO_ANCHOR, type UnreadCount } from './unread.js';

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
  /** The user's read position (shared by all its devices; moves only forward). */
  read: number;
  /** Messages by other users after `read`, not deleted. */
  unread: number;
}

/** A conversation as the list keeps it: the same shape the store saves. */
type Row = StoredConv;

/** Counts a conversation's unread messages from the server's anchor and the user's read position. */
export type UnreadCounter = (conv: string, anchor: UnreadAnchor, read: number) => UnreadCount;

export class ConversationList {
  private readonly byConv = new Map<string, Row>();
  private sorted: Row[] | undefined;
  /** The seq of the newest membership change of the user known per conversation. */
  private readonly membershipSeq = new Map<string, number>();

  constructor(
    private readonly cursorOf: (conv: string) => number,
    private readonly counter: UnreadCounter,
  ) {}

  get(conv: string): ConversationInfo | undefined {
    const row = this.byConv.get(conv);
    return row ? this.info(row) : undefined;
  }

  /** The conversations known, in no order. */
  convs(): string[] {
    return [...this.byConv.keys()];
  }

  /** The user's read position here (0 when unknown). */
  readOf(conv: string): number {
    return this.byConv.get(conv)?.read ?? 0;
  }

  /** The read position the server confirmed. */
  confirmedReadOf(conv: string): number {
    return this.byConv.get(conv)?.readConfirmed ?? 0;
  }

  unreadOf(conv: string): UnreadCount {
    const row = this.byConv.get(conv);
    return row ? this.counter(conv, row.anchor, row.read) : { count: 0, exact: true };
  }

  /** Moves the read position forward (a markRead, a read push, an own entry); `confirmed` when the server said so. Returns true if it moved. */
  moveRead(conv: string, seq: number, confirmed: boolean): boolean {
    const row = this.ensure(conv);
    if (confirmed) row.readConfirmed = Math.max(row.readConfirmed, seq);
    if (seq <= row.read) return false;
    row.read = seq;
    return true;
  }

  /** Conversations whose read position the server has not confirmed yet. */
  unconfirmedReads(): { conv: string; read: number }[] {
    return [...this.byConv.values()].filter((row) => row.read > row.readConfirmed).map((row) => ({ conv: row.conv, read: row.read }));
  }

  /** For the store. */
  snapshot(): StoredConv[] {
    return [...this.byConv.values()].map((row) => ({ ...row, anchor: { ...row.anchor } }));
  }

  /** Takes back what the store kept (before any server row). */
  restore(rows: readonly StoredConv[]): void {
    for (const stored of rows) {
      const row: Row = { ...stored, anchor: { ...stored.anchor } };
      this.byConv.set(stored.conv, row);
      this.membershipSeq.set(stored.conv, Math.max(stored.from, stored.until ?? 0));
    }
    this.sorted = undefined;
  }

  /** Merges the server's list; returns true if anything changed. */
  applySummaries(summaries: readonly ConvSummary[]): boolean {
    let changed = false;
    for (const summary of summaries) {
      const info = this.ensure(summary.conv);
      const from = summary.from ?? 1;
      if (summary.last > info.last || summary.ts > info.ts || from !== info.from || summary.until !== info.until) changed = true;
      if (summary.read !== undefined) {
        // The server's count as of its row; rows only grow, so an older one (a reply overtaken by pushes) never replaces a newer.
        if (summary.last >= info.anchor.last && summary.read >= info.anchor.read) {
          info.anchor = { read: summary.read, last: summary.last, unread: summary.unread ?? 0 };
          changed = true;
        }
        info.readConfirmed = Math.max(info.readConfirmed, summary.read);
        info.read = Math.max(info.read, summary.read);
      }
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
    return this.sorted.map((row) => this.info(row));
  }

  /** The sum of unread over every conversation. */
  totalUnread(): number {
    let total = 0;
    for (const row of this.byConv.values()) total += this.counter(row.conv, row.anchor, row.read).count;
    return total;
  }

  private info(row: Row): ConversationInfo {
    const info: ConversationInfo = {
      conv: row.conv,
      last: row.last,
      ts: row.ts,
      cursor: this.cursorOf(row.conv),
      from: row.from,
      read: row.read,
      unread: this.counter(row.conv, row.anchor, row.read).count,
    };
    if (row.until !== undefined) info.until = row.until;
    return info;
  }

  private ensure(conv: string): Row {
    let info = this.byConv.get(conv);
    if (!info) {
      info = { conv, last: 0, ts: 0, from: 1, read: 0, readConfirmed: 0, anchor: { ...NO_ANCHOR } };
      this.byConv.set(conv, info);
      this.sorted = undefined;
    }
    return info;
  }
}
