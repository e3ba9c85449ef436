/** Cluster tables: created safely by nodes starting at once, the slot count fixed per database, and the session settings in force. */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { openClusterDb } from '../../packages/server/src/cluster/db.js';
import { sessionSettings } from '../../packages/server/src/cluster/pg-session.js';
import { SlotCountMismatchError, storedSlotCount } from '../../packages/server/src/cluster/schema.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { createTestDatabase, type TestDatabase } from './databases.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const dbs: TestDatabase[] = [];
const fresh = async () => {
  const db = await createTestDatabase();
  dbs.push(db);
  return db;
};
afterEach(async () => {
  await Promise.all(dbs.splice(0).map((d) => d.drop()));
});

describe.skipIf(!available)('cluster schema', () => {
  it('eight nodes starting at once on an empty database all succeed and create one set of slot rows', async () => {
    for (let round = 0; round < 2; round++) {
      const { url } = await fresh();
      // a schema too, so CREATE SCHEMA races as well
      const starts = Array.from({ length: 8 }, () => openClusterDb({ url, leaseMs: 1000, slots: 128, schema: 'sq', maxConnections: 1 }));
      const opened = await Promise.all(starts);
      try {
        expect(opened.map((o) => o.slots)).toEqual(new Array(8).fill(128));
        const { rows } = await opened[0]!.pool.query<{ n: string; lo: number; hi: number; epochs: string }>(
          `SELECT count(*) AS n, min(slot) AS lo, max(slot) AS hi, sum(epoch) AS epochs FROM sq.cluster_slots`,
        );
        expect(rows[0]).toEqual({ n: '128', lo: 0, hi: 127, epochs: '0' });
        expect(await storedSlotCount(opened[0]!.pool, opened[0]!.tables)).toBe(128);
      } finally {
        await Promise.all(opened.map((o) => o.close()));
      }
    }
  });

  it('refuses a node configured with another slot count, and keeps the stored one', async () => {
    const { url } = await fresh();
    const first = await openClusterDb({ url, leaseMs: 1000, slots: 64 });
    try {
      await expect(openClusterDb({ url, leaseMs: 1000, slots: 1024 })).rejects.toBeInstanceOf(SlotCountMismatchError);
      await expect(openClusterDb({ url, leaseMs: 1000 })).rejects.toThrow(/has 64 slots/);
      const again = await openClusterDb({ url, leaseMs: 1000, slots: 64 });
      await again.close();
      expect(await storedSlotCount(first.pool, first.tables)).toBe(64);
    } finally {
      await first.close();
    }
  });

  it('every pooled connection carries the lease-derived session settings', async () => {
    const { url } = await fresh();
    const leaseMs = 3000;
    const db = await openClusterDb({ url, leaseMs, slots: 8, maxConnections: 2 });
    try {
      const expected = sessionSettings(leaseMs);
      const clients = [await db.pool.connect(), await db.pool.connect()];
      try {
        for (const client of clients) {
          const { rows } = await client.query<{ name: string; setting: string }>(
            `SELECT name, setting FROM pg_settings WHERE name = ANY($1) ORDER BY name`,
            [['idle_in_transaction_session_timeout', 'lock_timeout', 'tcp_keepalives_count', 'tcp_keepalives_idle', 'tcp_user_timeout', 'application_name']],
          );
          // pg_settings.setting is in each setting's base unit: ms for the timeouts, s for keepalive idle
          expect(Object.fromEntries(rows.map((r) => [r.name, r.setting]))).toEqual({
            application_name: 'sequent-cluster',
            idle_in_transaction_session_timeout: String(expected.idleInTransactionMs),
            lock_timeout: String(expected.lockTimeoutMs),
            tcp_keepalives_count: String(expected.keepaliveCount),
            tcp_keepalives_idle: String(expected.keepaliveIdleSeconds),
            tcp_user_timeout: String(expected.tcpUserTimeoutMs),
          });
        }
      } finally {
        for (const client of clients) client.release();
      }
    } finally {
      await db.close();
    }
  });

  it('a transaction left idle past the lease is ended by the server, releasing its row locks', async () => {
    const { url } = await fresh();
    const db = await openClusterDb({ url, leaseMs: 300, slots: 4, maxConnections: 1 });
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      const client = await db.pool.connect();
      client.on('error', () => {});
      await client.query('BEGIN');
      await client.query(`SELECT * FROM cluster_slots WHERE slot = 0 FOR UPDATE`);
      // another session waits for the lock until the server ends the idle transaction
      const started = performance.now();
      await other.query(`UPDATE cluster_slots SET holder = 'other' WHERE slot = 0`);
      expect(performance.now() - started).toBeLessThan(5000);
      await expect(client.query('COMMIT')).rejects.toThrow();
      client.release(true);
    } finally {
      await other.end();
      await db.close();
    }
  });
});
