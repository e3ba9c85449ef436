/**
 * The commit-time fence as SQL, in one place for everything that commits under a
 * slot lease: the cluster's fencedTransaction (cluster/fence.ts) and the
 * PostgreSQL store's fenced commit (store/postgres.ts). The function itself is
 * created with the cluster tables (cluster/schema.ts); this module neither
 * creates tables nor knows the cluster's other modules, so the store can use it
 * without depending on the cluster layer.
 *
 * `fence(slot, epoch)` passes only while the slot's lease row has that epoch and
 * a holder, and then holds the row FOR KEY SHARE until the transaction ends: a
 * takeover (epoch + 1 changes a key column, UNIQUE (slot, epoch)) waits for the
 * commit in flight; a renewal (expires_at only) does not.
 */

/** SQLSTATE raised by the fence function. */
export const FENCED_SQLSTATE = 'SQF01';

/** The lease a commit is made under: a slot and the epoch its holder acquired it at. */
export interface SlotLeaseRef {
  slot: number;
  epoch: number;
}

/** The commit was refused because `slot` is no longer held at `epoch`; nothing of it was stored. */
export class SlotFencedError extends Error {
  constructor(
    readonly slot: number,
    readonly epoch: number,
  ) {
    super(`slot ${slot} is no longer held at epoch ${epoch}`);
    this.name = 'SlotFencedError';
  }
}

/** The fence function's qualified name in `schema` (undefined: the connection's search_path). */
export function fenceFunctionName(schema?: string): string {
  return schema === undefined ? '"sequent_cluster_fence"' : `"${schema}"."sequent_cluster_fence"`;
}

/** CREATE OR REPLACE of the fence function over the lease table `slotsTable` (both names already quoted). */
export function fenceFunctionSql(fn: string, slotsTable: string): string {
  return `
      CREATE OR REPLACE FUNCTION ${fn}(p_slot integer, p_epoch bigint) RETURNS void
      LANGUAGE plpgsql AS $fence$
      BEGIN
        -- FOR KEY SHARE: a takeover (a key update of this row) waits until this transaction ends;
        -- a renewal does not. A released row (holder '') refuses too.
        PERFORM 1 FROM ${slotsTable} WHERE slot = p_slot AND epoch = p_epoch AND holder <> '' FOR KEY SHARE;
        IF NOT FOUND THEN
          -- DETAIL names the refused lease, so one statement may check several.
          RAISE EXCEPTION 'slot % is no longer held at epoch %', p_slot, p_epoch
            USING ERRCODE = '${FENCED_SQLSTATE}', DETAIL = p_slot || ' ' || p_epoch;
        END IF;
      END
      $fence$`;
}

/** The fence of one lease as a statement: parameters $slot (integer) and $epoch (bigint) at the given positions. */
export function fenceSql(fn: string, slotParam = 1, epochParam = 2): string {
  return `SELECT ${fn}($${slotParam}::integer, $${epochParam}::bigint)`;
}

/** The fence of several leases in one statement: $1 integer[] of slots, $2 bigint[] of epochs, index-aligned. */
export function fenceManySql(fn: string): string {
  return `SELECT ${fn}(f.slot, f.epoch) FROM unnest($1::integer[], $2::bigint[]) AS f(slot, epoch)`;
}

/** True when a database error is the fence refusing. */
export function isFenceRefusal(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === FENCED_SQLSTATE;
}

/**
 * The lease a refusal names: its DETAIL, or else its message (a function created
 * before DETAIL was added, by an older node of a rolling upgrade); undefined when
 * neither names one.
 */
export function refusedLease(error: unknown): SlotLeaseRef | undefined {
  const { detail, message } = error as { detail?: unknown; message?: unknown };
  const match =
    (typeof detail === 'string' ? /^(\d+) (\d+)$/.exec(detail) : null) ??
    (typeof message === 'string' ? /^slot (\d+) is no longer held at epoch (\d+)$/.exec(message) : null);
  return match ? { slot: Number(match[1]), epoch: Number(match[2]) } : undefined;
}

/** Throws unless `lease` is a slot and an epoch the fence can take (non-negative safe integers). */
export function checkLeaseRef(lease: SlotLeaseRef, what: string): void {
  if (!Number.isSafeInteger(lease.slot) || lease.slot < 0 || !Number.isSafeInteger(lease.epoch) || lease.epoch < 0) {
    throw new TypeError(`${what}: a fence needs a non-negative integer slot and epoch, got ${JSON.stringify(lease)}`);
  }
}
