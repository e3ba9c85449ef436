/**
 * A conversation's unread count between two answers of the server. The server
 * counts `msg` entries in (read, last] written by other users and not deleted;
 * its newest row is the anchor. From there the SDK adjusts with what it holds
 * in the fold: messages past the anchor's `last`, deletes past it of messages
 * the anchor counted, and a read position moved past the anchor's `read`.
 *
 * The last one needs every entry between the two read positions; when one is
 * missing (it was read on another device, in history this session never
 * loaded) the count is an estimate and `exact` is false: the client then asks
 * the server for the conversation's row again.
 */
import type { ConversationFold } from './fold.js';
import type { UnreadAnchor } from './store.js';

export interface UnreadCount {
  count: number;
  exact: boolean;
}

export const NO_ANCHOR: UnreadAnchor = { read: 0, last: 0, unread: 0 };

export function countUnread(anchor: UnreadAnchor, read: number, fold: ConversationFold | undefined, self: string | undefined): UnreadCount {
  const position = Math.max(read, anchor.read);
  let count = anchor.unread;
  let exact = true;
  const byOthers = (from: string): boolean => from !== self;
  if (fold) {
    for (const entry of fold.known()) {
      if (entry.kind === 'msg' && entry.seq > anchor.last && entry.seq > position && byOthers(entry.from) && fold.deletedAt(entry.seq) === undefined) {
        count++;
      }
    }
    for (const [target, at] of fold.deletions()) {
      if (at <= anchor.last || target > anchor.last || target <= position) continue;
      // The delete is by the target's author (the protocol allows no one else), known even when the target is not.
      const author = fold.entry(target)?.from ?? fold.deleterOf(target);
      if (author !== undefined && byOthers(author)) count--;
    }
  }
  for (let seq = anchor.read + 1; seq <= Math.min(position, anchor.last); seq++) {
    const entry = fold?.entry(seq);
    if (!fold?.has(seq)) {
      // Unknown: count it as an unread message now read, the usual case; the server's next row corrects it.
      exact = false;
      count--;
      continue;
    }
    if (!entry || entry.kind !== 'msg' || !byOthers(entry.from)) continue;
    const deleted = fold.deletedAt(seq);
    if (deleted === undefined || deleted > anchor.last) count--;
  }
  return { count: Math.max(0, count), exact };
}
