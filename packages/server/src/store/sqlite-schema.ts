/**
 * What the SQLite store's reading connection and its writer share: the schema,
 * the prepared statements, the pragmas, and the body of one group commit.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { retryWhileBusy } from '../db/sqlite-busy.js';
import { StoreConflictError } from './memory.js';
import { batchRows, ENTRY_COLUMNS, laneHighs, validateRowOrder, type EntryRowValues } from './rows.js';
import { ChatEffects, prepareChatWrites } from './sqlite-chat.js';
import type { CommitBatch } from './types.js';

export type SqliteDurability = 'full' | 'process';

/** Bumped when the schema changes shape; a store refuses a file written by a newer schema. */
export const SQLITE_SCHEMA_VERSION = 6;

/**
 * The log, clustered by conversation: a WITHOUT ROWID table keyed by (conv, seq), so a
 * sync page is one range of adjacent rows. A rowid table kept rows in arrival order across
 * conversations and found each row of a page through the (conv, seq) index and then a
 * second B-tree seek; the range read costs about half as much this way (docs/bench.md).
 * A large body spills to overflow pages, as it does in a rowid table.
 */
function entriesTable(name: string): string {
  return `CREATE TABLE IF NOT EXISTS ${name} (
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
  ref       INTEGER,
  edited    INTEGER,
  deleted   INTEGER,
  mcount    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (conv, seq)
) WITHOUT ROWID, STRICT;`;
}

/** Every column of an entries row, in the table's order: what the schema 6 rewrite copies. */
const ENTRIES_ALL_COLUMNS = 'conv, seq, kind, mid, ts, from_user, dev, cmid, dseq, body, ctx, ref, edited, deleted, mcount';

// Dedup: one entry per (conv, user, device, cmid). cmid leads: cmids that grow with time
// (as the SDK makes them) then all land at one end of the index, instead of at one point
// per device lane, and a group commit dirties a few index pages rather than one or more
// per lane. A lookup is still one seek on all four columns.
const ENTRIES_DEDUP_INDEX = 'CREATE UNIQUE INDEX IF NOT EXISTS entries_by_cmid ON entries (cmid, conv, from_user, dev) WHERE cmid IS NOT NULL;';

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
  last_ts INTEGER NOT NULL DEFAULT 0,
  msgs    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID, STRICT;

${entriesTable('entries')}
${ENTRIES_DEDUP_INDEX}

-- Each device's highest dseq per conversation, written once per group commit: cheaper than
-- an index over every entry's dseq, updated on every insert. min_cmid/max_cmid bound the
-- lane's printable-ASCII cmids: a new cmid outside them needs no dedup lookup.
CREATE TABLE IF NOT EXISTS device_lanes (
  conv      TEXT NOT NULL,
  from_user TEXT NOT NULL,
  dev       TEXT NOT NULL,
  last_dseq INTEGER NOT NULL,
  min_cmid  TEXT,
  max_cmid  TEXT,
  PRIMARY KEY (conv, from_user, dev)
) WITHOUT ROWID, STRICT;

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

-- Chat state, one row per (conversation, user who ever was a member): read positions and
-- the version at which the user's row of the list last changed.
CREATE TABLE IF NOT EXISTS member_state (
  conv     TEXT NOT NULL,
  member   TEXT NOT NULL,
  read     INTEGER NOT NULL,
  pub_read INTEGER NOT NULL,
  ver      INTEGER NOT NULL,
  active   INTEGER NOT NULL,
  PRIMARY KEY (conv, member)
) WITHOUT ROWID, STRICT;
CREATE INDEX IF NOT EXISTS member_state_by_ver ON member_state (member, ver);

-- The store-wide change counter: each commit takes the next value as its version.
CREATE TABLE IF NOT EXISTS counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID, STRICT;
INSERT OR IGNORE INTO counters (name, value) VALUES ('version', 0);
`;

/** Indexes on columns that schema 5 added: made after a migration has added the columns. */
const CHAT_INDEXES = `
-- The edits (and reactions, deletes) of one target: a delete removes its edits' bodies too.
CREATE INDEX IF NOT EXISTS entries_by_ref ON entries (conv, ref) WHERE ref IS NOT NULL;
-- Deleted messages: the unread count subtracts those in (read, last] without reading the rest.
CREATE INDEX IF NOT EXISTS entries_deleted ON entries (conv, seq) WHERE deleted IS NOT NULL AND kind = 'msg';
`;


function prepareWrites(db: Database.Database) {
  return {
    insertConv: db.prepare<[string, string]>('INSERT INTO convs (conv, kind) VALUES (?, ?)'),
    convLast: db.prepare<[string], { last: number; last_ts: number; msgs: number }>('SELECT last, last_ts, msgs FROM convs WHERE conv = ?'),
    setConvLast: db.prepare<[number, number, number, string]>('UPDATE convs SET last = ?, last_ts = ?, msgs = ? WHERE conv = ?'),
    insertEntry: db.prepare<[...EntryRowValues, number]>(`INSERT INTO entries (${ENTRY_COLUMNS}, mcount) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    ...prepareChatWrites(db),
    addMember: db.prepare<[string, string, number]>('INSERT INTO memberships (conv, member, from_seq, to_seq) VALUES (?, ?, ?, NULL)'),
    raiseLane: db.prepare<[string, string, string, number, string | null, string | null]>(
      `INSERT INTO device_lanes (conv, from_user, dev, last_dseq, min_cmid, max_cmid) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (conv, from_user, dev) DO UPDATE SET
         last_dseq = MAX(last_dseq, excluded.last_dseq),
         min_cmid = CASE WHEN min_cmid IS NULL OR excluded.min_cmid < min_cmid THEN coalesce(excluded.min_cmid, min_cmid) ELSE min_cmid END,
         max_cmid = CASE WHEN max_cmid IS NULL OR excluded.max_cmid > max_cmid THEN coalesce(excluded.max_cmid, max_cmid) ELSE max_cmid END`,
    ),
    removeMember: db.prepare<[number, string, string]>('UPDATE memberships SET to_seq = ? WHERE conv = ? AND member = ? AND to_seq IS NULL'),
  };
}

type WriteStatements = ReturnType<typeof prepareWrites>;

/** Opens the file with the settings every connection of the store uses. */
export function openDatabase(path: string, durability: SqliteDurability): Database.Database {
  if (path !== ':memory:' && path !== '') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: 5000 });
  retryWhileBusy(() => db.pragma('journal_mode = WAL'), 5000);
  db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
  // A second connection or process on the same file waits for the write lock instead of failing at once.
  db.pragma('busy_timeout = 5000');
  db.pragma('temp_store = MEMORY');
  // A deleted message's bytes are overwritten in the file, not only unlinked (docs/store.md).
  db.pragma('secure_delete = ON');
  return db;
}

/** Creates the schema (idempotent) and refuses a file written by a newer schema. */
export function ensureSchema(db: Database.Database): void {
  retryWhileBusy(() => db.exec(SCHEMA), 5000);
  const stored = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get('store.schema');
  if (stored && Number(stored.value) > SQLITE_SCHEMA_VERSION) {
    throw new Error(`the database has schema version ${stored.value}; this build understands up to ${SQLITE_SCHEMA_VERSION}`);
  }
  if (stored && Number(stored.value) === SQLITE_SCHEMA_VERSION) return;
  if (stored) migrate(db, Number(stored.value));
  db.exec(CHAT_INDEXES);
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(
    'store.schema',
    String(SQLITE_SCHEMA_VERSION),
  );
}

/** Brings a file of an older schema up to this one, in one transaction. */
function migrate(db: Database.Database, from: number): void {
  db.transaction(() => {
    if (from < 2) {
      // v1 found a device's last dseq through an index on every entry; v2 keeps it per lane.
      db.exec(`INSERT OR REPLACE INTO device_lanes (conv, from_user, dev, last_dseq)
                 SELECT conv, from_user, dev, MAX(dseq) FROM entries WHERE dseq IS NOT NULL GROUP BY conv, from_user, dev;
               DROP INDEX IF EXISTS entries_dseq;`);
    }
    // v2 led its cmid index with the lane; SCHEMA has just built the v3 one.
    if (from < 3) db.exec('DROP INDEX IF EXISTS entries_cmid');
    if (from < 4) {
      // v4 keeps each lane's range of printable-ASCII cmids (a table made by SCHEMA above has the columns already).
      const columns = db.prepare<[], { name: string }>('PRAGMA table_info(device_lanes)').all().map((c) => c.name);
      if (!columns.includes('min_cmid')) db.exec('ALTER TABLE device_lanes ADD COLUMN min_cmid TEXT; ALTER TABLE device_lanes ADD COLUMN max_cmid TEXT;');
      db.exec(`UPDATE device_lanes SET
                 min_cmid = (SELECT MIN(cmid) FROM entries e WHERE e.conv = device_lanes.conv AND e.from_user = device_lanes.from_user
                               AND e.dev = device_lanes.dev AND e.cmid NOT GLOB '*[^ -~]*'),
                 max_cmid = (SELECT MAX(cmid) FROM entries e WHERE e.conv = device_lanes.conv AND e.from_user = device_lanes.from_user
                               AND e.dev = device_lanes.dev AND e.cmid NOT GLOB '*[^ -~]*')`);
    }
    if (from < 5) migrateChatState(db);
    if (from < 6) clusterEntries(db);
  }).immediate();
}

/**
 * Schema 6 keeps the entries in a WITHOUT ROWID table keyed by (conv, seq): the
 * rows are copied over in key order and the old table dropped (its pages are
 * overwritten, secure_delete being on). Its indexes go with it and are made
 * again on the new table (the chat-state ones by ensureSchema after this).
 */
function clusterEntries(db: Database.Database): void {
  const table = db.prepare<[], { sql: string }>("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'entries'").get();
  if (table && /WITHOUT\s+ROWID/i.test(table.sql)) return;
  db.exec(`${entriesTable('entries_v6')}
           INSERT INTO entries_v6 (${ENTRIES_ALL_COLUMNS}) SELECT ${ENTRIES_ALL_COLUMNS} FROM entries ORDER BY conv, seq;
           DROP TABLE entries;
           ALTER TABLE entries_v6 RENAME TO entries;
           ${ENTRIES_DEDUP_INDEX}`);
}

/**
 * Schema 5 adds the chat state. Entries get their prefix count of `msg` entries;
 * every member's latest stretch gets a read position at its last readable seq:
 * what was stored before the upgrade counts as read, so an upgrade does not
 * greet every user with their whole history unread.
 */
function migrateChatState(db: Database.Database): void {
  const has = (table: string, column: string) =>
    db.prepare<[], { name: string }>(`PRAGMA table_info(${table})`).all().some((c) => c.name === column);
  if (!has('convs', 'msgs')) db.exec('ALTER TABLE convs ADD COLUMN msgs INTEGER NOT NULL DEFAULT 0');
  for (const column of ['ref', 'edited', 'deleted']) if (!has('entries', column)) db.exec(`ALTER TABLE entries ADD COLUMN ${column} INTEGER`);
  if (!has('entries', 'mcount')) db.exec('ALTER TABLE entries ADD COLUMN mcount INTEGER NOT NULL DEFAULT 0');
  db.exec(`UPDATE entries SET mcount = p.m
             FROM (SELECT rowid AS r, sum(kind = 'msg') OVER (PARTITION BY conv ORDER BY seq) AS m FROM entries) p
            WHERE p.r = entries.rowid;
           UPDATE convs SET msgs = (SELECT count(*) FROM entries e WHERE e.conv = convs.conv AND e.kind = 'msg');
           UPDATE counters SET value = 1 WHERE name = 'version' AND value < 1;
           INSERT OR IGNORE INTO member_state (conv, member, read, pub_read, ver, active)
             SELECT m.conv, m.member, coalesce(m.to_seq, c.last), coalesce(m.to_seq, c.last), 1, m.to_seq IS NULL
               FROM memberships m JOIN convs c ON c.conv = m.conv
              WHERE m.from_seq = (SELECT MAX(from_seq) FROM memberships l WHERE l.conv = m.conv AND l.member = m.member);`);
}

/**
 * A group commit as the writer takes it: entries already turned into row values
 * (bodies as JSON text), so that it crosses to the writer thread as a structured
 * clone of flat arrays and the writer serializes nothing.
 */
export interface RowBatch {
  newConvs: CommitBatch['newConvs'];
  rows: EntryRowValues[];
  memberships: CommitBatch['memberships'];
  reads: NonNullable<CommitBatch['reads']>;
}

export function rowBatchOf(batch: CommitBatch): RowBatch {
  return { newConvs: batch.newConvs, rows: batchRows(batch), memberships: batch.memberships, reads: batch.reads ?? [] };
}

/** Whether a batch removes content: the writer then scrubs the WAL at its next checkpoint. */
export function removesContent(batch: RowBatch): boolean {
  return batch.rows.some((row) => row[2] === 'delete');
}

/**
 * Group commit as a function: the batches given, in order, in one transaction
 * (`BEGIN IMMEDIATE`, so a second writer waits rather than failing midway). If
 * any of them breaks a rule of the log — SQLite's own constraints included — it
 * throws StoreConflictError, having written none of them.
 */
export function batchWriter(db: Database.Database): (batches: readonly RowBatch[]) => void {
  const s = prepareWrites(db);
  const tx = db.transaction((batches: readonly RowBatch[]) => {
    for (const batch of batches) writeBatch(s, batch);
  });
  return (batches) => {
    try {
      tx.immediate(batches);
    } catch (error) {
      if (isConstraintError(error)) throw new StoreConflictError(`commit refused: ${error.message}`, { cause: error });
      throw error;
    }
  };
}

/** The body of the commit transaction; any throw rolls all of it back. */
function writeBatch(s: WriteStatements, batch: RowBatch): void {
  for (const { conv, kind } of batch.newConvs) s.insertConv.run(conv, kind);
  // The fence: each conversation's entries must continue its stored log without a gap.
  const heads = new Map<string, { last: number; ts: number; msgs: number; dirty: boolean }>();
  const head = (conv: string) => {
    let h = heads.get(conv);
    if (!h) {
      const row = s.convLast.get(conv);
      if (!row) throw new StoreConflictError(`conversation ${conv} does not exist`);
      h = { last: row.last, ts: row.last_ts, msgs: row.msgs, dirty: false };
      heads.set(conv, h);
    }
    return h;
  };
  const chat = new ChatEffects(s, s.nextVersion.get()!.value);
  for (const row of batch.rows) {
    const h = head(row[0]);
    validateRowOrder(row, h.last);
    if (row[2] === 'msg') h.msgs++;
    s.insertEntry.run(...row, h.msgs);
    chat.entry(row);
    h.last = row[1];
    h.ts = row[4];
    h.dirty = true;
  }
  for (const lane of laneHighs(batch.rows)) s.raiseLane.run(...lane);
  for (const change of batch.memberships) {
    head(change.conv);
    if (change.op === 'add') {
      s.addMember.run(change.conv, change.user, change.seq);
    } else if (s.removeMember.run(change.seq, change.conv, change.user).changes !== 1) {
      throw new StoreConflictError(`${change.conv}: ${change.user} is not a member`);
    }
    chat.membership(change);
  }
  for (const move of batch.reads) head(move.conv);
  chat.finish(batch.reads);
  for (const [conv, h] of heads) if (h.dirty) s.setConvLast.run(h.last, h.ts, h.msgs, conv);
}

function isConstraintError(error: unknown): error is Error {
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('SQLITE_CONSTRAINT');
}

