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
import { encodeCmid, ENTRY_COLUMNS, entryFromRow, entrySize, type EntryRow } from './rows.js';
import { batchWriter, ensureSchema, openDatabase, rowBatchOf, type RowBatch, type SqliteDurability } from './sqlite-schema.js';
import type { WriterInit, WriterReply, WriterRequest } from './sqlite-writer.js';
import type { CommitBatch, ConvKind, ConvListing, ConvRecord, LaneRecord, Membership, Store } from './types.js';

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

/** An entries row in raw mode: its values in ENTRY_COLUMNS order. */
type EntryValues = [string, number, string, string, number, string, string, string | null, number | null, string, string | null];

function entryRowOf(v: EntryValues): EntryRow {
  return { conv: v[0], seq: v[1], kind: v[2], mid: v[3], ts: v[4], from_user: v[5], dev: v[6], cmid: v[7], dseq: v[8], body: v[9], ctx: v[10] };
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
      `SELECT ${ENTRY_COLUMNS} FROM entries WHERE conv = ? AND from_user = ? AND dev = ? AND cmid = ?`,
    ),
    lane: db.prepare<[string, string, string], { last_dseq: number; min_cmid: string | null; max_cmid: string | null }>(
      'SELECT last_dseq, min_cmid, max_cmid FROM device_lanes WHERE conv = ? AND from_user = ? AND dev = ?',
    ),
    // Raw rows (arrays): better-sqlite3 builds a row object property by property, which cost a
    // sync read about 0.7 µs an entry more than the array and the object literal of entryRowOf.
    read: db
      .prepare<[string, number, number, number], EntryValues>(`SELECT ${ENTRY_COLUMNS} FROM entries WHERE conv = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`)
      .raw(true),
    // A removed member's row shows its removal entry's time (the entry is always there: it is committed with the removal).
    listConvs: db.prepare<[{ user: string; limit: number }], { conv: string; last: number; shown_ts: number; from_seq: number; to_seq: number | null }>(
      `SELECT c.conv, c.last, m.from_seq, m.to_seq,
              CASE WHEN m.to_seq IS NULL THEN c.last_ts
                   ELSE coalesce((SELECT e.ts FROM entries e WHERE e.conv = m.conv AND e.seq = m.to_seq), c.last_ts) END AS shown_ts
         FROM memberships m JOIN convs c ON c.conv = m.conv
        WHERE m.member = @user
          AND m.from_seq = (SELECT MAX(from_seq) FROM memberships l WHERE l.member = @user AND l.conv = m.conv)
        ORDER BY shown_ts DESC, c.conv ASC
        LIMIT @limit`,
    ),
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

  constructor(db: Database.Database) {
    this.write = batchWriter(db);
  }

  async commit(batch: CommitBatch): Promise<void> {
    this.write([rowBatchOf(batch)]);
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
    const page: Entry[] = [];
    let bytes = 0;
    // Row by row, so that rows past maxBytes are never read into memory.
    for (const values of this.ready().read.iterate(conv, afterSeq, untilSeq, limit)) {
      const row = entryRowOf(values);
      bytes += entrySize(row.body.length, row.ctx?.length ?? 0);
      if (page.length > 0 && bytes > maxBytes) break;
      page.push(entryFromRow(row));
    }
    return page;
  }

  async listConvs(user: string, limit = Number.MAX_SAFE_INTEGER): Promise<ConvListing[]> {
    return this.ready()
      .listConvs.all({ user, limit })
      .map((r) => ({ conv: r.conv, last: r.last, ts: r.shown_ts, fromSeq: r.from_seq, toSeq: r.to_seq }));
  }

  async getMeta(key: string): Promise<string | null> {
    return this.ready().getMeta.get(key)?.value ?? null;
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.ready().setMeta.run(key, value);
  }
}

/** Opens (creating if missing) a SQLite store. The file is opened now; init() creates the schema. */
export function openSqliteStore(options: SqliteStoreOptions): Store & { readonly writerKind: 'thread' | 'inline' } {
  return new SqliteStore(options);
}
