/**
 * The embedded SQLite Store (better-sqlite3): the default durable truth of a
 * single-node server. One file, WAL journal, one write transaction per group
 * commit, every statement prepared once.
 *
 * Durability: 'full' (default) sets `synchronous = FULL`, so the WAL is fsynced
 * before commit() resolves and an acked entry survives power loss. 'process'
 * sets `synchronous = NORMAL`: the WAL is fsynced only at checkpoints, so a
 * commit survives a crash of this process but not of the machine.
 *
 * Writes go through a writer thread by default (sqlite-writer.ts): the main
 * thread keeps serving while a commit's inserts and fsync run. Reads use this
 * thread's own connection; WAL gives each read the latest committed snapshot.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Entry } from 'sequent-client/protocol';
import { StoreConflictError } from './memory.js';
import { encodeCmid, entryFromRow, READ_COLUMNS, type EntryRow } from './rows.js';
import { ENTRY_JSON_SQL, ENTRY_SIZE_SQL } from './sqlite-json.js';
import { entryMeta, listConvs, listConvsSince, prepareConvReads, readPositions } from './sqlite-convs.js';
import { batchWriter, ensureSchema, openDatabase, removesContent, rowBatchOf, type RowBatch, type SqliteDurability } from './sqlite-schema.js';
import type { WriterInit, WriterReply, WriterRequest } from './sqlite-writer.js';
import type { CommitBatch, ConvKind, ConvListing, ConvRecord, ConvsQuery, ConvsSnapshot, ConvsState, EntryMeta, LaneRecord, Membership, ReadPosition, Store } from './types.js';

export { SQLITE_SCHEMA_VERSION, type SqliteDurability } from './sqlite-schema.js';

export interface SqliteStoreOptions {
  /** The database file (its directory is created if missing), or ':memory:'. */
  path: string;
  /** 'full' (default): fsync per commit, survives power loss. 'process': survives a process crash only. */
  durability?: SqliteDurability;
  /**
   * 'thread' (default for a file): commits run in a worker thread. 'inline': on the
   * calling thread (always so for ':memory:', which one connection cannot share).
   */
  writer?: 'thread' | 'inline';
}

function prepareReads(db: Database.Database) {
  return {
    getConv: db.prepare<[string], { conv: string; kind: ConvKind; last: number; last_ts: number }>(
      'SELECT conv, kind, last, last_ts FROM convs WHERE conv = ?',
    ),
    getMemberships: db.prepare<[string], { conv: string; member: string; from_seq: number; to_seq: number | null }>(
      'SELECT conv, member, from_seq, to_seq FROM memberships WHERE conv = ? ORDER BY from_seq, member',
    ),
    findByCmid: db.prepare<[string, string, string, string], EntryRow>(
      `SELECT ${READ_COLUMNS} FROM entries WHERE conv = ? AND from_user = ? AND dev = ? AND cmid = ?`,
    ),
    lane: db.prepare<[string, string, string], { last_dseq: number; min_cmid: string | null; max_cmid: string | null }>(
      'SELECT last_dseq, min_cmid, max_cmid FROM device_lanes WHERE conv = ? AND from_user = ? AND dev = ?',
    ),
    read: db.prepare<[string, number, number, number], EntryRow & { size: number }>(
      `SELECT ${READ_COLUMNS}, ${ENTRY_SIZE_SQL} AS size FROM entries WHERE conv = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
    ),
    // Raw rows [size, json]: two values per row cross into JavaScript instead of fourteen.
    readJson: db
      .prepare<[string, number, number, number], [number, string]>(
        `SELECT ${ENTRY_SIZE_SQL}, ${ENTRY_JSON_SQL} FROM entries WHERE conv = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
      )
      .raw(true),
    ...prepareConvReads(db),
    getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
  };
}

type Statements = ReturnType<typeof prepareReads>;

interface Writer {
  commit(batch: CommitBatch): Promise<void>;
  close(): Promise<void>;
}

class InlineWriter implements Writer {
  private readonly write: (batches: readonly RowBatch[]) => void;

  constructor(private readonly db: Database.Database) {
    this.write = batchWriter(db);
  }

  async commit(batch: CommitBatch): Promise<void> {
    const rows = rowBatchOf(batch);
    this.write([rows]);
    // As the writer thread does: a delete's old bodies leave the WAL at once.
    if (removesContent(rows)) this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  async close(): Promise<void> {}
}

/** The compiled writer script; from the TypeScript sources (tests) its built twin in dist. */
function writerScript(): URL | undefined {
  const here = new URL(import.meta.url);
  const script = here.pathname.endsWith('.ts') ? new URL('../../dist/src/store/sqlite-writer.js', here) : new URL('./sqlite-writer.js', here);
  return existsSync(fileURLToPath(script)) ? script : undefined;
}

class ThreadWriter implements Writer {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  /** The commits sent and not yet answered, for close() to wait on. */
  private readonly inFlight = new Set<Promise<void>>();
  private nextId = 1;
  private stopped: Error | undefined;

  constructor(script: URL, init: WriterInit) {
    this.worker = new Worker(script, { workerData: init });
    // The server's sockets keep the process alive; an idle writer must not.
    this.worker.unref();
    this.worker.on('message', (reply: WriterReply) => {
      for (const id of reply.ids) {
        const waiter = this.pending.get(id);
        if (!waiter) continue;
        this.pending.delete(id);
        if (!reply.error) waiter.resolve();
        else waiter.reject(reply.error.conflict ? new StoreConflictError(reply.error.message) : new Error(reply.error.message));
      }
      if (this.pending.size === 0) this.worker.unref();
    });
    this.worker.on('error', (error) => this.stop(error));
    this.worker.on('exit', (code) => this.stop(new Error(`the SQLite writer thread exited (${code})`)));
  }

  commit(batch: CommitBatch): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ id, batch: rowBatchOf(batch) } satisfies WriterRequest);
    });
    this.inFlight.add(done);
    void done.then(
      () => this.inFlight.delete(done),
      () => this.inFlight.delete(done),
    );
    return done;
  }

  async close(): Promise<void> {
    // Let commits already sent finish: their callers were promised durability.
    await Promise.allSettled([...this.inFlight]);
    this.stopped ??= new Error('the store is closed');
    await this.worker.terminate();
  }

  private stop(error: Error): void {
    this.stopped ??= error;
    for (const waiter of this.pending.values()) waiter.reject(this.stopped);
    this.pending.clear();
  }
}

class SqliteStore implements Store {
  /** The writer thread takes batches in order and commits those that queue up together; the inline writer commits each at once. */
  readonly pipelinesCommits = true;
  private readonly db: Database.Database;
  private statements: Statements | undefined;
  private writer: Writer | undefined;
  private closed = false;
  private readonly durability: SqliteDurability;

  constructor(private readonly options: SqliteStoreOptions) {
    const durability = options.durability ?? 'full';
    if (durability !== 'full' && durability !== 'process') {
      throw new TypeError(`durability: expected "full" or "process", got ${String(durability)}`);
    }
    if (options.writer !== undefined && options.writer !== 'thread' && options.writer !== 'inline') {
      throw new TypeError(`writer: expected "thread" or "inline", got ${String(options.writer)}`);
    }
    this.durability = durability;
    this.db = openDatabase(options.path, durability);
  }

  async init(): Promise<void> {
    this.ready();
  }

  /** Creates the schema and prepares statements once; every method calls it, so init() is a formality. */
  private ready(): Statements {
    if (this.closed) throw new Error('the store is closed');
    if (this.statements) return this.statements;
    ensureSchema(this.db);
    this.statements = prepareReads(this.db);
    const inMemory = this.options.path === ':memory:' || this.options.path === '';
    const script = inMemory || this.options.writer === 'inline' ? undefined : writerScript();
    this.writer = script ? new ThreadWriter(script, { path: this.options.path, durability: this.durability }) : new InlineWriter(this.db);
    return this.statements;
  }

  /** Which thread commits: 'thread' unless the file is in memory, 'inline' was asked for, or the writer script is missing. */
  get writerKind(): 'thread' | 'inline' {
    this.ready();
    return this.writer instanceof ThreadWriter ? 'thread' : 'inline';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writer?.close();
    this.db.close();
  }

  async getConv(conv: string): Promise<ConvRecord | null> {
    const row = this.ready().getConv.get(conv);
    return row ? { conv: row.conv, kind: row.kind, last: row.last, lastTs: row.last_ts } : null;
  }

  async recentConvs(sinceTs: number, limit: number): Promise<ConvRecord[]> {
    // Rare (a cluster takeover), so it scans rather than index a column every commit updates.
    this.ready();
    const rows = this.db.prepare<[number, number], { conv: string; kind: ConvKind; last: number; last_ts: number }>(
      'SELECT conv, kind, last, last_ts FROM convs WHERE last_ts >= ? AND last > 0 ORDER BY last_ts DESC LIMIT ?',
    ).all(sinceTs, limit);
    return rows.map((row) => ({ conv: row.conv, kind: row.kind, last: row.last, lastTs: row.last_ts }));
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

  async lane(conv: string, user: string, device: string): Promise<LaneRecord> {
    const row = this.ready().lane.get(conv, user, device);
    return row ? { lastDseq: row.last_dseq, minCmid: row.min_cmid, maxCmid: row.max_cmid } : { lastDseq: 0, minCmid: null, maxCmid: null };
  }

  async commit(batch: CommitBatch): Promise<void> {
    this.ready();
    return this.writer!.commit(batch);
  }

  async read(conv: string, afterSeq: number, untilSeq: number, limit: number, maxBytes = Infinity): Promise<Entry[]> {
    // SQLite reads a negative LIMIT as "no limit"; the contract says at most `limit`.
    if (limit <= 0 || untilSeq <= afterSeq) return [];
    return withinBytes(this.ready().read.iterate(conv, afterSeq, untilSeq, limit), maxBytes, (row) => row.size, entryFromRow);
  }

  async readJson(conv: string, afterSeq: number, untilSeq: number, limit: number, maxBytes = Infinity): Promise<string[]> {
    if (limit <= 0 || untilSeq <= afterSeq) return [];
    const rows = this.ready().readJson.iterate(conv, afterSeq, untilSeq, limit) as IterableIterator<[number, string]>;
    return withinBytes(rows, maxBytes, ([size]) => size, ([, json]) => json);
  }

  async listConvs(user: string, limit = Number.MAX_SAFE_INTEGER): Promise<ConvListing[]> {
    return listConvs(this.ready(), user, limit);
  }

  async listConvsSince(user: string, since: number, limit: number): Promise<ConvListing[]> {
    return listConvsSince(this.ready(), user, since, limit);
  }

  async convsState(user: string): Promise<ConvsState> {
    return this.ready().state(user);
  }

  async convsSnapshot(user: string, query: ConvsQuery): Promise<ConvsSnapshot> {
    return this.ready().snapshot(user, query);
  }

  async readPositions(conv: string): Promise<ReadPosition[]> {
    return readPositions(this.ready(), conv);
  }

  async entryMeta(conv: string, seq: number): Promise<EntryMeta | null> {
    return entryMeta(this.ready(), conv, seq);
  }

  async getMeta(key: string): Promise<string | null> {
    return this.ready().getMeta.get(key)?.value ?? null;
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.ready().setMeta.run(key, value);
  }
}

/**
 * A page of rows as `take` makes them, cut where their sizes pass maxBytes (always
 * at least one). Row by row, so that rows past the budget are never read into memory.
 */
function withinBytes<R, T>(rows: Iterable<R>, maxBytes: number, size: (row: R) => number, take: (row: R) => T): T[] {
  const page: T[] = [];
  let bytes = 0;
  for (const row of rows) {
    bytes += size(row);
    if (page.length > 0 && bytes > maxBytes) break;
    page.push(take(row));
  }
  return page;
}

/** Opens (creating if missing) a SQLite store. The file is opened now; init() creates the schema. */
export function openSqliteStore(options: SqliteStoreOptions): Store & { readonly writerKind: 'thread' | 'inline' } {
  return new SqliteStore(options);
}
