/** A cluster node's PostgreSQL handle: a pool with the cluster's session settings and the schema ensured. */
import pg from 'pg';
import { clusterPoolConfig } from './pg-session.js';
import { type ClusterTables, clusterTables, ensureClusterSchema } from './schema.js';
import { DEFAULT_SLOTS } from './slots.js';

export interface ClusterDbOptions {
  url: string;
  /** The lease; the session timeouts follow it (pg-session.ts). */
  leaseMs: number;
  /** A schema for the cluster tables (created if missing); default: the connection's search_path. */
  schema?: string;
  /** Slot count of a new cluster database; must match the stored one (default 1024). */
  slots?: number;
  maxConnections?: number;
}

export interface ClusterDb {
  readonly pool: pg.Pool;
  readonly tables: ClusterTables;
  readonly slots: number;
  readonly leaseMs: number;
  close(): Promise<void>;
}

export function checkLeaseMs(leaseMs: number): void {
  if (!Number.isSafeInteger(leaseMs) || leaseMs < 20) throw new RangeError(`the lease must be an integer of at least 20 ms, got ${leaseMs}`);
}

export async function openClusterDb(options: ClusterDbOptions): Promise<ClusterDb> {
  checkLeaseMs(options.leaseMs);
  const tables = clusterTables(options.schema);
  const pool = new pg.Pool(clusterPoolConfig({ url: options.url, leaseMs: options.leaseMs, maxConnections: options.maxConnections }));
  // An idle connection that dies (a restart, a cut) must not crash the process; the next query reports it.
  pool.on('error', () => {});
  try {
    const slots = await ensureClusterSchema(pool, tables, options.slots ?? DEFAULT_SLOTS);
    let closed: Promise<void> | undefined;
    return { pool, tables, slots, leaseMs: options.leaseMs, close: () => (closed ??= pool.end()) };
  } catch (error) {
    await pool.end();
    throw error;
  }
}
