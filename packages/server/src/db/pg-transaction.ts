/**
 * Work on a pooled PostgreSQL connection that always goes back to the pool:
 * `onClient` for any work, `inTransaction` for BEGIN, the work, COMMIT — or
 * ROLLBACK and the work's own error.
 *
 * The server may end the session under it (idle_in_transaction_session_timeout
 * after a pause of this process, a restart, a cut): pg-pool listens for errors
 * only on idle connections, so without a listener here that error would be an
 * uncaught 'error' event ending the process. It is the work's instead (its
 * next statement fails), and the broken connection leaves the pool.
 */
import type pg from 'pg';

export async function onClient<T>(pool: pg.Pool, work: (client: pg.PoolClient, markBroken: (error: Error) => void) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const markBroken = (error: Error) => {
    broken ??= error;
  };
  client.on('error', markBroken);
  try {
    return await work(client, markBroken);
  } finally {
    client.off('error', markBroken);
    client.release(broken);
  }
}

export function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return onClient(pool, async (client, markBroken) => {
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((e: unknown) => markBroken(e instanceof Error ? e : new Error(String(e))));
      throw error;
    }
  });
}
