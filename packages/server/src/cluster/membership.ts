/**
 * Who is in the cluster: each node heartbeats its row in `cluster_nodes` with the
 * database's clock, and a node is live while its heartbeat is younger than the
 * lease. Nobody's local clock enters the decision.
 *
 * Every process joins with a fresh incarnation. A node restarted under its own
 * name overwrites the row at once (it does not wait for its predecessor's
 * heartbeat to age), and a predecessor that was only paused finds on its next
 * heartbeat that the row is no longer its own: it is superseded and must stop.
 * Lease acquisitions and renewals check the incarnation in the same statement
 * (slot-rows.ts), so a superseded process cannot take or keep a slot either.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { ClusterTables } from './schema.js';

export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export function checkNodeName(name: string): void {
  if (!NODE_NAME.test(name)) throw new RangeError(`a node name is 1 to 100 letters, digits, '_', '.' or '-' (not first), got ${JSON.stringify(name)}`);
}

export interface Heartbeat {
  /** False when another process has since joined under this node's name. */
  own: boolean;
  /** Live node names, sorted; includes this node when `own`. */
  live: string[];
}

export interface NodeRow {
  name: string;
  incarnation: string;
  live: boolean;
  /** Milliseconds since the heartbeat, on the database's clock. */
  ageMs: number;
}

export class Membership {
  readonly incarnation: string;

  constructor(
    private readonly pool: pg.Pool,
    private readonly tables: ClusterTables,
    readonly name: string,
    private readonly leaseMs: number,
    incarnation?: string,
  ) {
    checkNodeName(name);
    this.incarnation = incarnation ?? randomBytes(8).toString('hex');
  }

  /** Takes the node's row for this incarnation, whoever had it, and heartbeats. */
  async join(): Promise<Heartbeat> {
    await this.pool.query(
      `INSERT INTO ${this.tables.nodes} (name, incarnation) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET incarnation = excluded.incarnation, started_at = now(), heartbeat_at = now()`,
      [this.name, this.incarnation],
    );
    return this.heartbeat();
  }

  /** Refreshes this incarnation's heartbeat and reads the live nodes, in one round trip. */
  async heartbeat(): Promise<Heartbeat> {
    const { rows } = await this.pool.query<{ own: boolean; live: string[] }>(
      `WITH beat AS (
         UPDATE ${this.tables.nodes} SET heartbeat_at = now() WHERE name = $1 AND incarnation = $2 RETURNING name
       )
       SELECT EXISTS (SELECT 1 FROM beat) AS own,
              array(SELECT name FROM ${this.tables.nodes} WHERE heartbeat_at > now() - $3 * interval '1 millisecond' ORDER BY name) AS live`,
      [this.name, this.incarnation, this.leaseMs],
    );
    const row = rows[0]!;
    // The statement's snapshot predates its own update: add this node when the beat landed.
    const live = row.live.filter((n) => n !== this.name);
    if (row.own) live.push(this.name);
    return { own: row.own, live: live.sort() };
  }

  /** Leaves at once (others stop counting this node without waiting for the lease), if this incarnation still owns the row. */
  async leave(): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.tables.nodes} WHERE name = $1 AND incarnation = $2`, [this.name, this.incarnation]);
  }

  /** Every node row, for status pages and tests. */
  async nodes(): Promise<NodeRow[]> {
    const { rows } = await this.pool.query<{ name: string; incarnation: string; live: boolean; age_ms: string }>(
      `SELECT name, incarnation, heartbeat_at > now() - $1 * interval '1 millisecond' AS live,
              (extract(epoch FROM now() - heartbeat_at) * 1000)::bigint AS age_ms
       FROM ${this.tables.nodes} ORDER BY name`,
      [this.leaseMs],
    );
    return rows.map((r) => ({ name: r.name, incarnation: r.incarnation, live: r.live, ageMs: Number(r.age_ms) }));
  }
}
