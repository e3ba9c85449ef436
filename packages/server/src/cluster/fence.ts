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
import { fenceSql as fenceStatement, isFenceRefusal, SlotFencedError } from '../db/pg-fence.js';
import { inTransaction } from '../db/pg-transaction.js';
import type { ClusterDb } from './db.js';
import type { ClusterTables } from './schema.js';

export { isFenceRefusal, SlotFencedError };

/** The fence as SQL, to embed in a commit plan: parameters $slot (integer) and $epoch (bigint) at the given positions. */
export function fenceSql(tables: ClusterTables, slotParam = 1, epochParam = 2): string {
  return fenceStatement(tables.fence, slotParam, epochParam);
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

/**
 * BEGIN, the fence, `work`, COMMIT on a connection of `db`; ROLLBACK on any error.
 * The server may end the session under it (idle_in_transaction_session_timeout
 * after a pause): that error is the commit's, not the process's, and the broken
 * connection is dropped from the pool (inTransaction).
 */
export function fencedTransaction<T>(db: ClusterDb, slot: number, epoch: number, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(db.pool, async (client) => {
    await fence(client, db.tables, slot, epoch);
    return work(client);
  });
}
