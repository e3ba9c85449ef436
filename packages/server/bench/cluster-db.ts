/**
 * The cluster benchmark's PostgreSQL side: a fresh database per run (created,
 * and dropped at the end), its committed transactions from pg_stat_database,
 * and the end-of-run check of the log against every ack the clients received.
 */
import pg from 'pg';
import type { AckRecord } from './cluster-client.js';

/** Schema of the store's tables (the PostgreSQL store's default). */
const SCHEMA = 'sequent';

export interface BenchDatabase {
  name: string;
  /** The URL nodes are given. */
  url: string;
  /** pg_stat_database.xact_commit of this database, read from the admin connection (whose own transactions are elsewhere). */
  commits(): Promise<number>;
  /** `ackSeqMismatches`: sends the clients saw acked twice at different seqs. */
  check(acks: readonly AckRecord[], ackSeqMismatches: number): Promise<Violations>;
  drop(): Promise<void>;
}

export interface Violations {
  /** Acked sends not in the log, in it more than once, or at another seq than acked. */
  acked_missing: number;
  acked_duplicated: number;
  acked_wrong_seq: number;
  /** Conversations whose seqs are not 1..last without a gap, or whose `last` is not their highest seq. */
  convs_with_gaps: number;
  /** Places where an entry's epoch is below the one before it in its conversation. */
  epoch_decreases: number;
  ack_seq_mismatches: number;
  total: number;
  entries: number;
  acked: number;
}

/** Creates `name` (dropping a leftover of the same name first) through the admin database at `adminUrl`. */
export async function createBenchDatabase(adminUrl: string, name: string): Promise<BenchDatabase> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (error) {
    await admin.end();
    throw error;
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const dbUrl = url.toString();
  return {
    name,
    url: dbUrl,
    async commits() {
      const { rows } = await admin.query<{ n: string }>('SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = $1', [name]);
      return Number(rows[0]?.n ?? 0);
    },
    check: (acks, mismatches) => checkLog(dbUrl, acks, mismatches),
    async drop() {
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

async function checkLog(url: string, acks: readonly AckRecord[], ackSeqMismatches: number): Promise<Violations> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('CREATE TEMP TABLE acked (conv TEXT NOT NULL, cmid TEXT NOT NULL, seq BIGINT NOT NULL)');
    for (let i = 0; i < acks.length; i += 10_000) {
      const chunk = acks.slice(i, i + 10_000);
      await client.query('INSERT INTO acked SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])', [
        chunk.map((a) => a.conv),
        chunk.map((a) => a.cmid),
        chunk.map((a) => a.seq),
      ]);
    }
    const { rows: [acked] } = await client.query<{ missing: string; duplicated: string; wrong: string }>(`
      SELECT count(*) FILTER (WHERE n = 0)::text AS missing,
             count(*) FILTER (WHERE n > 1)::text AS duplicated,
             count(*) FILTER (WHERE n = 1 AND stored <> seq)::text AS wrong
        FROM (SELECT a.seq, count(e.seq) AS n, min(e.seq) AS stored
                FROM acked a LEFT JOIN ${SCHEMA}.entries e ON e.conv = a.conv AND e.cmid = a.cmid
               GROUP BY a.conv, a.cmid, a.seq) x`);
    const { rows: [gaps] } = await client.query<{ n: string }>(`
      SELECT count(*)::text AS n FROM (
        SELECT c.conv FROM ${SCHEMA}.convs c LEFT JOIN ${SCHEMA}.entries e ON e.conv = c.conv
         GROUP BY c.conv, c.last
        HAVING count(e.seq) <> c.last OR coalesce(max(e.seq), 0) <> c.last OR coalesce(min(e.seq), 1) <> 1) g`);
    const { rows: hasEpoch } = await client.query(
      `SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'entries' AND column_name = 'epoch'`,
      [SCHEMA],
    );
    let epochDecreases = 0;
    if (hasEpoch.length > 0) {
      const { rows: [epochs] } = await client.query<{ n: string }>(`
        SELECT count(*)::text AS n FROM (
          SELECT epoch < lag(epoch) OVER (PARTITION BY conv ORDER BY seq) AS down FROM ${SCHEMA}.entries) x WHERE down`);
      epochDecreases = Number(epochs!.n);
    }
    const { rows: [count] } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${SCHEMA}.entries`);
    const v = {
      acked_missing: Number(acked!.missing),
      acked_duplicated: Number(acked!.duplicated),
      acked_wrong_seq: Number(acked!.wrong),
      convs_with_gaps: Number(gaps!.n),
      epoch_decreases: epochDecreases,
      ack_seq_mismatches: ackSeqMismatches,
    };
    return { ...v, total: Object.values(v).reduce((a, b) => a + b, 0), entries: Number(count!.n), acked: acks.length };
  } finally {
    await client.end();
  }
}
