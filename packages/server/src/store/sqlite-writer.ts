/**
 * The SQLite store's writer, run in a worker thread: it owns the only writing
 * connection, so a group commit's inserts and fsync overlap with the main
 * thread's network work instead of blocking it.
 *
 * The main thread may send the next batch before the last one is answered. The
 * batches that arrive while a transaction runs are committed together in the
 * next one, as soon as it ends: the writer never waits for the main thread to
 * hear about one commit before it starts the next.
 *
 * Checkpoints (copying the WAL back into the database file) run when no batch is
 * waiting and the WAL has grown by about as much as SQLite's automatic checkpoint
 * waits for, not inside the commit that crosses that line, so that they do not
 * hold up an ack. Under a load that never lets up, one runs anyway once the WAL
 * has grown several times as much, so that it stays bounded.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { StoreConflictError } from './memory.js';
import { batchWriter, openDatabase, removesContent, type RowBatch, type SqliteDurability } from './sqlite-schema.js';

export interface WriterInit {
  path: string;
  durability: SqliteDurability;
}

/** The batch travels as row values: flat arrays of strings and numbers clone cheaply. */
export type WriterRequest = { id: number; batch: RowBatch };
/**
 * The requests one transaction committed, in the order sent: all of them, or
 * (with `error`) none. When a transaction of several fails, each is tried again
 * alone and answered on its own.
 */
export type WriterReply = { ids: number[]; error?: { message: string; conflict: boolean } };

/** WAL pages written since the last checkpoint before an idle writer runs one (SQLite's own default)… */
const CHECKPOINT_WHEN_IDLE_AFTER = 1000;
/** …and before a writer that is never idle runs one anyway. */
const CHECKPOINT_FORCED_AFTER = 8000;

/**
 * About how many WAL pages a batch writes: its rows (half again for the space
 * b-tree pages leave free), and half a page per row for the index pages a group
 * commit dirties. A guess is enough: it only paces checkpoints, and the WAL
 * test in test/store/sqlite.test.ts checks that it keeps the WAL bounded.
 */
function walPagesOf(batch: RowBatch): number {
  let bytes = 0;
  for (const row of batch.rows) bytes += 100 + row[9].length + (row[10]?.length ?? 0);
  return 1 + batch.rows.length / 2 + (1.5 * bytes) / 4096;
}

if (parentPort) {
  const port = parentPort;
  const init = workerData as WriterInit;
  const db = openDatabase(init.path, init.durability);
  db.pragma('wal_autocheckpoint = 0');
  const write = batchWriter(db);
  /** Estimated WAL pages since the last checkpoint. */
  let sinceCheckpoint = 0;
  /** A delete was committed: its old bodies are still in WAL frames until a truncating checkpoint. */
  let scrubPending = false;

  /** One transaction for all the requests; false, having answered nothing, if it failed and there were several. */
  const tryTogether = (requests: WriterRequest[]): boolean => {
    const ids = requests.map((request) => request.id);
    try {
      write(requests.map((request) => request.batch));
      port.postMessage({ ids } satisfies WriterReply);
      return true;
    } catch (error) {
      if (requests.length > 1) return false;
      const message = error instanceof Error ? error.message : String(error);
      port.postMessage({ ids, error: { message, conflict: error instanceof StoreConflictError } } satisfies WriterReply);
      return true;
    }
  };

  const commit = (requests: WriterRequest[]): void => {
    // A batch at fault must not fail the others that shared its transaction: each is tried
    // again alone, in order (a later batch that continued a failed one fails its order check).
    if (!tryTogether(requests)) for (const request of requests) tryTogether([request]);
    for (const request of requests) {
      sinceCheckpoint += walPagesOf(request.batch);
      if (removesContent(request.batch)) scrubPending = true;
    }
  };

  /** Every request already sent, without going back to the event loop. */
  const waiting = (): WriterRequest[] => {
    const requests: WriterRequest[] = [];
    for (let next = receiveMessageOnPort(port); next; next = receiveMessageOnPort(port)) requests.push(next.message as WriterRequest);
    return requests;
  };

  const checkpoint = (): void => {
    sinceCheckpoint = 0;
    db.pragma('wal_checkpoint(PASSIVE)');
  };

  /**
   * After a delete: copy the WAL into the file (whose freed bytes secure_delete
   * zeroes) and truncate it, so the deleted bodies' old frames are gone too. It
   * waits for readers (busy_timeout); if one holds on, the next idle turn retries.
   */
  const scrub = (): void => {
    sinceCheckpoint = 0;
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
    scrubPending = result?.busy !== 0;
  };

  port.on('message', (first: WriterRequest) => {
    let requests = [first, ...waiting()];
    while (requests.length > 0) {
      commit(requests);
      if (sinceCheckpoint >= CHECKPOINT_FORCED_AFTER) checkpoint();
      requests = waiting();
    }
    if (scrubPending) scrub();
    else if (sinceCheckpoint >= CHECKPOINT_WHEN_IDLE_AFTER) checkpoint();
  });
}
