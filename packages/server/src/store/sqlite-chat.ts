/**
 * The chat state of a SQLite group commit: what edits and deletes do to their
 * targets, and read positions and row versions of the members. Applied inside
 * the commit transaction, after the entries are inserted.
 */
import Database from 'better-sqlite3';
import type { EntryRowValues } from './rows.js';
import type { MembershipChange, ReadMove } from './types.js';

type S<P extends unknown[], R = unknown> = Database.Statement<P, R>;
type Params<K extends string> = [Record<K, string | number>];

export interface ChatWrites {
  nextVersion: S<[], { value: number }>;
  markEdited: S<[number, string, number]>;
  scrubTarget: S<[number, string, number]>;
  scrubEdits: S<[number, string, number]>;
  joinMember: S<Params<'conv' | 'member' | 'read' | 'ver'>>;
  leaveMember: S<Params<'conv' | 'member' | 'ver'>>;
  touchMembers: S<Params<'conv' | 'ver'>>;
  moveRead: S<Params<'conv' | 'member' | 'seq' | 'pub' | 'ver'>>;
}

export function prepareChatWrites(db: Database.Database): ChatWrites {
  return {
    // One version per commit, in commit order (the writer is the only one).
    nextVersion: db.prepare<[], { value: number }>("UPDATE counters SET value = value + 1 WHERE name = 'version' RETURNING value"),
    markEdited: db.prepare<[number, string, number]>("UPDATE entries SET edited = ? WHERE conv = ? AND seq = ? AND kind = 'msg'"),
    // With secure_delete on, the old body's bytes are overwritten in the page, not only unlinked.
    scrubTarget: db.prepare<[number, string, number]>("UPDATE entries SET body = 'null', deleted = ? WHERE conv = ? AND seq = ?"),
    // Named index: the key (conv, seq) also matches conv = ?, and would mean a scan of the whole conversation.
    scrubEdits: db.prepare<[number, string, number]>(
      "UPDATE entries INDEXED BY entries_by_ref SET body = 'null', deleted = ? WHERE conv = ? AND ref = ? AND kind = 'edit'",
    ),
    joinMember: db.prepare(
      `INSERT INTO member_state (conv, member, read, pub_read, ver, active) VALUES (@conv, @member, @read, @read, @ver, 1)
       ON CONFLICT (conv, member) DO UPDATE SET active = 1, read = max(read, excluded.read), pub_read = max(pub_read, excluded.pub_read), ver = excluded.ver`,
    ),
    leaveMember: db.prepare('UPDATE member_state SET active = 0, ver = @ver WHERE conv = @conv AND member = @member'),
    touchMembers: db.prepare('UPDATE member_state SET ver = @ver WHERE conv = @conv AND active = 1'),
    moveRead: db.prepare(
      `UPDATE member_state SET read = max(read, @seq), pub_read = CASE WHEN @pub THEN max(pub_read, @seq) ELSE pub_read END, ver = @ver
        WHERE conv = @conv AND member = @member`,
    ),
  };
}


/** Collects one batch's effects and writes them, all at the batch's version. */
export class ChatEffects {
  /** Per conversation with new entries: each sender's highest seq in the batch. */
  private readonly senders = new Map<string, Map<string, number>>();

  constructor(
    private readonly s: ChatWrites,
    private readonly version: number,
  ) {}

  entry(row: EntryRowValues): void {
    const [conv, seq, kind, , , from] = row;
    const ref = row[11];
    if (kind === 'edit' && ref !== null) this.s.markEdited.run(seq, conv, ref);
    if (kind === 'delete' && ref !== null) {
      this.s.scrubTarget.run(seq, conv, ref);
      this.s.scrubEdits.run(seq, conv, ref);
    }
    let senders = this.senders.get(conv);
    if (!senders) this.senders.set(conv, (senders = new Map()));
    senders.set(from, Math.max(senders.get(from) ?? 0, seq));
  }

  /** Nothing before an add is readable to the added user, so nothing before it is unread. */
  membership(change: MembershipChange): void {
    if (change.op === 'add') this.s.joinMember.run({ conv: change.conv, member: change.user, read: change.seq - 1, ver: this.version });
    else this.s.leaveMember.run({ conv: change.conv, member: change.user, ver: this.version });
  }

  /** After entries and memberships: every current member's row changed; senders have read their own entries; then the read requests. */
  finish(reads: readonly ReadMove[]): void {
    const ver = this.version;
    for (const [conv, senders] of this.senders) {
      this.s.touchMembers.run({ conv, ver });
      for (const [member, seq] of senders) this.s.moveRead.run({ conv, member, seq, pub: 1, ver });
    }
    for (const move of reads) this.s.moveRead.run({ conv: move.conv, member: move.user, seq: move.seq, pub: move.public ? 1 : 0, ver });
  }
}
