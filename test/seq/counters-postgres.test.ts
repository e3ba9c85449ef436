/**
 * The counter conformance suite on the PostgreSQL backend (the local server),
 * in a schema of its own for this run, dropped at the end; each test gets its
 * own table prefix. Skipped loudly when PostgreSQL is unreachable, failing under CI=true.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openPostgresSeqBackend } from '../../packages/server/src/seq/backends/postgres.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { describeCounterConformance } from './counter-conformance.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const schema = `seq_counters_${process.pid}_${randomBytes(3).toString('hex')}`;
let n = 0;

afterAll(async () => {
  if (!available) return;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
});

describe.skipIf(!available)('postgres', () => {
  describeCounterConformance(
    'postgres',
    async () => {
      const tablePrefix = `t${++n}_`;
      return {
        open: () => openPostgresSeqBackend(POSTGRES_URL, { schema, tablePrefix }),
        child: { kind: 'postgres', url: POSTGRES_URL, schema, tablePrefix },
        dispose: async () => {},
      };
    },
    { propertyRuns: 20, crashRounds: 20 },
  );

  describe('postgres sequence backend setup', () => {
    it('creates its prefixed tables in the given schema, and opening again (also concurrently) is harmless', async () => {
      const tablePrefix = `setup${++n}_`;
      const backends = await Promise.all([1, 2, 3].map(() => openPostgresSeqBackend(POSTGRES_URL, { schema, tablePrefix })));
      for (const b of backends) await b.close();
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        const { rows } = await client.query<{ table_name: string }>(
          `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE $2 ORDER BY table_name`,
          [schema, `${tablePrefix}%`],
        );
        expect(rows.map((r) => r.table_name)).toEqual([`${tablePrefix}meta`, `${tablePrefix}sections`]);
      } finally {
        await client.end();
      }
    });

    it('refuses a schema or table prefix that is not a plain lower-case identifier', async () => {
      await expect(openPostgresSeqBackend(POSTGRES_URL, { schema: 'Bad"Schema' })).rejects.toBeInstanceOf(RangeError);
      await expect(openPostgresSeqBackend(POSTGRES_URL, { tablePrefix: 'x; DROP' })).rejects.toBeInstanceOf(RangeError);
    });
  });
});
