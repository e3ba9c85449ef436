/**
 * The memory store's chat state, in its plainest form: what a commit does to
 * read positions, row versions, edited and deleted targets, and the unread count
 * computed by walking the log. The SQL stores compute the same from prefix
 * counts; the conformance suite holds them to this.
 */
import type { Entry } from 'sequent-client/protocol';
import type { MemConv } from './memory.js';
import type { CommitBatch } from './types.js';

export interface MemberState {
  read: number;
  publicRead: number;
  /** The store version at which this user's row of the conversation last changed. */
  version: number;
  /** A current member: new entries change its row. */
  active: boolean;
}

/** Applies a validated batch's chat-state effects to the conversations it touched, all at `version`. */
export function applyChatState(touched: ReadonlyMap<string, MemConv>, batch: CommitBatch, version: number): void {
  const changed = new Map<MemConv, Set<string>>();
  const mark = (state: MemConv, user: string) => {
    let users = changed.get(state);
    if (!users) changed.set(state, (users = new Set()));
    users.add(user);
  };
  for (const change of batch.memberships) {
    const state = touched.get(change.conv)!;
    const member = state.members.get(change.user) ?? { read: 0, publicRead: 0, version, active: false };
    if (change.op === 'add') {
      // Nothing before the add is readable, so nothing before it is unread.
      member.active = true;
      member.read = Math.max(member.read, change.seq - 1);
      member.publicRead = Math.max(member.publicRead, change.seq - 1);
    } else {
      member.active = false;
    }
    state.members.set(change.user, member);
    mark(state, change.user);
  }
  const byConv = new Map<MemConv, Entry[]>();
  for (const entry of batch.entries) {
    const state = touched.get(entry.conv)!;
    byConv.set(state, [...(byConv.get(state) ?? []), entry]);
  }
  for (const [state, entries] of byConv) {
    state.log = [...state.log];
    for (const entry of entries) {
      if (entry.kind === 'edit' && entry.ref !== undefined) patch(state, entry.ref, { edited: entry.seq });
      if (entry.kind === 'delete' && entry.ref !== undefined) removeContent(state, entry.ref, entry.seq);
      const sender = state.members.get(entry.from);
      if (sender) {
        sender.read = Math.max(sender.read, entry.seq);
        sender.publicRead = Math.max(sender.publicRead, entry.seq);
      }
    }
    for (const [user, member] of state.members) if (member.active) mark(state, user);
  }
  for (const move of batch.reads ?? []) {
    const state = touched.get(move.conv)!;
    const member = state.members.get(move.user);
    if (!member) continue;
    member.read = Math.max(member.read, move.seq);
    if (move.public) member.publicRead = Math.max(member.publicRead, move.seq);
    mark(state, move.user);
  }
  for (const [state, users] of changed) for (const user of users) state.members.get(user)!.version = version;
}

function patch(state: MemConv, seq: number, fields: Partial<Entry>): void {
  const target = state.log[seq - 1];
  if (target) state.log[seq - 1] = { ...target, ...fields };
}

/** The target and every edit of it lose their body and carry the delete's seq. */
function removeContent(state: MemConv, target: number, deleteSeq: number): void {
  patch(state, target, { body: null, deleted: deleteSeq });
  state.log.forEach((entry, i) => {
    if (entry.kind === 'edit' && entry.ref === target) state.log[i] = { ...entry, body: null, deleted: deleteSeq };
  });
}

/** `msg` entries in (read, until] written by others and not deleted, counted one by one. */
export function unreadOf(log: readonly Entry[], user: string, read: number, until: number): number {
  let count = 0;
  for (let seq = read + 1; seq <= until; seq++) {
    const entry = log[seq - 1];
    if (entry && entry.kind === 'msg' && entry.from !== user && entry.deleted === undefined) count++;
  }
  return count;
}
