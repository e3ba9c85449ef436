/**
 * The SQLite store's writer, run in a worker thread: it owns the only writing
 * connection, so a group commit's inserts and fsync overlap with the main
 * thread's network work instead of blocking it.
 *
 * The main thread may send the next batch before the last one is answered. The
 * batches that arrive while a transaction runs are committed together in the
 * next one, as soon as it ends: the writer never waits for the main thread to
 * hear about one commit before it starts the next.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { StoreConflictError } from './memory.js';
import { batchWriter, openDatabase, type RowBatch, type SqliteDurability } from './sqlite-schema.js';

export interface WriterInit {
  path: string;
  durability: SqliteDurability;
}

/** The batch travels as row values: flat arrays of strings and numbers clone cheaply. */
export type WriterRequest = { id: number; batch: RowBatch };
/** The requests one transaction committed, in the order sent: all of them, or (with `error`) none. */
export type WriterReply = { ids: number[]; error?: { message: string; conflict: boolean } };

if (parentPort) {
  const port = parentPort;
  const init = workerData as WriterInit;
  const db = openDatabase(init.path, init.durability);
  const write = batchWriter(db);
  let queued: WriterRequest[] = [];

  const commitQueued = (): void => {
    const requests = queued;
    queued = [];
    const ids = requests.map((request) => request.id);
    let reply: WriterReply;
    try {
      write(requests.map((request) => request.batch));
      reply = { ids };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      reply = { ids, error: { message, conflict: error instanceof StoreConflictError } };
    }
    port.postMessage(reply);
  };

  port.on('message', (request: WriterRequest) => {
    // Every message already waiting is delivered before setImmediate's callback runs,
    // so one transaction takes all the batches that arrived during the last one.
    if (queued.length === 0) setImmediate(commitQueued);
    queued.push(request);
  });
}
