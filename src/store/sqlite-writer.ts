/**
 * The SQLite store's writer, run in a worker thread: it owns the only writing
 * connection, so a group commit's inserts and fsync overlap with the main
 * thread's network work instead of blocking it.
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
export type WriterReply = { id: number; error?: { message: string; conflict: boolean } };

if (parentPort) {
  const port = parentPort;
  const init = workerData as WriterInit;
  const db = openDatabase(init.path, init.durability);
  const write = batchWriter(db);
  port.on('message', ({ id, batch }: WriterRequest) => {
    let reply: WriterReply;
    try {
      write(batch);
      reply = { id };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      reply = { id, error: { message, conflict: error instanceof StoreConflictError } };
    }
    port.postMessage(reply);
  });
}
