/**
 * The embedded SQLite Store (better-sqlite3): the default durable truth of a
 * single-node server. One file, WAL journal, one write transaction per group
 * commit, every statement prepared once.
 *
 * Durability: 'full' (default) sets `synchronous = FULL`, so the WAL is fsynced
 * before commit() resolves and an acked entry survives power loss. 'process'
 * sets `synchronous = NORMAL`: the WAL is fsynced only at checkpoints, so a
 * commit survives a crash of this process but not of the machine. See
 * docs/store.md for the measured difference.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Entry } from '../protocol/index.js';
import { StoreConflictError } from './memory.js';
import { encodeCmid, entryFromRow, type EntryRow, jsonText, validateEntryOrder } from './rows.js';
import type { CommitBatch, ConvKind, ConvListing, ConvRecord, Membership, Store } from './types.js';

export type SqliteDurability = 'full' | 'process';

export interface SqliteStoreOptions {
  /** The database file (its directory is created if missing), or ':memory:'. */
  path: string;
  /** 'full' (default): fsync per commit, survives power loss. 'process': survives a process crash only. */
  durability?: SqliteDurability;
}

/** Bumped when the schema changes shape; a store refuses a file written by a newer schema. */
export const SQLITE_SCHEMA_VERSION = 1;

// STRICT tables: a value of the wrong type is an error, not a silent coercion.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID, STRICT;

CREATE TABLE IF NOT EXISTS convs (
  conv    TEXT PRIMARY KEY,
  kind    TEXT NOT NULL CHECK (kind IN ('dm', 'group')),
  last    INTEGER NOT NULL DEFAULT 0,
  last_ts INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID, STRICT;

-- A rowid table: bodies can be large, and appends stay cheap. (conv, seq) is the fence.
CREATE TABLE IF NOT EXISTS entries (
  conv      TEXT NOT NULL,
  seq       INTEGER NOT NULL,
  kind      TEXT NOT NULL,
  mid       TEXT NOT NULL,
  ts        INTEGER NOT NULL,
  from_user TEXT NOT NULL,
  dev       TEXT NOT NULL,
  cmid      TEXT,
  dseq      INTEGER,
  body      TEXT NOT NULL,
  ctx       TEXT,
  UNIQUE (conv, seq)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS entries_cmid ON entries (conv, from_user, dev, cmid) WHERE cmid IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_dseq ON entries (conv, from_user, dev, dseq) WHERE dseq IS NOT NULL;

CREATE TABLE IF NOT EXISTS memberships (
  conv     TEXT NOT NULL,
  member   TEXT NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq   INTEGER,
  PRIMARY KEY (conv, member, from_seq)
) WITHOUT ROWID, STRICT;
-- At most one open stretch per (conv, member): an add for a current member is refused.
CREATE UNIQUE INDEX IF NOT EXISTS memberships_open ON memberships (conv, member) WHERE to_seq IS NULL;
CREATE INDEX IF NOT EXISTS memberships_by_member ON memberships (member, conv, from_seq);
`;

const ENTRY_COLUMNS = 'conv, seq, kind, mid, ts, from_user, dev, cmid, dseq, body, ctx';

function prepareAll(db: Database.Database) {
  return {
    getConv: db.prepare<[string], { conv: string; kind: ConvKind; last: number; last_ts: number }>(
      'SELECT conv, kind, last, last_ts FROM convs WHERE conv = ?',
    ),
    getMemberships: db.prepare<[string], { conv: string; member: string; from_seq: number; to_seq: number | null }>(
      'SELECT conv, member, from_seq, to_seq FROM memberships WHERE conv = ? ORDER BY from_seq, member',
    ),
    findByCmid: db.prepare<[string, string, string, string], EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM entries WHERE conv = ? AND from_user = ? AND dev = ? AND cmid = ?`,
    ),
    lastDseq: db.prepare<[string, string, string], { d: number | null }>(
      'SELECT MAX(dseq) AS d FROM entries WHERE conv = ? AND from_user = ? AND dev = ? AND dseq IS NOT NULL',
    ),
    read: db.prepare<[string, number, number, number], EntryRow>(
      `SELECT ${ENTRY_COLUMNS} FROM entries WHERE conv = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
    ),
    listConvs: db.prepare<[{ user: string }], { conv: string; last: number; last_ts: number; from_seq: number; to_seq: number | null }>(
      `SELECT c.conv, c.last, c.last_ts, m.from_seq, m.to_seq
         FROM memberships m JOIN convs c ON c.conv = m.conv
        WHERE m.member = @user
          AND m.from_seq = (SELECT MAX(from_seq) FROM memberships l WHERE l.member = @user AND l.conv = m.conv)
        ORDER BY c.last_ts DESC, c.conv ASC`,
    ),
    getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    insertConv: db.prepare<[string, string]>('INSERT INTO convs (conv, kind) VALUES (?, ?)'),
    convLast: db.prepare<[string], { last: number; last_ts: number }>('SELECT last, last_ts FROM convs WHERE conv = ?'),
    setConvLast: db.prepare<[number, number, string]>('UPDATE convs SET last = ?, last_ts = ? WHERE conv = ?'),
    insertEntry: db.prepare<[string, number, string, string, number, string, string, string | null, number | null, string, string | null]>(
      `INSERT INTO entries (${ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    addMember: db.prepare<[string, string, number]>('INSERT INTO memberships (conv, member, from_seq, to_seq) VALUES (?, ?, ?, NULL)'),
    removeMember: db.prepare<[number, string, string]>('UPDATE memberships SET to_seq = ? WHERE conv = ? AND member = ? AND to_seq IS NULL'),
  };
}

type Statements = ReturnType<typeof prepareAll>;

class SqliteStore implements Store {
  private readonly db: Database.Database;
  private statements: Statements | undefined;
  private writeBatch: ((batch: CommitBatch) => void) | undefined;
  private closed = false;

  constructor(options: SqliteStoreOptions) {
    const durability = options.durability ?? 'full';
    if (durability !== 'full' && durability !== 'process') {
      throw new TypeError(`durability: expected "full" or "process", got ${String(durability)}`);
    }
    if (options.path !== ':memory:' && options.path !== '') mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
    // A second process on the same file waits for the write lock instead of failing at once.
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('temp_store = MEMORY');
  }

  async init(): Promise<void> {
    this.ready();
  }

  /** Creates the schema and prepares statements once; every method calls it, so init() is a formality. */
  private ready(): Statements {
    if (this.closed) throw new Error('the store is closed');
    if (this.statements) return this.statements;
    this.db.exec(SCHEMA);
    const stored = this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get('store.schema');
    if (stored && Number(stored.value) > SQLITE_SCHEMA_VERSION) {
      throw new Error(`the database has schema version ${stored.value}; this build understands up to ${SQLITE_SCHEMA_VERSION}`);
    }
    if (!stored) this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('store.schema', String(SQLITE_SCHEMA_VERSION));
    const s = prepareAll(this.db);
    this.statements = s;
    // `.immediate` takes the write lock at BEGIN, so a second writer waits rather than failing mid-transaction.
    const tx = this.db.transaction((batch: CommitBatch) => writeBatch(s, batch));
    this.writeBatch = (batch) => tx.immediate(batch);
    return s;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  async getConv(conv: string): Promise<ConvRecord | null> {
    const row = this.ready().getConv.get(conv);
    return row ? { conv: row.conv, kind: row.kind, last: row.last, lastTs: row.last_ts } : null;
  }

  async getMemberships(conv: string): Promise<Membership[]> {
    return this.ready()
      .getMemberships.all(conv)
      .map((r) => ({ conv: r.conv, user: r.member, fromSeq: r.from_seq, toSeq: r.to_seq }));
  }

  async findByCmid(conv: string, user: string, device: string, cmid: string): Promise<Entry | null> {
    const row = this.ready().findByCmid.get(conv, user, device, encodeCmid(cmid));
    return row ? entryFromRow(row) : null;
  }

  async lastDseq(conv: string, user: string, device: string): Promise<number> {
    return this.ready().lastDseq.get(conv, user, device)?.d ?? 0;
  }

  async commit(batch: CommitBatch): Promise<void> {
    this.ready();
    try {
      this.writeBatch!(batch);
    } catch (error) {
      if (isConstraintError(error)) throw new StoreConflictError(`commit refused: ${error.message}`, { cause: error });
      throw error;
    }
  }

  async read(conv: string, afterSeq: number, untilSeq: number, limit: number): Promise<Entry[]> {
    // SQLite reads a negative LIMIT as "no limit"; the contract says at most `limit`.
    if (limit <= 0 || untilSeq <= afterSeq) return [];
    return this.ready().read.all(conv, afterSeq, untilSeq, limit).map(entryFromRow);
  }

  async listConvs(user: string): Promise<ConvListing[]> {
    return this.ready()
      .listConvs.all({ user })
      .map((r) => ({ conv: r.conv, last: r.last, ts: r.last_ts, fromSeq: r.from_seq, toSeq: r.to_seq }));
  }

  async getMeta(key: string): Promise<string | null> {
    return this.ready().getMeta.get(key)?.value ?? null;
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.ready().setMeta.run(key, value);
  }
}

/** The body of the commit transaction; any throw rolls all of it back. */
function writeBatch(s: Statements, batch: CommitBatch): void {
  for (const { conv, kind } of batch.newConvs) s.insertConv.run(conv, kind);
  // The fence: each conversation's entries must continue its stored log without a gap.
  const heads = new Map<string, { last: number; ts: number; dirty: boolean }>();
  const head = (conv: string) => {
    let h = heads.get(conv);
    if (!h) {
      const row = s.convLast.get(conv);
      if (!row) throw new StoreConflictError(`conversation ${conv} does not exist`);
      h = { last: row.last, ts: row.last_ts, dirty: false };
      heads.set(conv, h);
    }
    return h;
  };
  for (const entry of batch.entries) {
    const h = head(entry.conv);
    validateEntryOrder(entry, h.last);
    s.insertEntry.run(
      entry.conv,
      entry.seq,
      entry.kind,
      entry.mid,
      entry.ts,
      entry.from,
      entry.dev,
      entry.cmid === undefined ? null : encodeCmid(entry.cmid),
      entry.dseq ?? null,
      jsonText(entry.body),
      entry.ctx === undefined ? null : jsonText(entry.ctx),
    );
    h.last = entry.seq;
    h.ts = entry.ts;
    h.dirty = true;
  }
  for (const change of batch.memberships) {
    head(change.conv);
    if (change.op === 'add') {
      s.addMember.run(change.conv, change.user, change.seq);
    } else if (s.removeMember.run(change.seq, change.conv, change.user).changes !== 1) {
      throw new StoreConflictError(`${change.conv}: ${change.user} is not a member`);
    }
  }
  for (const [conv, h] of heads) if (h.dirty) s.setConvLast.run(h.last, h.ts, conv);
}

function isConstraintError(error: unknown): error is Error {
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT');
}

/** Opens (creating if missing) a SQLite store. The file is opened now; init() creates the schema. */
export function openSqliteStore(options: SqliteStoreOptions): Store {
  return new SqliteStore(options);
}
