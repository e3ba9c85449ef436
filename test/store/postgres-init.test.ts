/**
 * A node starting beside running ones: the PostgreSQL store's init on a schema
 * that is already current takes no DDL lock, so it neither waits for nor
 * deadlocks with the commits in flight (before, its ALTER TABLE … IF NOT EXISTS
 * waited behind them and a restarted cluster node failed with 40P01).
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openPostgresStore } from '../../packages/server/src/store/postgres.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { createTestDatabase, type TestDatabase } from '../cluster/databases.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
let db: TestDatabase | undefined;
afterAll(async () => {
  await db?.drop();
});

describe.skipIf(!available)('PostgreSQL store init beside running commits', () => {
  it('is instant on a current schema while another session holds the tables, and runs its DDL when the schema is not current', async () => {
    db = await createTestDatabase();
    const first = openPostgresStore({ url: db.url });
    await first.init();
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      // A commit in flight elsewhere: its locks are held until it ends.
      await other.query('BEGIN');
      await other.query('LOCK TABLE sequent.entries, sequent.convs, sequent.device_lanes IN ROW EXCLUSIVE MODE');
      const second = openPostgresStore({ url: db.url });
      const startedAt = performance.now();
      await second.init();
      expect(performance.now() - startedAt).toBeLessThan(2000);
      await second.close();

      // Without the fingerprint (a database from an older release) init runs its DDL, which must wait for that commit.
      await first.close();
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query(`DELETE FROM sequent.meta WHERE key = 'schema_sql'`);
      await admin.end();
      const third = openPostgresStore({ url: db.url });
      let done = false;
      const migrating = third.init().then(() => (done = true));
      await new Promise((r) => setTimeout(r, 500));
      expect(done).toBe(false);
      await other.query('COMMIT');
      await migrating;
      expect(done).toBe(true);
      await third.close();
    } finally {
      await other.end();
    }
  });
});
