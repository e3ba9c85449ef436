/**
 * The commit-time fence. The lease alone is an efficiency lock; what makes a
 * paused or cut-off old owner harmless is this check, run inside the very
 * transaction that commits entries of the slot's conversations:
 *
 *     BEGIN; SELECT fence(slot, epoch); INSERT …; COMMIT
 *
 * It refuses (SlotFencedError) when the slot is no longer held at `epoch`. Passing,
 * it holds a FOR KEY SHARE lock on the lease row until the transaction ends, so a
 * takeover (which moves the epoch, a key column) cannot commit in between: every
 * commit under the old epoch is either visible to the new owner when it loads
 * the conversation, or refused.
 */
import type pg from 'pg';
import { type ClusterTables, FENCED_SQLSTATE } from './schema.js';

export class SlotFencedError extends Error {
  constructor(
    readonly slot: number,
    readonly epoch: number,
  ) {
    super(`slot ${slot} is no longer held at epoch ${epoch}`);
    this.name = 'SlotFencedError';
  }
}

/** The fence as SQL, to embed in a commit plan: parameters $slot (integer) and $epoch (bigint) at the given positions. */
export function fenceSql(tables: ClusterTables, slotParam = 1, epochParam = 2): string {
  return `SELECT ${tables.fence}($${slotParam}::integer, $${epochParam}::bigint)`;
}

/** True when a database error is the fence refusing. */
export function isFenceRefusal(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === FENCED_SQLSTATE;
}

/**
 * Runs the fence on `client`, which must be inside the commit's transaction.
 * Throws SlotFencedError when refused (the transaction is then aborted: roll it back).
 */
export async function fence(client: pg.ClientBase, tables: ClusterTables, slot: number, epoch: number): Promise<void> {
  try {
    await client.query(fenceSql(tables), [slot, epoch]);
  } catch (error) {
    if (isFenceRefusal(error)) throw new SlotFencedError(slot, epoch);
    throw error;
  }
}
