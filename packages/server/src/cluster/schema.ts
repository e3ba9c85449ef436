/**
 * The cluster's tables, created by the nodes themselves. Several nodes may start
 * at the same moment on an empty database: concurrent CREATE … IF NOT EXISTS can
 * still collide in the catalog, so creation runs in one transaction under an
 * advisory lock, which also makes the slot-count check and the creation of the
 * slot rows atomic.
 *
 * - `cluster_meta`: the slot count S and the schema version, fixed at creation
 *   and checked at every start (a node configured with another S would hash
 *   conversations to other slots and break ownership);
 * - `cluster_nodes`: one row per node name, heartbeat on the database's clock,
 *   and the incarnation (one per process) that wrote it last;
 * - `cluster_slots`: one lease row per slot, created for every slot up front.
 *   UNIQUE (slot, epoch) makes `epoch` a key column: an acquisition (epoch + 1)
 *   then conflicts with the fence's FOR KEY SHARE lock and waits for commits in
 *   flight under the old epoch, while a renewal (expires_at only) does not.
 * - `sequent_cluster_fence(slot, epoch)`: the commit-time check (its SQL: db/pg-fence.ts).
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { fenceFunctionName, fenceFunctionSql } from '../db/pg-fence.js';
import { inTransaction } from '../db/pg-transaction.js';
import { checkSlotCount } from './slots.js';

export const SCHEMA_VERSION = 1;
/** SQLSTATE raised by the fence function (db/pg-fence.ts). */
export { FENCED_SQLSTATE } from '../db/pg-fence.js';

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

export interface ClusterTables {
  schema: string | undefined;
  meta: string;
  nodes: string;
  slots: string;
  fence: string;
}

export function clusterTables(schema?: string): ClusterTables {
  if (schema !== undefined && !IDENTIFIER.test(schema)) {
    throw new RangeError(`schema must be lower-case letters, digits and underscores, got ${JSON.stringify(schema)}`);
  }
  const q = (name: string) => (schema === undefined ? `"${name}"` : `"${schema}"."${name}"`);
  return { schema, meta: q('cluster_meta'), nodes: q('cluster_nodes'), slots: q('cluster_slots'), fence: fenceFunctionName(schema) };
}

export class SlotCountMismatchError extends Error {
  constructor(
    readonly stored: number,
    readonly configured: number,
  ) {
    super(`this cluster database has ${stored} slots, but the node was configured with ${configured}; every node must use the stored count`);
    this.name = 'SlotCountMismatchError';
  }
}

export class SchemaVersionError extends Error {
  constructor(readonly stored: number) {
    super(`the cluster tables are at schema version ${stored}, newer than this node knows (${SCHEMA_VERSION}); upgrade the node`);
    this.name = 'SchemaVersionError';
  }
}

/**
 * Creates the tables if missing, stores S on first start and checks it on every
 * later one (SlotCountMismatchError). Returns the slot count in force.
 */
export async function ensureClusterSchema(pool: pg.Pool, tables: ClusterTables, slots: number): Promise<number> {
  checkSlotCount(slots);
  return inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`sequent.cluster:${tables.schema ?? ''}`]);
    if (tables.schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS "${tables.schema}"`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${tables.meta} (key text PRIMARY KEY, value text NOT NULL)`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${tables.nodes} (
        name         text PRIMARY KEY,
        incarnation  text NOT NULL,
        started_at   timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now()
      )`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${tables.slots} (
        slot       integer PRIMARY KEY CHECK (slot >= 0),
        holder     text NOT NULL DEFAULT '',
        epoch      bigint NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT '-infinity',
        UNIQUE (slot, epoch)
      )`);
    const stored = await readMeta(client, tables, 'schema_version');
    if (stored !== undefined && Number(stored) > SCHEMA_VERSION) throw new SchemaVersionError(Number(stored));
    await client.query(`INSERT INTO ${tables.meta} (key, value) VALUES ('schema_version', $1) ON CONFLICT (key) DO NOTHING`, [String(SCHEMA_VERSION)]);

    const storedSlots = await readMeta(client, tables, 'slots');
    if (storedSlots !== undefined && Number(storedSlots) !== slots) throw new SlotCountMismatchError(Number(storedSlots), slots);
    if (storedSlots === undefined) {
      await client.query(`INSERT INTO ${tables.meta} (key, value) VALUES ('slots', $1)`, [String(slots)]);
      await client.query(`INSERT INTO ${tables.slots} (slot) SELECT generate_series(0, $1::int - 1) ON CONFLICT (slot) DO NOTHING`, [slots]);
    }
    // Replaced only when it changed: a node starting must not lock the function running nodes' commits call.
    const fenceSql = fenceFunctionSql(tables.fence, tables.slots);
    const fingerprint = createHash('sha256').update(fenceSql).digest('hex').slice(0, 32);
    if ((await readMeta(client, tables, 'fence_sql')) !== fingerprint) {
      await client.query(fenceSql);
      await client.query(`INSERT INTO ${tables.meta} (key, value) VALUES ('fence_sql', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, [fingerprint]);
    }
    return slots;
  });
}

/** The slot count stored in the database, if the cluster tables exist. */
export async function storedSlotCount(pool: pg.Pool, tables: ClusterTables): Promise<number | undefined> {
  const { rows } = await pool.query<{ exists: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS exists`, [tables.meta]);
  if (rows[0]?.exists !== true) return undefined;
  const value = await readMeta(pool, tables, 'slots');
  return value === undefined ? undefined : Number(value);
}

async function readMeta(client: pg.ClientBase | pg.Pool, tables: ClusterTables, key: string): Promise<string | undefined> {
  const { rows } = await client.query<{ value: string }>(`SELECT value FROM ${tables.meta} WHERE key = $1`, [key]);
  return rows[0]?.value;
}
