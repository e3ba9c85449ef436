/**
 * The SQLite store's chat-state reads: the caller's rows of the conversation
 * list with read position, unread count and version, without reading entries
 * beyond a few point lookups per row.
 *
 * unread = (msg entries up to L) - (msg entries up to read) - (deleted msg entries in (read, L]),
 * with L the last seq the user may read. The first two are `mcount`, the prefix count of
 * `msg` entries stored with every entry (and `convs.msgs` for the newest); the third
 * counts rows of a partial index holding deleted messages only. A user's own messages
 * are never in (read, L]: every entry moves its sender's read position to its seq.
 * The deleted count names its index: the entries' own key (conv, seq) also fits the
 * range, and SQLite would otherwise scan every entry in (read, L] for the few deleted.
 */
import Database from 'better-sqlite3';
import type { ConvListing, ConvsQuery, ConvsSnapshot, ConvsState, EntryMeta, ReadPosition } from './types.js';

const ROW = `
  SELECT c.conv, c.last, m.from_seq, m.to_seq, s.read, s.ver,
         CASE WHEN m.to_seq IS NULL THEN c.last_ts
              ELSE coalesce((SELECT e.ts FROM entries e WHERE e.conv = m.conv AND e.seq = m.to_seq), c.last_ts) END AS shown_ts,
         CASE WHEN m.to_seq IS NULL THEN c.msgs
              ELSE coalesce((SELECT u.mcount FROM entries u WHERE u.conv = s.conv AND u.seq = m.to_seq), 0) END
           - coalesce((SELECT r.mcount FROM entries r WHERE r.conv = s.conv AND r.seq = s.read), 0)
           - (SELECT count(*) FROM entries d INDEXED BY entries_deleted WHERE d.conv = s.conv AND d.deleted IS NOT NULL AND d.kind = 'msg'
                AND d.seq > s.read AND d.seq <= coalesce(m.to_seq, c.last)) AS unread
    FROM member_state s
    JOIN convs c ON c.conv = s.conv
    JOIN memberships m ON m.conv = s.conv AND m.member = s.member
         AND m.from_seq = (SELECT MAX(from_seq) FROM memberships l WHERE l.member = s.member AND l.conv = s.conv)`;

interface Row {
  conv: string;
  last: number;
  from_seq: number;
  to_seq: number | null;
  read: number;
  ver: number;
  shown_ts: number;
  unread: number;
}

type S<P extends unknown[], R> = Database.Statement<P, R>;

export interface ConvReads {
  list: S<[{ user: string; limit: number }], Row>;
  since: S<[{ user: string; since: number; limit: number }], Row>;
  atVersion: S<[{ user: string; ver: number }], Row>;
  version: S<[string], { version: number }>;
  unread: S<[{ user: string }], { unread: number }>;
  readPositions: S<[string], { member: string; read: number; pub_read: number }>;
  entryMeta: S<[string, number], { kind: string; from_user: string; deleted: number | null }>;
  state: (user: string) => ConvsState;
  snapshot: (user: string, query: ConvsQuery) => ConvsSnapshot;
}

export function prepareConvReads(db: Database.Database): ConvReads {
  const statements = {
    list: db.prepare<[{ user: string; limit: number }], Row>(`${ROW} WHERE s.member = @user ORDER BY shown_ts DESC, c.conv ASC LIMIT @limit`),
    // The (member, ver) index: only the rows changed after `since` are read.
    since: db.prepare<[{ user: string; since: number; limit: number }], Row>(
      `${ROW} WHERE s.member = @user AND s.ver > @since ORDER BY s.ver, c.conv LIMIT @limit`,
    ),
    atVersion: db.prepare<[{ user: string; ver: number }], Row>(`${ROW} WHERE s.member = @user AND s.ver = @ver ORDER BY c.conv`),
    version: db.prepare<[string], { version: number }>('SELECT coalesce(MAX(ver), 0) AS version FROM member_state WHERE member = ?'),
    unread: db.prepare<[{ user: string }], { unread: number }>(`SELECT coalesce(SUM(unread), 0) AS unread FROM (${ROW} WHERE s.member = @user)`),
    readPositions: db.prepare<[string], { member: string; read: number; pub_read: number }>(
      'SELECT member, read, pub_read FROM member_state WHERE conv = ? ORDER BY member',
    ),
    entryMeta: db.prepare<[string, number], { kind: string; from_user: string; deleted: number | null }>(
      'SELECT kind, from_user, deleted FROM entries WHERE conv = ? AND seq = ?',
    ),
  };
  // One snapshot for the version and the total, so that neither is newer than the other.
  const state = db.transaction((user: string): ConvsState => ({
    version: statements.version.get(user)!.version,
    unread: statements.unread.get({ user })!.unread,
  }));
  // A read transaction: in WAL mode every statement in it sees the same commit, whatever the writer thread does.
  const snapshot = db.transaction((user: string, query: ConvsQuery): ConvsSnapshot => {
    const current = state(user);
    if (query.since !== undefined && query.since <= current.version) {
      return { ...current, rows: listConvsSince(statements, user, query.since, query.sinceLimit), changedOnly: true };
    }
    return { ...current, rows: listConvs(statements, user, query.fullLimit), changedOnly: false };
  });
  return { ...statements, state, snapshot };
}


function listing(r: Row): ConvListing {
  return { conv: r.conv, last: r.last, ts: r.shown_ts, fromSeq: r.from_seq, toSeq: r.to_seq, read: r.read, unread: r.unread, version: r.ver };
}

export function listConvs(s: Pick<ConvReads, 'list'>, user: string, limit: number): ConvListing[] {
  return s.list.all({ user, limit }).map(listing);
}

/** Rows of one version are never split across pages: the next page starts above the last row's version. */
export function listConvsSince(s: Pick<ConvReads, 'since' | 'atVersion'>, user: string, since: number, limit: number): ConvListing[] {
  const rows = s.since.all({ user, since, limit: limit + 1 });
  if (rows.length <= limit) return rows.map(listing);
  const cut = rows[limit - 1]!.ver;
  if (rows[limit]!.ver !== cut) return rows.slice(0, limit).map(listing);
  return [...rows.filter((r) => r.ver < cut), ...s.atVersion.all({ user, ver: cut })].map(listing);
}

export function readPositions(s: ConvReads, conv: string): ReadPosition[] {
  return s.readPositions.all(conv).map((r) => ({ user: r.member, read: r.read, publicRead: r.pub_read }));
}

export function entryMeta(s: ConvReads, conv: string, seq: number): EntryMeta | null {
  const row = s.entryMeta.get(conv, seq);
  return row ? { kind: row.kind as EntryMeta['kind'], from: row.from_user, deleted: row.deleted } : null;
}
