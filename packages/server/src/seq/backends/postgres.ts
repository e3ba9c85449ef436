/**
 * The PostgreSQL sequence backend (pg). Tables are created if missing, under an
 * optional schema and a table-name prefix, so several deployments (or test runs)
 * can share one database.
 *
 * Fencing rides on row locks: every write is `UPDATE … WHERE section = $1 AND
 * epoch = $2`, and PostgreSQL re-checks that condition on the newest row version
 * after waiting for a concurrent writer, so a raise cannot slip in after a
 * takeover committed. Lease times come from the database server's clock
 * (clock_timestamp()), the one clock every holder shares.
 */
import pg from 'pg';
import { inTransaction } from '../../db/pg-transaction.js';
import { FencedError, LeaseHeldError, SeqClosedError, SeqOverflowError } from '../errors.js';
import { checkLeaseMs, checkName, type Lease, MAX_COUNTER, type MetaFence, type SeqBackend } from './types.js';

export interface PostgresSeqBackendOptions {
  /** A schema for the tables (created if missing); default: the connection's search_path. */
  schema?: string;
  /** Prefix of the two table names (default "seq_"). */
  tablePrefix?: string;
  /** Pool size (default 4). */
  maxConnections?: number;
}

interface SectionRow {
  section: string;
  holder: string;
  epoch: string;
  expires_at: string;
  max: string;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;
const NOW_MS = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;

function leaseOf(row: SectionRow): Lease {
  return { section: row.section, holder: row.holder, epoch: Number(row.epoch), expiresAt: Number(row.expires_at), max: Number(row.max) };
}

export async function openPostgresSeqBackend(url: string, options: PostgresSeqBackendOptions = {}): Promise<SeqBackend> {
  const prefix = options.tablePrefix ?? 'seq_';
  if (!IDENTIFIER.test(`${prefix}x`)) throw new RangeError(`tablePrefix must be lower-case letters, digits and underscores, got ${JSON.stringify(prefix)}`);
  if (options.schema !== undefined && !IDENTIFIER.test(options.schema)) {
    throw new RangeError(`schema must be lower-case letters, digits and underscores, got ${JSON.stringify(options.schema)}`);
  }
  const qualified = (name: string) => (options.schema === undefined ? `"${prefix}${name}"` : `"${options.schema}"."${prefix}${name}"`);
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 4 });
  // An idle connection that dies (server restart) must not crash the process; the next query reports it.
  pool.on('error', () => {});

  try {
    await inTransaction(pool, async (client) => {
      // Concurrent CREATE … IF NOT EXISTS can still collide in the catalog; serialize them.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`sequent.seq:${options.schema ?? ''}:${prefix}`]);
      if (options.schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"`);
      await client.query(`
        CREATE TABLE IF NOT EXISTS ${qualified('sections')} (
          section    text PRIMARY KEY,
          holder     text NOT NULL,
          epoch      bigint NOT NULL,
          expires_at bigint NOT NULL,
          max        bigint NOT NULL CHECK (max >= 0 AND max <= ${MAX_COUNTER})
        )`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${qualified('meta')} (key text PRIMARY KEY, value text NOT NULL)`);
    });
  } catch (err) {
    await pool.end();
    throw err;
  }
  return new PostgresSeqBackend(pool, qualified('sections'), qualified('meta'));
}

class PostgresSeqBackend implements SeqBackend {
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly sections: string,
    private readonly meta: string,
  ) {}

  private open(): void {
    if (this.closed) throw new SeqClosedError('the PostgreSQL sequence backend');
  }

  private async current(section: string): Promise<SectionRow | undefined> {
    const { rows } = await this.pool.query<SectionRow>(`SELECT section, holder, epoch, expires_at, max FROM ${this.sections} WHERE section = $1`, [section]);
    return rows[0];
  }

  async acquire(section: string, holder: string, leaseMs: number): Promise<Lease> {
    this.open();
    checkName('section', section);
    checkName('holder', holder);
    checkLeaseMs(leaseMs);
    await this.pool.query(`INSERT INTO ${this.sections} (section, holder, epoch, expires_at, max) VALUES ($1, '', 0, 0, 0) ON CONFLICT (section) DO NOTHING`, [section]);
    const { rows } = await this.pool.query<SectionRow>(
      `UPDATE ${this.sections} SET holder = $2, epoch = epoch + 1, expires_at = ${NOW_MS} + $3
       WHERE section = $1 AND (holder = $2 OR holder = '' OR expires_at <= ${NOW_MS})
       RETURNING section, holder, epoch, expires_at, max`,
      [section, holder, leaseMs],
    );
    const taken = rows[0];
    if (taken !== undefined) return leaseOf(taken);
    const row = await this.current(section);
    throw new LeaseHeldError(section, row?.holder ?? '', Number(row?.expires_at ?? 0));
  }

  async raise(section: string, epoch: number, newMax: number, leaseMs: number): Promise<void> {
    this.open();
    checkLeaseMs(leaseMs);
    if (!Number.isInteger(newMax) || newMax <= 0) throw new RangeError(`newMax must be a positive integer, got ${newMax}`);
    if (newMax > MAX_COUNTER) throw new SeqOverflowError(section);
    const { rowCount } = await this.pool.query(
      `UPDATE ${this.sections} SET max = $3, expires_at = ${NOW_MS} + $4 WHERE section = $1 AND epoch = $2 AND max < $3`,
      [section, epoch, newMax, leaseMs],
    );
    if (rowCount === 1) return;
    const row = await this.current(section);
    if (row === undefined || Number(row.epoch) !== epoch) throw new FencedError(section, epoch, row && Number(row.epoch));
    throw new RangeError(`section ${JSON.stringify(section)}: raise to ${newMax} is not above the persisted max ${row.max}`);
  }

  async renew(section: string, epoch: number, leaseMs: number): Promise<void> {
    this.open();
    checkLeaseMs(leaseMs);
    const { rowCount } = await this.pool.query(`UPDATE ${this.sections} SET expires_at = ${NOW_MS} + $3 WHERE section = $1 AND epoch = $2`, [
      section,
      epoch,
      leaseMs,
    ]);
    if (rowCount === 1) return;
    const row = await this.current(section);
    throw new FencedError(section, epoch, row && Number(row.epoch));
  }

  async release(section: string, epoch: number): Promise<void> {
    this.open();
    await this.pool.query(`UPDATE ${this.sections} SET holder = '', expires_at = 0 WHERE section = $1 AND epoch = $2`, [section, epoch]);
  }

  async read(section: string): Promise<Lease | undefined> {
    this.open();
    const row = await this.current(section);
    return row && leaseOf(row);
  }

  async getMeta(key: string): Promise<string | undefined> {
    this.open();
    const { rows } = await this.pool.query<{ value: string }>(`SELECT value FROM ${this.meta} WHERE key = $1`, [key]);
    return rows[0]?.value;
  }

  async setMeta(key: string, value: string, fence?: MetaFence): Promise<void> {
    this.open();
    checkName('meta key', key);
    const upsert = `INSERT INTO ${this.meta} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
    if (fence === undefined) {
      await this.pool.query(upsert, [key, value]);
      return;
    }
    await inTransaction(this.pool, async (client) => {
      // FOR SHARE holds off a takeover (an UPDATE of the row) until this write commits.
      const { rows } = await client.query<{ epoch: string }>(`SELECT epoch FROM ${this.sections} WHERE section = $1 FOR SHARE`, [fence.section]);
      const current = rows[0] && Number(rows[0].epoch);
      if (current !== fence.epoch) throw new FencedError(fence.section, fence.epoch, current);
      await client.query(upsert, [key, value]);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
