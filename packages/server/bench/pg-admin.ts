/** One statement on a connection of its own (CREATE/DROP DATABASE cannot run in a pool's transaction), closed after. */
import pg from 'pg';

export async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
