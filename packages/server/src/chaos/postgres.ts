/**
 * A fresh PostgreSQL database for one chaos run, made from an admin URL and
 * dropped afterwards, so runs never see each other's logs.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The admin database's URL, as the tests read it (test/support/services.ts). */
export const CHAOS_POSTGRES_URL = process.env['SEQUENT_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function admin<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

export interface ChaosDatabase {
  /** URL of the new database, for `sequent-server serve --postgres` */
  url: string;
  name: string;
  drop(): Promise<void>;
}

export async function createChaosDatabase(adminUrl: string = CHAOS_POSTGRES_URL): Promise<ChaosDatabase> {
  // Only [a-z0-9_]: the name goes into SQL unquoted.
  const name = `sequent_chaos_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => admin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
