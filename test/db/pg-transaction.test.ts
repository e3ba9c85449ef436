/**
 * inTransaction against the real PostgreSQL when the server ends the session in
 * the middle of the transaction, with no statement in flight (a paused process
 * past idle_in_transaction_session_timeout): the transaction fails, the process
 * does not (no uncaught 'error' event), and the pool goes on with a new connection.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { inTransaction } from '../../packages/server/src/db/pg-transaction.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
let pool: pg.Pool | undefined;
afterEach(async () => {
  await pool?.end();
  pool = undefined;
});

describe.skipIf(!available)('inTransaction', () => {
  it('a session ended by the server between statements fails the transaction, not the process, and leaves the pool', async () => {
    pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    pool.on('error', () => {});
    const pidOf = async (client: pg.ClientBase) => (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    let first = 0;
    const failed = inTransaction(pool, async (client) => {
      first = await pidOf(client);
      await client.query('SET LOCAL idle_in_transaction_session_timeout = 100');
      // idle inside the transaction until the server has ended the session and its error has arrived
      await new Promise<void>((resolve) => client.once('end', () => resolve()));
      await client.query('SELECT 1');
    });
    await expect(failed).rejects.toThrow();
    // the only connection of the pool was the broken one: a new one serves the next transaction
    const next = await inTransaction(pool, (client) => pidOf(client));
    expect(next).not.toBe(first);
  });
});
