/**
 * The server's timestamps and message ids, from src/seq: a hybrid clock (never
 * backwards within the process; each conversation's ts also never goes below its
 * stored newest entry's) and 64-bit mids from a worker id leased in
 * `<dataDir>/seq.db`, with the timestamp high-water mark persisted there so a
 * restart with the clock behind never repeats an id.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { HybridClock } from '../seq/clock.js';
import { MidGenerator } from '../seq/ids.js';
import { privateDatabaseFile } from './data-dir.js';
import type { Clock, MidSource } from './sequencer.js';

export interface IdSources {
  clock: Clock;
  mids: MidSource;
  close(): Promise<void>;
}

export const SEQ_FILE = 'seq.db';

/**
 * Ids kept beside the data: `<dataDir>/seq.db`, or, for a server whose store is
 * PostgreSQL, the same database (so servers sharing it lease distinct worker ids).
 */
export async function openIdSources(dataDir: string, logger?: Logger, postgresUrl?: string): Promise<IdSources> {
  // Loaded on demand like the embedded store: a server never loads the driver it does not use.
  const backend = postgresUrl
    ? await (await import('../seq/backends/postgres.js')).openPostgresSeqBackend(postgresUrl, { schema: 'sequent' })
    : (await import('../seq/backends/sqlite.js')).openSqliteSeqBackend(privateDatabaseFile(join(dataDir, SEQ_FILE)));
  let mids: MidGenerator;
  try {
    mids = await MidGenerator.open(backend, {
      onClockBack: (backwardMs) => logger?.warn({ backwardMs }, 'wall clock went back; mids continue on the last timestamp'),
    });
  } catch (error) {
    await backend.close();
    throw error;
  }
  const clock = new HybridClock({
    onClamp: (observed, adopted) => logger?.warn({ observed, adopted }, 'a stored timestamp is far ahead of this clock; clamped'),
  });
  return {
    clock,
    mids,
    async close() {
      await mids.close();
      await backend.close();
    },
  };
}
