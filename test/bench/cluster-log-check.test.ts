/**
 * The cluster benchmark's end-of-run log check, against the PostgreSQL store's
 * real schema: a log that matches the acks passes, and each kind of violation
 * (an acked message missing, stored twice, at another seq; a gap; an epoch
 * going down) is counted where it is.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AckRecord } from '../../packages/server/bench/cluster-client.js';
import { createBenchDatabase, type BenchDatabase } from '../../packages/server/bench/cluster-db.js';
import { openPostgresStore } from '../../packages/server/src/store/postgres.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
let db: BenchDatabase;
let sql: pg.Client;

/** Conversation `conv` with entries 1..count, entry i sent as cmid `${conv}-${i}` under epoch `epochs[i-1]` (default 1). */
async function writeLog(conv: string, count: number, epochs: number[] = []): Promise<AckRecord[]> {
  await sql.query(`INSERT INTO sequent.convs (conv, kind, last) VALUES ($1, 'group', $2)`, [conv, count]);
  const acks: AckRecord[] = [];
  for (let seq = 1; seq <= count; seq++) {
    const cmid = `${conv}-${seq}`;
    await sql.query(
      `INSERT INTO sequent.entries (conv, seq, kind, mid, ts, from_user, dev, cmid, dseq, body, epoch)
       VALUES ($1, $2, 'msg', $3, $2, 'u', 'd1', $4, $2, '{}', $5)`,
      [conv, seq, `${conv}:${seq}`, cmid, epochs[seq - 1] ?? 1],
    );
    acks.push({ conv, cmid, seq, firstAt: 0, lastAt: 0, at: 0 });
  }
  return acks;
}

describe.skipIf(!available)('cluster benchmark log check', () => {
  beforeEach(async () => {
    db = await createBenchDatabase(POSTGRES_URL, `sequent_bench_check_${process.pid}`);
    const store = openPostgresStore({ url: db.url });
    await store.init();
    await store.close();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
  });
  afterEach(async () => {
    await sql?.end();
    await db?.drop();
  });

  it('passes a log that holds every ack once at its seq', async () => {
    const acks = [...(await writeLog('g:a', 5, [1, 1, 2, 2, 3])), ...(await writeLog('g:b', 3))];
    const v = await db.check(acks, 0);
    expect(v).toMatchObject({ total: 0, entries: 8, acked: 8 });
  });

  it('counts each kind of violation', async () => {
    const a = await writeLog('g:a', 6, [1, 2, 2, 1, 1, 1]); // the epoch goes down once, at seq 4
    const b = await writeLog('g:b', 4);
    await sql.query(`DELETE FROM sequent.entries WHERE conv = 'g:b' AND seq = 2`); // a gap, and an acked message gone
    await sql.query(
      `INSERT INTO sequent.entries (conv, seq, kind, mid, ts, from_user, dev, cmid, dseq, body, epoch)
       VALUES ('g:a', 7, 'msg', 'dup', 7, 'u', 'd2', 'g:a-3', 7, '{}', 1)`,
    ); // the message acked at g:a seq 3 stored a second time
    await sql.query(`UPDATE sequent.convs SET last = 7 WHERE conv = 'g:a'`);
    const acks = [...a, ...b];
    acks[0] = { ...acks[0]!, seq: 2 }; // acked at another seq than stored
    const v = await db.check(acks, 1);
    expect(v).toMatchObject({
      acked_missing: 1,
      acked_duplicated: 1,
      acked_wrong_seq: 1,
      convs_with_gaps: 1,
      epoch_decreases: 1,
      ack_seq_mismatches: 1,
      total: 6,
    });
  });
});
