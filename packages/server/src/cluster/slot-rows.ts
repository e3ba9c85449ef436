/**
 * The lease rows' SQL. Every statement is one round trip on the database's clock,
 * and every change by a node is conditioned on that node's incarnation still
 * owning its membership row, so a superseded process changes nothing.
 *
 * - acquire: a slot free (holder ''), expired, or left by an earlier incarnation
 *   of the same node; epoch + 1. Rows locked right now (a commit in flight under
 *   the old epoch holds FOR KEY SHARE) are skipped and retried on the next tick
 *   rather than waited for.
 * - renew: expires_at only, while the epoch is still the one acquired.
 * - release: holder '' and expired, while the epoch is still the one acquired.
 */
import type pg from 'pg';
import type { ClusterTables } from './schema.js';

export interface SlotLease {
  slot: number;
  epoch: number;
}

export interface SlotRow {
  slot: number;
  holder: string;
  epoch: number;
  /** True while expires_at is in the future on the database's clock. */
  live: boolean;
}

export interface Incarnation {
  name: string;
  incarnation: string;
}

export class SlotRows {
  constructor(
    private readonly pool: pg.Pool,
    private readonly tables: ClusterTables,
  ) {}

  private owns(nameParam: number, incarnationParam: number): string {
    return `EXISTS (SELECT 1 FROM ${this.tables.nodes} WHERE name = $${nameParam} AND incarnation = $${incarnationParam})`;
  }

  async acquire(me: Incarnation, slots: readonly number[], leaseMs: number): Promise<SlotLease[]> {
    if (slots.length === 0) return [];
    const { rows } = await this.pool.query<{ slot: number; epoch: string }>(
      `WITH candidate AS (
         SELECT slot FROM ${this.tables.slots}
         WHERE slot = ANY($3::integer[]) AND (holder = '' OR holder = $1 OR expires_at <= now()) AND ${this.owns(1, 2)}
         ORDER BY slot
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${this.tables.slots} AS s
       SET holder = $1, epoch = s.epoch + 1, expires_at = now() + $4 * interval '1 millisecond'
       FROM candidate WHERE s.slot = candidate.slot
       RETURNING s.slot, s.epoch`,
      [me.name, me.incarnation, slots, leaseMs],
    );
    return rows.map((r) => ({ slot: r.slot, epoch: Number(r.epoch) })).sort((a, b) => a.slot - b.slot);
  }

  /** Renews the given leases; returns the slots renewed (a missing one was taken over or released). */
  async renew(me: Incarnation, leases: readonly SlotLease[], leaseMs: number): Promise<Set<number>> {
    if (leases.length === 0) return new Set();
    const { rows } = await this.pool.query<{ slot: number }>(
      `UPDATE ${this.tables.slots} AS s SET expires_at = now() + $5 * interval '1 millisecond'
       FROM unnest($3::integer[], $4::bigint[]) AS held(slot, epoch)
       WHERE s.slot = held.slot AND s.epoch = held.epoch AND s.holder = $1 AND ${this.owns(1, 2)}
       RETURNING s.slot`,
      [me.name, me.incarnation, leases.map((l) => l.slot), leases.map((l) => l.epoch), leaseMs],
    );
    return new Set(rows.map((r) => r.slot));
  }

  /** Frees the given leases at once (the next node to win them need not wait for expiry). */
  async release(me: Incarnation, leases: readonly SlotLease[]): Promise<void> {
    if (leases.length === 0) return;
    await this.pool.query(
      `UPDATE ${this.tables.slots} AS s SET holder = '', expires_at = '-infinity'
       FROM unnest($2::integer[], $3::bigint[]) AS held(slot, epoch)
       WHERE s.slot = held.slot AND s.epoch = held.epoch AND s.holder = $1`,
      [me.name, leases.map((l) => l.slot), leases.map((l) => l.epoch)],
    );
  }

  /** Every slot's row, by slot. */
  async all(): Promise<SlotRow[]> {
    const { rows } = await this.pool.query<{ slot: number; holder: string; epoch: string; live: boolean }>(
      `SELECT slot, holder, epoch, holder <> '' AND expires_at > now() AS live FROM ${this.tables.slots} ORDER BY slot`,
    );
    return rows.map((r) => ({ slot: r.slot, holder: r.holder, epoch: Number(r.epoch), live: r.live }));
  }

  async one(slot: number): Promise<SlotRow | undefined> {
    const { rows } = await this.pool.query<{ slot: number; holder: string; epoch: string; live: boolean }>(
      `SELECT slot, holder, epoch, holder <> '' AND expires_at > now() AS live FROM ${this.tables.slots} WHERE slot = $1`,
      [slot],
    );
    const r = rows[0];
    return r && { slot: r.slot, holder: r.holder, epoch: Number(r.epoch), live: r.live };
  }
}
