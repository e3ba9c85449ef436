/**
 * The PostgreSQL store's chat state: the same effects and reads as the SQLite
 * store's (sqlite-chat.ts, sqlite-convs.ts explain them), in PostgreSQL's SQL.
 *
 * Versions are per user: a row of user_versions each, bumped once by every
 * commit that changes one of the user's list rows and locked until that commit
 * ends. So a user's versions follow the order in which that user's changes
 * commit, across every connection and server: a client that saw version v can
 * never later meet a change of its own list numbered below v. Commits that share
 * no user take no common lock (one global counter made every commit of every
 * node wait for the one before). The rows are locked in one order (of the user
 * ids), so two commits sharing users take turns and never deadlock on them.
 */
import type pg from 'pg';
import { inTransaction } from '../db/pg-transaction.js';
import type { EntryRowValues } from './rows.js';
import type { ConvListing, ConvsQuery, ConvsSnapshot, ConvsState, EntryMeta, MembershipChange, ReadMove, ReadPosition } from './types.js';

export async function writeChatEffects(
  client: pg.PoolClient,
  s: string,
  rows: readonly EntryRowValues[],
  memberships: readonly MembershipChange[],
  reads: readonly ReadMove[],
): Promise<void> {
  if (rows.length === 0 && memberships.length === 0 && reads.length === 0) return;
  const senders = new Map<string, Map<string, number>>();
  for (const row of rows) {
    const [conv, seq, kind, , , from] = row;
    const ref = row[11];
    if (kind === 'edit' && ref !== null) {
      await client.query(`UPDATE ${s}.entries SET edited = $1 WHERE conv = $2 AND seq = $3 AND kind = 'msg'`, [seq, conv, ref]);
    }
    if (kind === 'delete' && ref !== null) {
      await client.query(`UPDATE ${s}.entries SET body = 'null', deleted = $1 WHERE conv = $2 AND (seq = $3 OR (ref = $3 AND kind = 'edit'))`, [seq, conv, ref]);
    }
    let bySender = senders.get(conv);
    if (!bySender) senders.set(conv, (bySender = new Map()));
    bySender.set(from, Math.max(bySender.get(from) ?? 0, seq));
  }
  const { users, rows: listRows } = await changedRows(client, s, senders, memberships, reads);
  // Membership rows first, their versions set below with the others'.
  for (const change of memberships) {
    if (change.op === 'add') {
      await client.query(
        `INSERT INTO ${s}.member_state AS m (conv, member, read, pub_read, ver, active) VALUES ($1, $2, $3, $3, 0, true)
         ON CONFLICT (conv, member) DO UPDATE SET active = true, read = GREATEST(m.read, excluded.read), pub_read = GREATEST(m.pub_read, excluded.pub_read)`,
        [change.conv, change.user, change.seq - 1],
      );
    } else {
      await client.query(`UPDATE ${s}.member_state SET active = false WHERE conv = $1 AND member = $2`, [change.conv, change.user]);
    }
  }
  // Last before COMMIT and one statement: the users' version rows, locked from here until the
  // transaction ends, are held for as short a time as can be (a commit sharing a user waits that long).
  if (users.length > 0) {
    await client.query(
      `WITH bumped AS (
         INSERT INTO ${s}.user_versions AS v (member, value)
           SELECT u.member, 1 FROM unnest($1::text[]) WITH ORDINALITY AS u(member, n) ORDER BY u.n
         ON CONFLICT (member) DO UPDATE SET value = v.value + 1
         RETURNING member, value
       )
       UPDATE ${s}.member_state m SET read = GREATEST(m.read, c.read), pub_read = GREATEST(m.pub_read, c.pub), ver = b.value
         FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS c(conv, member, read, pub)
         JOIN bumped b ON b.member = c.member
        WHERE m.conv = c.conv AND m.member = c.member`,
      [users, listRows.map((r) => r.conv), listRows.map((r) => r.member), listRows.map((r) => r.read), listRows.map((r) => r.pub)],
    );
  }
}

interface RowChange {
  conv: string;
  member: string;
  /** the highest position the batch moves the row's read to (0: none) */
  read: number;
  /** the same of its public read, from public moves only */
  pub: number;
}

/**
 * Whose list rows the commit changes, and how: every current member's row of a
 * conversation with a new entry (read under the batch's lock of the conversation
 * row, so the set cannot move meanwhile) and the senders' and readers' rows
 * whose positions move; and every user whose version goes up, those added or
 * removed as well. Users sorted by UTF-16 code unit: every commit locks the
 * users' version rows in this one order.
 */
async function changedRows(
  client: pg.PoolClient,
  s: string,
  senders: ReadonlyMap<string, ReadonlyMap<string, number>>,
  memberships: readonly MembershipChange[],
  reads: readonly ReadMove[],
): Promise<{ users: string[]; rows: RowChange[] }> {
  const rows = new Map<string, RowChange>();
  const row = (conv: string, member: string): RowChange => {
    const key = `${conv}\u0000${member}`;
    let r = rows.get(key);
    if (!r) rows.set(key, (r = { conv, member, read: 0, pub: 0 }));
    return r;
  };
  if (senders.size > 0) {
    const { rows: active } = await client.query<{ conv: string; member: string }>(
      `SELECT conv, member FROM ${s}.member_state WHERE conv = ANY($1::text[]) AND active`,
      [[...senders.keys()]],
    );
    for (const m of active) row(m.conv, m.member);
    for (const [conv, bySender] of senders) {
      for (const [from, seq] of bySender) {
        const r = row(conv, from);
        r.read = Math.max(r.read, seq);
        r.pub = Math.max(r.pub, seq);
      }
    }
  }
  for (const m of reads) {
    const r = row(m.conv, m.user);
    r.read = Math.max(r.read, m.seq);
    if (m.public) r.pub = Math.max(r.pub, m.seq);
  }
  // an added or removed member's row gets the new version too (its positions as the change left them)
  for (const change of memberships) row(change.conv, change.user);
  const users = new Set<string>();
  for (const r of rows.values()) users.add(r.member);
  return { users: [...users].sort(byCodeUnit), rows: [...rows.values()] };
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function rowSql(s: string): string {
  return `
  SELECT c.conv, c.last, m.from_seq, m.to_seq, st.read, st.ver,
         CASE WHEN m.to_seq IS NULL THEN c.last_ts
              ELSE coalesce((SELECT e.ts FROM ${s}.entries e WHERE e.conv = m.conv AND e.seq = m.to_seq), c.last_ts) END AS shown_ts,
         CASE WHEN m.to_seq IS NULL THEN c.msgs
              ELSE coalesce((SELECT u.mcount FROM ${s}.entries u WHERE u.conv = st.conv AND u.seq = m.to_seq), 0) END
           - coalesce((SELECT r.mcount FROM ${s}.entries r WHERE r.conv = st.conv AND r.seq = st.read), 0)
           - (SELECT count(*) FROM ${s}.entries d WHERE d.conv = st.conv AND d.deleted IS NOT NULL AND d.kind = 'msg'
                AND d.seq > st.read AND d.seq <= coalesce(m.to_seq, c.last)) AS unread
    FROM ${s}.member_state st
    JOIN ${s}.convs c ON c.conv = st.conv
    JOIN ${s}.memberships m ON m.conv = st.conv AND m.member = st.member
         AND m.from_seq = (SELECT MAX(from_seq) FROM ${s}.memberships l WHERE l.member = st.member AND l.conv = st.conv)`;
}

type Row = Record<'conv' | 'last' | 'from_seq' | 'read' | 'ver' | 'shown_ts' | 'unread', string> & { to_seq: string | null };

function listing(r: Row): ConvListing {
  return {
    conv: r.conv,
    last: Number(r.last),
    ts: Number(r.shown_ts),
    fromSeq: Number(r.from_seq),
    toSeq: r.to_seq === null ? null : Number(r.to_seq),
    read: Number(r.read),
    unread: Number(r.unread),
    version: Number(r.ver),
  };
}

/** Where the reads run: the pool (a statement each), or one client inside a snapshot transaction. */
type Queryable = Pick<pg.ClientBase, 'query'>;

export class PostgresConvReads {
  constructor(
    private readonly pool: Queryable,
    private readonly s: string,
  ) {}

  private async rows(where: string, order: string, values: unknown[]): Promise<ConvListing[]> {
    const result = await this.pool.query<Row>(`${rowSql(this.s)} WHERE ${where} ORDER BY ${order}`, values);
    return result.rows.map(listing);
  }

  list(user: string, limit: number): Promise<ConvListing[]> {
    return this.rows('st.member = $1', '7 DESC, c.conv COLLATE "C" ASC LIMIT $2', [user, Math.min(limit, Number.MAX_SAFE_INTEGER)]);
  }

  async listSince(user: string, since: number, limit: number): Promise<ConvListing[]> {
    const rows = await this.rows('st.member = $1 AND st.ver > $2', 'st.ver, c.conv COLLATE "C" LIMIT $3', [user, since, limit + 1]);
    if (rows.length <= limit) return rows;
    const cut = rows[limit - 1]!.version;
    if (rows[limit]!.version !== cut) return rows.slice(0, limit);
    const tied = await this.rows('st.member = $1 AND st.ver = $2', 'c.conv COLLATE "C"', [user, cut]);
    return [...rows.filter((r) => r.version < cut), ...tied];
  }

  /** One statement, one snapshot. */
  async state(user: string): Promise<ConvsState> {
    const { rows } = await this.pool.query<{ version: string; unread: string }>(
      `SELECT (SELECT coalesce(MAX(ver), 0) FROM ${this.s}.member_state WHERE member = $1) AS version,
              (SELECT coalesce(SUM(unread), 0) FROM (${rowSql(this.s)} WHERE st.member = $1) x) AS unread`,
      [user],
    );
    return { version: Number(rows[0]!.version), unread: Number(rows[0]!.unread) };
  }

  /** Must run on one client inside a REPEATABLE READ transaction (snapshotConvs): then every statement sees one snapshot. */
  async snapshotIn(user: string, query: ConvsQuery): Promise<ConvsSnapshot> {
    const current = await this.state(user);
    if (query.since !== undefined && query.since <= current.version) {
      return { ...current, rows: await this.listSince(user, query.since, query.sinceLimit), changedOnly: true };
    }
    return { ...current, rows: await this.list(user, query.fullLimit), changedOnly: false };
  }

  async readPositions(conv: string): Promise<ReadPosition[]> {
    const { rows } = await this.pool.query<{ member: string; read: string; pub_read: string }>(
      `SELECT member, read, pub_read FROM ${this.s}.member_state WHERE conv = $1 ORDER BY member COLLATE "C"`,
      [conv],
    );
    return rows.map((r) => ({ user: r.member, read: Number(r.read), publicRead: Number(r.pub_read) }));
  }

  async entryMeta(conv: string, seq: number): Promise<EntryMeta | null> {
    const { rows } = await this.pool.query<{ kind: string; from_user: string; deleted: string | null }>(
      `SELECT kind, from_user, deleted FROM ${this.s}.entries WHERE conv = $1 AND seq = $2`,
      [conv, seq],
    );
    const row = rows[0];
    return row ? { kind: row.kind as EntryMeta['kind'], from: row.from_user, deleted: row.deleted === null ? null : Number(row.deleted) } : null;
  }
}

/**
 * One `convs` reply's reads in one REPEATABLE READ snapshot: the total and the rows agree.
 * inTransaction also keeps a session the server ends meanwhile from crashing the process.
 */
export function snapshotConvs(pool: pg.Pool, schema: string, user: string, query: ConvsQuery): Promise<ConvsSnapshot> {
  return inTransaction(pool, async (client) => {
    await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
    return new PostgresConvReads(client, schema).snapshotIn(user, query);
  });
}
