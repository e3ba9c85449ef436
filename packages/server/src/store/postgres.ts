/**
 * The PostgreSQL Store: the same contract as the embedded SQLite one, for a
 * deployment whose data lives in a database server. One transaction per group
 * commit, and one statement: a server-side function (postgres-commit.ts) does
 * the fence and every write, so a commit is one round trip. The fence against
 * a second owner is the conversation row, locked (`FOR UPDATE`) while the batch
 * checks that it continues the stored log, plus the primary key on (conv, seq)
 * and the unique cmid index.
 *
 * Commits are pipelined (commit-order.ts): several run at once on the pool's
 * connections when they touch different conversations, one after the other when
 * they share one, and their promises settle in call order. A batch that depends
 * on an earlier one that failed meets the order check above and fails too.
 *
 * Cluster mode adds the commit-time fence (CommitBatch.fences): the transaction
 * first runs the cluster's fence function (db/pg-fence.ts) for every slot of the
 * batch, holding each lease row FOR KEY SHARE until COMMIT, so a takeover either
 * waits for this commit or has already made it fail; each entry stores the epoch
 * it was written under (0 unfenced), so epochs never decrease along a log.
 *
 * Text columns hold what the SQLite adapter holds (rows.ts): bodies as JSON text,
 * cmids encoded so that NUL and lone surrogates survive; BIGINTs come back as
 * strings and are turned into numbers there.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { checkLeaseRef, fenceFunctionName, isFenceRefusal, refusedLease, SlotFencedError } from '../db/pg-fence.js';
import { inTransaction, onClient } from '../db/pg-transaction.js';
import type { Entry } from 'sequent-client/protocol';
import { CommitOrder } from './commit-order.js';
import { StoreConflictError } from './memory.js';
import { batchRows, checkRowValues, encodeCmid, entryFromRow, type EntryRow, READ_COLUMNS } from './rows.js';
import { PostgresConvReads, snapshotConvs } from './postgres-chat.js';
import { COMMIT_REFUSED_SQLSTATE, commitCallSql, commitFunctionSql } from './postgres-commit.js';
import type { CommitBatch, CommitFence, ConvKind, ConvListing, ConvRecord, ConvsQuery, ConvsSnapshot, ConvsState, EntryMeta, LaneRecord, Membership, ReadMove, ReadPosition, Store } from './types.js';

export interface PostgresStoreOptions {
  /** postgres://user@host:port/db */
  url: string;
  /** The schema holding the tables (created if missing); default "sequent". */
  schema?: string;
  /** Most connections in the pool; default 10. */
  maxConnections?: number;
  /**
   * Commit transactions at once (each on a connection of the pool); default half
   * of maxConnections, rounded up, so that reads still find a connection. Batches
   * waiting meanwhile join into the next transaction.
   */
  maxCommitsInFlight?: number;
  /**
   * The schema of the cluster tables, whose fence function checks a fenced commit
   * (default: the connection's search_path, as the cluster's own default).
   */
  clusterSchema?: string;
  /**
   * More pool settings, e.g. a cluster node's session settings (cluster/pg-session.ts),
   * so that the server ends a paused node's open commit and frees its locks.
   */
  poolConfig?: Omit<pg.PoolConfig, 'connectionString' | 'max'>;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/** Changes whenever the schema SQL or its migrations change: an init with another fingerprint runs them. */
const SCHEMA_FINGERPRINT = createHash('sha256')
  .update([schemaSql('s'), laneRangeBackfill('s'), chatStateBackfill('s'), versionsMigration('s'), commitFunctionSql('s')].join('\n'))
  .digest('hex')
  .slice(0, 32);

function schemaSql(schema: string): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${schema};
CREATE TABLE IF NOT EXISTS ${schema}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ${schema}.convs (
  conv TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('dm', 'group')),
  last BIGINT NOT NULL DEFAULT 0,
  last_ts BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ${schema}.entries (
  conv TEXT NOT NULL,
  seq BIGINT NOT NULL,
  kind TEXT NOT NULL,
  mid TEXT NOT NULL,
  ts BIGINT NOT NULL,
  from_user TEXT NOT NULL,
  dev TEXT NOT NULL,
  cmid TEXT,
  dseq BIGINT,
  body TEXT NOT NULL,
  ctx TEXT,
  PRIMARY KEY (conv, seq)
);
-- cmid leads, as in the SQLite store: time-ordered cmids then append at one end of the index.
CREATE UNIQUE INDEX IF NOT EXISTS entries_by_cmid ON ${schema}.entries (cmid, conv, from_user, dev) WHERE cmid IS NOT NULL;
DROP INDEX IF EXISTS ${schema}.entries_cmid;
CREATE TABLE IF NOT EXISTS ${schema}.device_lanes (
  conv TEXT NOT NULL,
  from_user TEXT NOT NULL,
  dev TEXT NOT NULL,
  last_dseq BIGINT NOT NULL,
  PRIMARY KEY (conv, from_user, dev)
);
-- "C": byte order, which for printable ASCII is JavaScript's order too (see cmid-order.ts).
ALTER TABLE ${schema}.device_lanes ADD COLUMN IF NOT EXISTS min_cmid TEXT COLLATE "C";
ALTER TABLE ${schema}.device_lanes ADD COLUMN IF NOT EXISTS max_cmid TEXT COLLATE "C";
CREATE TABLE IF NOT EXISTS ${schema}.memberships (
  conv TEXT NOT NULL,
  member TEXT NOT NULL,
  from_seq BIGINT NOT NULL,
  to_seq BIGINT,
  PRIMARY KEY (conv, member, from_seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS memberships_open ON ${schema}.memberships (conv, member) WHERE to_seq IS NULL;
CREATE INDEX IF NOT EXISTS memberships_by_member ON ${schema}.memberships (member, conv, from_seq);
-- Chat state (the SQLite store's schema 5, sqlite-schema.ts, says why each piece is there).
ALTER TABLE ${schema}.convs ADD COLUMN IF NOT EXISTS msgs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ${schema}.entries ADD COLUMN IF NOT EXISTS ref BIGINT;
ALTER TABLE ${schema}.entries ADD COLUMN IF NOT EXISTS edited BIGINT;
ALTER TABLE ${schema}.entries ADD COLUMN IF NOT EXISTS deleted BIGINT;
ALTER TABLE ${schema}.entries ADD COLUMN IF NOT EXISTS mcount BIGINT NOT NULL DEFAULT 0;
-- Cluster mode: the lease epoch each entry was committed under; 0 for a single node and for
-- entries stored before (a constant default: adding it rewrites no table).
ALTER TABLE ${schema}.entries ADD COLUMN IF NOT EXISTS epoch BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS entries_by_ref ON ${schema}.entries (conv, ref) WHERE ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_deleted ON ${schema}.entries (conv, seq) WHERE deleted IS NOT NULL AND kind = 'msg';
CREATE TABLE IF NOT EXISTS ${schema}.member_state (
  conv TEXT NOT NULL,
  member TEXT NOT NULL,
  read BIGINT NOT NULL,
  pub_read BIGINT NOT NULL,
  ver BIGINT NOT NULL,
  active BOOLEAN NOT NULL,
  PRIMARY KEY (conv, member)
);
CREATE INDEX IF NOT EXISTS member_state_by_ver ON ${schema}.member_state (member, ver);
-- Once the one counter of every version; kept only for the migration to user_versions (versionsMigration).
CREATE TABLE IF NOT EXISTS ${schema}.counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
-- Each user's newest version (postgres-chat.ts): commits of different users take no common lock.
CREATE TABLE IF NOT EXISTS ${schema}.user_versions (member TEXT PRIMARY KEY, value BIGINT NOT NULL);
`;
}

/** Data stored before the chat state: prefix counts, and every member's latest stretch read up to its end (see migrateChatState in sqlite-schema.ts). */
function chatStateBackfill(s: string): string {
  return `
UPDATE ${s}.entries e SET mcount = p.m
  FROM (SELECT conv, seq, count(*) FILTER (WHERE kind = 'msg') OVER (PARTITION BY conv ORDER BY seq) AS m FROM ${s}.entries) p
 WHERE p.conv = e.conv AND p.seq = e.seq;
UPDATE ${s}.convs c SET msgs = (SELECT count(*) FROM ${s}.entries e WHERE e.conv = c.conv AND e.kind = 'msg');
INSERT INTO ${s}.member_state (conv, member, read, pub_read, ver, active)
  SELECT m.conv, m.member, coalesce(m.to_seq, c.last), coalesce(m.to_seq, c.last), 1, m.to_seq IS NULL
    FROM ${s}.memberships m JOIN ${s}.convs c ON c.conv = m.conv
   WHERE m.from_seq = (SELECT MAX(from_seq) FROM ${s}.memberships l WHERE l.conv = m.conv AND l.member = m.member)
ON CONFLICT DO NOTHING;`;
}

/**
 * From the one version counter to one per user, once: each user starts at the
 * counter's value (or the user's highest version, if above), so every version
 * issued from now on is above every one issued before. The counter row goes,
 * and a check keeps it from coming back: a node still on the one counter can
 * neither create it at init (the check refuses the insert) nor commit (its
 * counter update finds no row and the transaction fails), instead of issuing
 * versions below those already seen. So the change needs every node on the new
 * code (docs/cluster.md).
 */
function versionsMigration(s: string): string {
  return `
INSERT INTO ${s}.user_versions (member, value)
  SELECT member, GREATEST(MAX(ver), coalesce((SELECT value FROM ${s}.counters WHERE name = 'version'), 0)) FROM ${s}.member_state GROUP BY member;
DELETE FROM ${s}.counters WHERE name = 'version';
ALTER TABLE ${s}.counters ADD CONSTRAINT counters_no_global_version CHECK (name <> 'version');`;
}

function laneRangeBackfill(s: string): string {
  const bound = (fn: string) => `(SELECT ${fn}(cmid COLLATE "C") FROM ${s}.entries e WHERE e.conv = l.conv AND e.from_user = l.from_user
      AND e.dev = l.dev AND e.cmid ~ '^[ -~]+$')`;
  return `UPDATE ${s}.device_lanes l SET min_cmid = ${bound('MIN')}, max_cmid = ${bound('MAX')}`;
}

/** A unique or foreign-key violation: the batch broke a rule of the log. */
function isConflict(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === '23505' || code === '23503' || code === '23514';
}

class PostgresStore implements Store {
  private readonly pool: pg.Pool;
  private readonly s: string;
  private readonly fenceFn: string;
  /** The commit call's prepared-statement name: each connection parses it once. */
  private readonly commitStatement: string;
  private closed = false;
  private readonly order: CommitOrder<PendingCommit>;
  readonly pipelinesCommits = true;

  constructor(options: PostgresStoreOptions) {
    const schema = options.schema ?? 'sequent';
    if (!IDENTIFIER.test(schema)) throw new TypeError(`schema must be lower-case letters, digits and underscores, got ${JSON.stringify(schema)}`);
    this.s = schema;
    if (options.clusterSchema !== undefined && !IDENTIFIER.test(options.clusterSchema)) {
      throw new TypeError(`clusterSchema must be lower-case letters, digits and underscores, got ${JSON.stringify(options.clusterSchema)}`);
    }
    this.fenceFn = fenceFunctionName(options.clusterSchema);
    this.commitStatement = `sequent_commit_${schema}`;
    const maxConnections = options.maxConnections ?? 10;
    this.pool = new pg.Pool({ ...options.poolConfig, connectionString: options.url, max: maxConnections });
    this.order = new CommitOrder<PendingCommit>({
      maxRunning: options.maxCommitsInFlight ?? Math.max(1, Math.ceil(maxConnections / 2)),
      maxEntries: JOINED_ENTRIES,
      joinable: (group, next) => group.every((g) => joinable(g, next)),
      sizeOf: (c) => c.batch.entries.length,
      write: (commits) => this.commitNow(commits),
    });
    // An idle client's connection error must not crash the process; the next query reports it.
    this.pool.on('error', () => {});
  }

  async init(): Promise<void> {
    // A node starting beside running ones must not take DDL locks their commits cross (ALTER TABLE waits for
    // every commit on the table while holding what later ones need: 40P01). A schema already current is left alone.
    if (await this.schemaIsCurrent()) return;
    await inTransaction(this.pool, async (client) => {
      // Two processes creating the tables at once would race in the catalog: take turns.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`sequent-store:${this.s}`]);
      const { rows: ranged } = await client.query(
        `SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'device_lanes' AND column_name = 'min_cmid'`,
        [this.s],
      );
      const { rows: existing } = await client.query(`SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'device_lanes'`, [this.s]);
      const { rows: chat } = await client.query(
        `SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'entries' AND column_name = 'mcount'`,
        [this.s],
      );
      const { rows: perUser } = await client.query(`SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'user_versions'`, [this.s]);
      await client.query(schemaSql(this.s));
      // Lanes stored before the cmid range was kept get it from their entries, once.
      if (existing.length > 0 && ranged.length === 0) await client.query(laneRangeBackfill(this.s));
      if (existing.length > 0 && chat.length === 0) await client.query(chatStateBackfill(this.s));
      if (perUser.length === 0) await client.query(versionsMigration(this.s));
      // Replaced only here, when the fingerprint changed: CREATE OR REPLACE locks the function's catalog row.
      await client.query(commitFunctionSql(this.s));
      await client.query(
        `INSERT INTO ${this.s}.meta (key, value) VALUES ('schema_sql', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [SCHEMA_FINGERPRINT],
      );
    });
  }

  /** Whether the last init of this schema ran this very schema SQL (its fingerprint is stored with it). */
  private async schemaIsCurrent(): Promise<boolean> {
    try {
      const { rows } = await this.pool.query<{ value: string }>(`SELECT value FROM ${this.s}.meta WHERE key = 'schema_sql'`);
      return rows[0]?.value === SCHEMA_FINGERPRINT;
    } catch (error) {
      if ((error as { code?: string }).code === '42P01' || (error as { code?: string }).code === '3F000') return false; // no table or schema yet
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Commits already taken still run to their end (each settles its caller) before the pool goes.
    await this.order.drained();
    await this.pool.end();
  }

  private async query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    if (this.closed) throw new Error('the store is closed');
    return (await this.pool.query<R>(text, values)).rows;
  }

  async getConv(conv: string): Promise<ConvRecord | null> {
    const [row] = await this.query<{ conv: string; kind: ConvKind; last: string; last_ts: string }>(
      `SELECT conv, kind, last, last_ts FROM ${this.s}.convs WHERE conv = $1`,
      [conv],
    );
    return row ? { conv: row.conv, kind: row.kind, last: Number(row.last), lastTs: Number(row.last_ts) } : null;
  }

  async recentConvs(sinceTs: number, limit: number): Promise<ConvRecord[]> {
    // No index on last_ts: every commit updates it, and an index would cost each of them for a query run only on takeovers.
    const rows = await this.query<{ conv: string; kind: ConvKind; last: string; last_ts: string }>(
      `SELECT conv, kind, last, last_ts FROM ${this.s}.convs WHERE last_ts >= $1 AND last > 0 ORDER BY last_ts DESC LIMIT $2`,
      [sinceTs, limit],
    );
    return rows.map((row) => ({ conv: row.conv, kind: row.kind, last: Number(row.last), lastTs: Number(row.last_ts) }));
  }

  async getMemberships(conv: string): Promise<Membership[]> {
    const rows = await this.query<{ conv: string; member: string; from_seq: string; to_seq: string | null }>(
      `SELECT conv, member, from_seq, to_seq FROM ${this.s}.memberships WHERE conv = $1 ORDER BY from_seq, member COLLATE "C"`,
      [conv],
    );
    return rows.map((r) => ({ conv: r.conv, user: r.member, fromSeq: Number(r.from_seq), toSeq: r.to_seq === null ? null : Number(r.to_seq) }));
  }

  async findByCmid(conv: string, user: string, device: string, cmid: string): Promise<Entry | null> {
    const [row] = await this.query<EntryRow>(
      `SELECT ${READ_COLUMNS} FROM ${this.s}.entries WHERE conv = $1 AND from_user = $2 AND dev = $3 AND cmid = $4`,
      [conv, user, device, encodeCmid(cmid)],
    );
    return row ? entryFromRow(row) : null;
  }

  async lane(conv: string, user: string, device: string): Promise<LaneRecord> {
    const [row] = await this.query<{ last_dseq: string; min_cmid: string | null; max_cmid: string | null }>(
      `SELECT last_dseq, min_cmid, max_cmid FROM ${this.s}.device_lanes WHERE conv = $1 AND from_user = $2 AND dev = $3`,
      [conv, user, device],
    );
    return row ? { lastDseq: Number(row.last_dseq), minCmid: row.min_cmid, maxCmid: row.max_cmid } : { lastDseq: 0, minCmid: null, maxCmid: null };
  }

  async commit(batch: CommitBatch): Promise<void> {
    if (this.closed) throw new Error('the store is closed');
    let leases: CommitFence[] | undefined;
    try {
      leases = batch.fences === undefined ? undefined : fencedLeases(batch, batch.fences);
    } catch (error) {
      // Refused without a write, but still answered in call order.
      return this.order.run([], { batch, leases: undefined, invalid: error });
    }
    return this.order.run(touchedConvs(batch), { batch, leases });
  }

  /** One transaction for the batches, in order: the fences of all of them first, then their rows. */
  private async commitNow(commits: readonly PendingCommit[]): Promise<void> {
    const invalid = commits.find((c) => c.invalid !== undefined);
    if (invalid) throw invalid.invalid;
    const batch = commits.length === 1 ? commits[0]!.batch : joinBatches(commits.map((c) => c.batch));
    const leases = commits.some((c) => c.leases) ? distinctLeases(commits.flatMap((c) => c.leases ?? [])) : undefined;
    const values = commitArgs(batch, leases, this.fenceFn);
    try {
      // One statement, so its own transaction: no BEGIN and COMMIT round trips (postgres-commit.ts).
      await oneStatement(this.pool, { name: this.commitStatement, text: commitCallSql(this.s), values });
    } catch (error) {
      if (isFenceRefusal(error)) {
        // One statement checked every lease: the refusal names the one that failed.
        const refused = refusedLease(error) ?? leases?.[0];
        if (refused) throw new SlotFencedError(refused.slot, refused.epoch);
      }
      if ((error as { code?: unknown }).code === COMMIT_REFUSED_SQLSTATE) throw new StoreConflictError((error as Error).message, { cause: error });
      if (isConflict(error)) throw new StoreConflictError(`commit refused: ${(error as Error).message}`, { cause: error });
      throw error;
    }
  }

  async read(conv: string, afterSeq: number, untilSeq: number, limit: number, maxBytes = Number.MAX_SAFE_INTEGER): Promise<Entry[]> {
    if (limit <= 0 || untilSeq <= afterSeq) return [];
    // The byte budget is applied in the database (the sizes as entrySize counts them), so rows past it never travel.
    const rows = await this.query<EntryRow>(
      `SELECT ${READ_COLUMNS} FROM (
         SELECT *, sum(128 + length(body) + coalesce(length(ctx), 0)) OVER (ORDER BY seq) AS run, row_number() OVER (ORDER BY seq) AS n
           FROM (SELECT ${READ_COLUMNS} FROM ${this.s}.entries WHERE conv = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4) limited
       ) page
       WHERE run <= $5 OR n = 1 ORDER BY seq`,
      [conv, afterSeq, untilSeq, limit, Math.min(maxBytes, Number.MAX_SAFE_INTEGER)],
    );
    return rows.map(entryFromRow);
  }

  async listConvs(user: string, limit = Number.MAX_SAFE_INTEGER): Promise<ConvListing[]> {
    return this.chat.list(user, limit);
  }

  private get chat(): PostgresConvReads {
    if (this.closed) throw new Error('the store is closed');
    return new PostgresConvReads(this.pool, this.s);
  }

  async listConvsSince(user: string, since: number, limit: number): Promise<ConvListing[]> {
    return this.chat.listSince(user, since, limit);
  }

  async convsState(user: string): Promise<ConvsState> {
    return this.chat.state(user);
  }

  async convsSnapshot(user: string, query: ConvsQuery): Promise<ConvsSnapshot> {
    if (this.closed) throw new Error('the store is closed');
    return snapshotConvs(this.pool, this.s, user, query);
  }

  async readPositions(conv: string): Promise<ReadPosition[]> {
    return this.chat.readPositions(conv);
  }

  async entryMeta(conv: string, seq: number): Promise<EntryMeta | null> {
    return this.chat.entryMeta(conv, seq);
  }

  async getMeta(key: string): Promise<string | null> {
    const [row] = await this.query<{ value: string }>(`SELECT value FROM ${this.s}.meta WHERE key = $1`, [key]);
    return row?.value ?? null;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.query(`INSERT INTO ${this.s}.meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [key, value]);
  }
}

/** Entries a transaction of several joined batches stays within: about what the sequencer puts in one. */
const JOINED_ENTRIES = 4000;

interface PendingCommit {
  batch: CommitBatch;
  /** The batch's distinct leases, when it is fenced. */
  leases: readonly CommitFence[] | undefined;
  /** Why the batch is refused before any write (a fenced batch missing a fence). */
  invalid?: unknown;
}

/**
 * Whether two batches may share a transaction: both unfenced, or both fenced and
 * under the same lease wherever they share a conversation (each entry stores the
 * epoch of its conversation's fence).
 */
function joinable(a: PendingCommit, b: PendingCommit): boolean {
  if (a.invalid !== undefined || b.invalid !== undefined) return false;
  const fa = a.batch.fences;
  const fb = b.batch.fences;
  if (fa === undefined || fb === undefined) return fa === fb;
  for (const [conv, fence] of fb) {
    const other = fa.get(conv);
    if (other && (other.slot !== fence.slot || other.epoch !== fence.epoch)) return false;
  }
  return true;
}

/** Batches as one, in order (each conversation's entries still ascending and gapless). */
function joinBatches(batches: readonly CommitBatch[]): CommitBatch {
  const bodyJson: (string | undefined)[] = [];
  const reads: ReadMove[] = [];
  const joined: CommitBatch = { newConvs: [], entries: [], memberships: [], bodyJson, reads };
  let fences: Map<string, CommitFence> | undefined;
  for (const b of batches) {
    joined.newConvs.push(...b.newConvs);
    joined.entries.push(...b.entries);
    joined.memberships.push(...b.memberships);
    for (let i = 0; i < b.entries.length; i++) bodyJson.push(b.bodyJson?.[i]);
    reads.push(...(b.reads ?? []));
    if (b.fences) {
      fences ??= new Map();
      for (const [conv, fence] of b.fences) fences.set(conv, fence);
    }
  }
  if (fences) joined.fences = fences;
  return joined;
}

/** The distinct leases, in slot order, so that the lease rows are always locked in one order. */
function distinctLeases(leases: readonly CommitFence[]): CommitFence[] {
  const byKey = new Map<string, CommitFence>();
  for (const l of leases) byKey.set(`${l.slot}/${l.epoch}`, l);
  return [...byKey.values()].sort((a, b) => a.slot - b.slot || a.epoch - b.epoch);
}

/** Every conversation a batch touches: what orders it behind earlier commits in flight. */
function touchedConvs(batch: CommitBatch): string[] {
  return [
    ...batch.newConvs.map((c) => c.conv),
    ...batch.entries.map((e) => e.conv),
    ...batch.memberships.map((m) => m.conv),
    ...(batch.reads ?? []).map((r) => r.conv),
  ];
}

/**
 * The distinct leases of a fenced batch, by slot; throws TypeError (before anything is
 * written) when a conversation the batch touches has no fence: in cluster mode an
 * unfenced write is a second owner's chance.
 */
function fencedLeases(batch: CommitBatch, fences: ReadonlyMap<string, CommitFence>): CommitFence[] {
  for (const conv of touchedConvs(batch)) {
    if (!fences.has(conv)) throw new TypeError(`a fenced commit has no fence for conversation ${conv}`);
  }
  for (const [conv, fence] of fences) checkLeaseRef(fence, conv);
  return distinctLeases([...fences.values()].map((f) => ({ slot: f.slot, epoch: f.epoch })));
}

/** Opens a PostgreSQL store (connections are made lazily; init() creates the tables). */
export function openPostgresStore(options: PostgresStoreOptions): Store {
  return new PostgresStore(options);
}

/**
 * The commit function's arguments (postgres-commit.ts): the fence (leases in slot order,
 * so that the lease rows are always locked in one order) and the batch as columns.
 * What needs no stored row is checked here, before anything is sent.
 */
function commitArgs(batch: CommitBatch, leases: readonly CommitFence[] | undefined, fenceFn: string): unknown[] {
  const rows = batchRows(batch);
  const fences = batch.fences;
  const columns: unknown[][] = Array.from({ length: 13 }, () => []);
  for (const row of rows) {
    checkRowValues(row);
    row.forEach((value, i) => columns[i]!.push(value));
    columns[12]!.push(fences?.get(row[0])?.epoch ?? 0);
  }
  const reads = batch.reads ?? [];
  const changes = batch.memberships;
  return [
    leases ? fenceFn : '',
    (leases ?? []).map((l) => l.slot),
    (leases ?? []).map((l) => l.epoch),
    batch.newConvs.map((c) => c.conv),
    batch.newConvs.map((c) => c.kind),
    ...columns,
    changes.map((c) => c.op),
    changes.map((c) => c.conv),
    changes.map((c) => c.user),
    changes.map((c) => c.seq),
    reads.map((r) => r.conv),
    reads.map((r) => r.user),
    reads.map((r) => r.seq),
    reads.map((r) => (r.public ? r.seq : 0)),
  ];
}

/** One statement on a pooled connection, outside any BEGIN: its own transaction (a session ended under it is its error). */
function oneStatement(pool: pg.Pool, query: pg.QueryConfig): Promise<void> {
  return onClient(pool, async (client) => {
    await client.query(query);
  });
}
