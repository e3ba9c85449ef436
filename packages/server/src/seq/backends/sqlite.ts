/**
 * The embedded SQLite sequence backend (better-sqlite3). One file can be shared
 * by several processes on one machine: WAL journal, a busy timeout so a writer
 * waits for another instead of failing, and every check-and-write (lease check,
 * epoch bump, raise) inside one IMMEDIATE transaction, so the check and the
 * write cannot be split by another process's write.
 *
 * `synchronous = FULL`: the WAL is fsynced before a transaction returns, so a
 * raised max survives power loss, not only a crash of this process.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { FencedError, LeaseHeldError, SeqClosedError, SeqOverflowError } from '../errors.js';
import { retryWhileBusy } from '../../db/sqlite-busy.js';
import { checkLeaseMs, checkName, type Lease, MAX_COUNTER, type MetaFence, type SeqBackend } from './types.js';

export interface SqliteSeqBackendOptions {
  /** Prefix of the two table names (default "seq_"), so the tables can live in a file shared with other data. */
  tablePrefix?: string;
  /** How long a write waits for another process's write transaction, in ms (default 5000). */
  busyTimeoutMs?: number;
  /** The wall clock for lease expiry (default Date.now); every process sharing the file must agree on it. */
  now?: () => number;
}

interface SectionRow {
  section: string;
  holder: string;
  epoch: number;
  expires_at: number;
  max: number;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function openSqliteSeqBackend(path: string, options: SqliteSeqBackendOptions = {}): SeqBackend {
  const prefix = options.tablePrefix ?? 'seq_';
  if (!IDENTIFIER.test(`${prefix}x`)) throw new RangeError(`tablePrefix must be letters, digits and underscores, got ${JSON.stringify(prefix)}`);
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) throw new RangeError(`busyTimeoutMs must be a non-negative integer`);
  const now = options.now ?? Date.now;

  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: busyTimeoutMs });
  try {
    retryWhileBusy(() => db.pragma('journal_mode = WAL'), busyTimeoutMs);
    db.pragma('synchronous = FULL');
    retryWhileBusy(() => db.exec(`
      CREATE TABLE IF NOT EXISTS ${prefix}sections (
        section    TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        epoch      INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        max        INTEGER NOT NULL
      ) WITHOUT ROWID, STRICT;
      CREATE TABLE IF NOT EXISTS ${prefix}meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID, STRICT;
    `), busyTimeoutMs);
  } catch (err) {
    db.close();
    throw err;
  }
  return new SqliteSeqBackend(db, prefix, now);
}

class SqliteSeqBackend implements SeqBackend {
  private closed = false;
  private readonly selectSection: Database.Statement<[string], SectionRow>;
  private readonly insertSection: Database.Statement<[string, string, number, number]>;
  private readonly takeSection: Database.Statement<[string, number, string]>;
  private readonly raiseSection: Database.Statement<[number, number, string]>;
  private readonly renewSection: Database.Statement<[number, string, number]>;
  private readonly releaseSection: Database.Statement<[string, number]>;
  private readonly selectMeta: Database.Statement<[string], { value: string }>;
  private readonly upsertMeta: Database.Statement<[string, string]>;

  private readonly acquireTx: (section: string, holder: string, leaseMs: number) => Lease;
  private readonly raiseTx: (section: string, epoch: number, newMax: number, leaseMs: number) => void;
  private readonly renewTx: (section: string, epoch: number, leaseMs: number) => void;
  private readonly setMetaTx: (key: string, value: string, fence: MetaFence | undefined) => void;

  constructor(
    private readonly db: Database.Database,
    prefix: string,
    private readonly now: () => number,
  ) {
    const sections = `${prefix}sections`;
    this.selectSection = db.prepare(`SELECT section, holder, epoch, expires_at, max FROM ${sections} WHERE section = ?`);
    this.insertSection = db.prepare(`INSERT INTO ${sections} (section, holder, epoch, expires_at, max) VALUES (?, ?, ?, ?, 0)`);
    this.takeSection = db.prepare(`UPDATE ${sections} SET holder = ?, epoch = epoch + 1, expires_at = ? WHERE section = ?`);
    this.raiseSection = db.prepare(`UPDATE ${sections} SET max = ?, expires_at = ? WHERE section = ?`);
    this.renewSection = db.prepare(`UPDATE ${sections} SET expires_at = ? WHERE section = ? AND epoch = ?`);
    this.releaseSection = db.prepare(`UPDATE ${sections} SET holder = '', expires_at = 0 WHERE section = ? AND epoch = ?`);
    this.selectMeta = db.prepare(`SELECT value FROM ${prefix}meta WHERE key = ?`);
    this.upsertMeta = db.prepare(`INSERT INTO ${prefix}meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`);

    const acquire = db.transaction((section: string, holder: string, leaseMs: number): Lease => {
      const at = this.now();
      const row = this.selectSection.get(section);
      if (row === undefined) {
        this.insertSection.run(section, holder, 1, at + leaseMs);
        return { section, holder, epoch: 1, expiresAt: at + leaseMs, max: 0 };
      }
      // holder '' is a released lease: free whatever its expiry says.
      if (row.holder !== holder && row.holder !== '' && row.expires_at > at) throw new LeaseHeldError(section, row.holder, row.expires_at);
      this.takeSection.run(holder, at + leaseMs, section);
      return { section, holder, epoch: row.epoch + 1, expiresAt: at + leaseMs, max: row.max };
    });
    this.acquireTx = (section, holder, leaseMs) => acquire.immediate(section, holder, leaseMs);

    const raise = db.transaction((section: string, epoch: number, newMax: number, leaseMs: number) => {
      const row = this.fencedRow(section, epoch);
      if (newMax <= row.max) throw new RangeError(`section ${JSON.stringify(section)}: raise to ${newMax} is not above the persisted max ${row.max}`);
      this.raiseSection.run(newMax, this.now() + leaseMs, section);
    });
    this.raiseTx = (section, epoch, newMax, leaseMs) => raise.immediate(section, epoch, newMax, leaseMs);

    const renew = db.transaction((section: string, epoch: number, leaseMs: number) => {
      this.fencedRow(section, epoch);
      this.renewSection.run(this.now() + leaseMs, section, epoch);
    });
    this.renewTx = (section, epoch, leaseMs) => renew.immediate(section, epoch, leaseMs);

    const setMeta = db.transaction((key: string, value: string, fence: MetaFence | undefined) => {
      if (fence !== undefined) this.fencedRow(fence.section, fence.epoch);
      this.upsertMeta.run(key, value);
    });
    this.setMetaTx = (key, value, fence) => setMeta.immediate(key, value, fence);
  }

  /** The section's row, if `epoch` is still its epoch; runs inside the caller's transaction. */
  private fencedRow(section: string, epoch: number): SectionRow {
    const row = this.selectSection.get(section);
    if (row === undefined || row.epoch !== epoch) throw new FencedError(section, epoch, row?.epoch);
    return row;
  }

  private open(): void {
    if (this.closed) throw new SeqClosedError('the SQLite sequence backend');
  }

  async acquire(section: string, holder: string, leaseMs: number): Promise<Lease> {
    this.open();
    checkName('section', section);
    checkName('holder', holder);
    checkLeaseMs(leaseMs);
    return this.acquireTx(section, holder, leaseMs);
  }

  async raise(section: string, epoch: number, newMax: number, leaseMs: number): Promise<void> {
    this.open();
    checkLeaseMs(leaseMs);
    if (!Number.isInteger(newMax) || newMax <= 0) throw new RangeError(`newMax must be a positive integer, got ${newMax}`);
    if (newMax > MAX_COUNTER) throw new SeqOverflowError(section);
    this.raiseTx(section, epoch, newMax, leaseMs);
  }

  async renew(section: string, epoch: number, leaseMs: number): Promise<void> {
    this.open();
    checkLeaseMs(leaseMs);
    this.renewTx(section, epoch, leaseMs);
  }

  async release(section: string, epoch: number): Promise<void> {
    this.open();
    this.releaseSection.run(section, epoch);
  }

  async read(section: string): Promise<Lease | undefined> {
    this.open();
    const row = this.selectSection.get(section);
    return row && { section: row.section, holder: row.holder, epoch: row.epoch, expiresAt: row.expires_at, max: row.max };
  }

  async getMeta(key: string): Promise<string | undefined> {
    this.open();
    return this.selectMeta.get(key)?.value;
  }

  async setMeta(key: string, value: string, fence?: MetaFence): Promise<void> {
    this.open();
    checkName('meta key', key);
    this.setMetaTx(key, value, fence);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
