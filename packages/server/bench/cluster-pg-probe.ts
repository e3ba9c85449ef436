/**
 * What one row every commit updates allows a PostgreSQL primary. Until the
 * per-user versions, every chat-state commit of the PostgreSQL store ran
 * `UPDATE counters SET value = value + 1 WHERE name = 'version'` and then its
 * member_state updates before COMMIT, so the row lock was held through those
 * statements and the commit's WAL flush, and commits from all nodes queued on
 * that one row. This probe measures commits/s of concurrent connections that
 * each run the same shape (the counter update, then `statements` more updates,
 * then COMMIT) on one shared counter row, against the same with a counter row
 * per connection (as per-user rows are for commits sharing no user), for `ms`
 * each, on a database of its own. A batch's member_state updates after the
 * counter were one per conversation it touched plus one per (conversation,
 * sender), so `statements` sizes the batch.
 */
import pg from 'pg';
import { createBenchDatabase } from './cluster-db.js';

export interface ProbeResult {
  connections: number;
  statements_after_counter: number;
  shared_row_commits_per_s: number;
  own_rows_commits_per_s: number;
  /** Mean time a commit holds the shared row: 1 / the shared row's rate. */
  shared_row_ms_per_commit: number;
}

export async function probeVersionRow(adminUrl: string, connections: number, statements: number, ms: number): Promise<ProbeResult> {
  const db = await createBenchDatabase(adminUrl, `sequent_bench_cluster_${process.pid}_probe`);
  const clients: pg.Client[] = [];
  try {
    for (let i = 0; i < connections; i++) {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      clients.push(client);
    }
    await clients[0]!.query(`CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
      CREATE TABLE state (conv TEXT, member TEXT, ver BIGINT NOT NULL, PRIMARY KEY (conv, member))`);
    await clients[0]!.query(`INSERT INTO counters SELECT 'c' || i, 0 FROM generate_series(0, $1) i`, [connections]);
    await clients[0]!.query(`INSERT INTO state SELECT 'conv' || i, 'm' || j, 0 FROM generate_series(0, $1) i, generate_series(0, $2) j`, [connections, statements]);
    const run = async (shared: boolean): Promise<number> => {
      const until = performance.now() + ms;
      const started = performance.now();
      const counts = await Promise.all(
        clients.map(async (client, i) => {
          let n = 0;
          // Bounded by time; each turn is one transaction.
          while (performance.now() < until) {
            await client.query('BEGIN');
            const { rows } = await client.query<{ value: string }>('UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value', [shared ? 'c0' : `c${i + 1}`]);
            for (let k = 0; k < statements; k++) {
              await client.query('UPDATE state SET ver = $1 WHERE conv = $2 AND member = $3', [rows[0]!.value, `conv${i}`, `m${k}`]);
            }
            await client.query('COMMIT');
            n++;
          }
          return n;
        }),
      );
      return counts.reduce((a, b) => a + b, 0) / ((performance.now() - started) / 1000);
    };
    const own = await run(false);
    const shared = await run(true);
    return {
      connections,
      statements_after_counter: statements,
      shared_row_commits_per_s: Math.round(shared),
      own_rows_commits_per_s: Math.round(own),
      shared_row_ms_per_commit: Math.round((1000 / shared) * 1000) / 1000,
    };
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await db.drop();
  }
}
