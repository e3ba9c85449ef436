/**
 * One PostgreSQL transaction on a pooled connection: BEGIN, the work, COMMIT —
 * or ROLLBACK and the work's own error — and the connection always goes back.
 *
 * The server may end the session under it (idle_in_transaction_session_timeout
 * after a pause of this process, a restart, a cut): pg-pool listens for errors
 * only on idle connections, so without a listener here that error would be an
 * uncaught 'error' event ending the process. It is the transaction's instead
 * (its next statement fails), and the broken connection leaves the pool.
 */
import type pg from 'pg';

export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch((e: unknown) => {
      broken ??= e instanceof Error ? e : new Error(String(e));
    });
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}
