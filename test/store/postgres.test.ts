/** The PostgreSQL adapter against the same conformance suite, each test in a fresh schema of the local server. */
import pg from 'pg';
import { afterAll, describe } from 'vitest';
import { openPostgresStore } from '../../packages/server/src/store/postgres.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { describeStoreConformance } from './conformance.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const run = `t${process.pid}_${Date.now().toString(36)}`;
let n = 0;
const schemas: string[] = [];

afterAll(async () => {
  if (!available || schemas.length === 0) return;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

describe.skipIf(!available)('postgres', () => {
  describeStoreConformance('postgres', async () => {
    const schema = `sequent_store_${run}_${++n}`;
    schemas.push(schema);
    const open = () => openPostgresStore({ url: POSTGRES_URL, schema, maxConnections: 4 });
    return { store: open(), reopen: async () => open(), another: async () => open(), dispose: async () => {} };
  }, { pipelined: true });
});
