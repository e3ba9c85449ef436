/**
 * "Seen by": each member's public read position per conversation, from three
 * sources — the `info` reply, `read` pushes, and the entries themselves (the
 * server moves a sender's position to each entry it sends, with no `read` push;
 * docs/protocol.md). A member added at seq a starts at a − 1 on the server, so
 * its position says nothing about entries before its add: those are never
 * counted as seen by it.
 */
import type { Entry } from '../protocol/frames.js';

interface ConvReceipts {
  /** user → highest public read position known */
  read: Map<string, number>;
  /** user → seq of the newest entry that added it, as this session saw them */
  addedAt: Map<string, number>;
}

export class Receipts {
  private readonly byConv = new Map<string, ConvReceipts>();

  /** The `info` reply: its positions, raised by anything newer already known. */
  fromInfo(conv: string, members: readonly string[], read: Readonly<Record<string, number>>): Record<string, number> {
    const state = this.of(conv);
    const merged = new Map<string, number>();
    for (const member of members) merged.set(member, Math.max(read[member] ?? 0, state.read.get(member) ?? 0));
    state.read = merged;
    return Object.fromEntries(merged);
  }

  /** A `read` push of another user. */
  moved(conv: string, user: string, seq: number): void {
    const state = this.of(conv);
    state.read.set(user, Math.max(state.read.get(user) ?? 0, seq));
  }

  /** Any entry of the log: its sender has read up to it; a membership entry dates the adds. */
  entry(entry: Entry): void {
    this.moved(entry.conv, entry.from, entry.seq);
    if (entry.kind !== 'system') return;
    const body = entry.body as { op?: unknown; add?: unknown; members?: unknown };
    const added = body.op === 'create' ? body.members : body.add;
    if (!Array.isArray(added)) return;
    const state = this.of(entry.conv);
    for (const user of added) {
      if (typeof user === 'string' && entry.seq > (state.addedAt.get(user) ?? 0)) state.addedAt.set(user, entry.seq);
    }
  }

  /** The users other than `self` whose public position is at or past `seq` and who could read it. */
  seenBy(conv: string, seq: number, self: string | undefined): string[] {
    const state = this.byConv.get(conv);
    if (!state) return [];
    const seen: string[] = [];
    for (const [user, read] of state.read) {
      if (user === self || read < seq) continue;
      if ((state.addedAt.get(user) ?? 0) > seq) continue; // added after it: its position starts past it
      seen.push(user);
    }
    return seen.sort();
  }

  private of(conv: string): ConvReceipts {
    let state = this.byConv.get(conv);
    if (!state) {
      state = { read: new Map(), addedAt: new Map() };
      this.byConv.set(conv, state);
    }
    return state;
  }
}
