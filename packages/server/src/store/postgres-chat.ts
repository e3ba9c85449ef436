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
 * The commit's writes of this state are in the commit function (postgres-commit.ts).
 */
import type pg from 'pg';
import { inTransaction } from '../db/pg-transaction.js';
import type { ConvListing, ConvsQuery, ConvsSnapshot, ConvsState, EntryMeta, ReadPosition } from './types.js';

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
