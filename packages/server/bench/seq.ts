/**
 * `npm run bench:seq`: our counters, ids and clock side by side with what a user
 * would otherwise pick (Redis INCR, PostgreSQL sequences and row updates,
 * @sapphire/snowflake, uuid v7), in one run on one machine. Every number is
 * measured here; a peer that cannot be reached is reported as skipped.
 *
 * Every row is warmed up, then timed in several rounds, the rows taking turns
 * (round 1 of every row, then round 2 of every row, …), so a burst of load from
 * elsewhere on the machine lands on all rows alike rather than on one. A row's
 * number is the median of its rounds; the lowest and highest are reported too.
 * Synchronous rows run in batches and yield to the event loop about every 2 ms,
 * so background work (a counter's next raise, the ids' high-water mark) lands as
 * it would in a server; that time counts against us.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Snowflake } from '@sapphire/snowflake';
import { v7 as uuidv7 } from 'uuid';
import { Redis } from 'ioredis';
import pg from 'pg';
import { HybridClock } from '../src/seq/clock.js';
import { MidGenerator } from '../src/seq/ids.js';
import { SequenceCounters } from '../src/seq/counters.js';
import { openSqliteSeqBackend } from '../src/seq/backends/sqlite.js';
import { ratio, writeResults, type Row } from './report.js';

const WARMUP_MS = Number(process.env['BENCH_WARMUP_MS'] ?? 300);
const ROUND_MS = Number(process.env['BENCH_ROUND_MS'] ?? 400);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5);
const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const POSTGRES_URL = process.env['POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const SPREAD_KEYS = 100_000;

/** Keeps results alive so the optimiser cannot drop the calls being timed. */
let sink: unknown;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One row: `time(ms)` runs the operation for about ms and resolves to ops/s. */
interface Case {
  name: string;
  measures: string;
  time(ms: number): Promise<number>;
}

/**
 * A synchronous operation. `recover` handles an error the generator asks the
 * caller to wait out ("not ready: await ready()"); it resolves false to rethrow.
 */
function syncCase(name: string, measures: string, fn: () => unknown, recover?: (error: unknown) => Promise<boolean>): Case {
  return {
    name,
    measures,
    async time(ms) {
      let n = 0;
      const t0 = performance.now();
      let t = t0;
      let lastYield = t0;
      while (t - t0 < ms) {
        let i = 0;
        try {
          for (; i < 1024; i++) sink = fn();
        } catch (error) {
          if (!recover || !(await recover(error))) throw error;
        }
        n += i;
        t = performance.now();
        if (t - lastYield > 2) {
          await yieldToLoop();
          t = lastYield = performance.now();
        }
      }
      return n / ((t - t0) / 1000);
    },
  };
}

/** An awaited call that performs `perCall` operations. */
function asyncCase(name: string, measures: string, fn: () => Promise<unknown>, perCall = 1): Case {
  return {
    name,
    measures,
    async time(ms) {
      let n = 0;
      const t0 = performance.now();
      let t = t0;
      while (t - t0 < ms) {
        sink = await fn();
        n += perCall;
        t = performance.now();
      }
      return n / ((t - t0) / 1000);
    },
  };
}

/** A recover function: waits out errors with this code, rethrows anything else. */
function waitOut(code: string, wait: () => Promise<void>): (error: unknown) => Promise<boolean> {
  return async (error) => {
    if ((error as { code?: unknown }).code !== code) return false;
    await wait();
    return true;
  };
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

const cleanups: Array<() => Promise<void>> = [];
const skipped: Row[] = [];

function skip(names: string[], why: string): void {
  for (const name of names) {
    skipped.push({ name, ops_per_s: null, min_ops_per_s: null, max_ops_per_s: null, measures: `skipped: ${why}` });
    log(`${name.padEnd(44)} skipped: ${why}`);
  }
}

async function ours(): Promise<Case[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sequent-bench-seq-'));
  const backend = openSqliteSeqBackend(join(dir, 'seq.db'));
  const counters = await SequenceCounters.open(backend);
  const mids = await MidGenerator.open(backend);
  const clock = new HybridClock();
  cleanups.push(async () => {
    await counters.close();
    await mids.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const keys = Array.from({ length: SPREAD_KEYS }, (_, i) => `user:${i}`);
  let k = 0;
  return [
    syncCase('counters hot key', 'next("hot") on one key, SQLite backend (persisted step, double buffered)', () => counters.next('hot'), waitOut('seq_exhausted', () => counters.ready('hot'))),
    syncCase(
      'counters 100k keys',
      `next(key) cycling over ${SPREAD_KEYS.toLocaleString('en-US')} keys, SQLite backend`,
      () => {
        if (++k === SPREAD_KEYS) k = 0;
        return counters.next(keys[k]!);
      },
      waitOut('seq_exhausted', () => counters.ready(keys[k]!)),
    ),
    syncCase('ids next()', 'MidGenerator.next(): a unique, increasing 64-bit id as a decimal string', () => mids.next(), waitOut('mid_not_ready', () => mids.ready())),
    syncCase('clock now()', 'HybridClock.now(): ms, never decreasing', () => clock.now()),
  ];
}

function idLibraries(): Case[] {
  const snowflake = new Snowflake(Date.UTC(2025, 0, 1));
  return [
    syncCase('@sapphire/snowflake generate()', 'generate(): a bigint (its 12-bit increment wraps within a ms)', () => snowflake.generate()),
    syncCase('@sapphire/snowflake generate().toString()', 'the same as a decimal string, like our ids', () => snowflake.generate().toString()),
    syncCase('uuid v7()', 'v7(): a 36-character string', () => uuidv7()),
    syncCase('Date.now()', 'baseline: reading the wall clock', () => Date.now()),
  ];
}

async function redis(): Promise<Case[]> {
  const names = ['redis INCR awaited', 'redis INCR pipelined'] as const;
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    skip([...names], `${REDIS_URL} unreachable (${(error as Error).message})`);
    client.disconnect();
    return [];
  }
  const key = `sequent:bench:${randomUUID()}`;
  cleanups.push(async () => {
    await client.del(key).catch(() => {});
    client.disconnect();
  });
  return [
    asyncCase(names[0], 'await INCR, one at a time, one connection', () => client.incr(key)),
    asyncCase(
      names[1],
      'INCR in pipelines of 1,000, one connection',
      () => {
        const pipeline = client.pipeline();
        for (let i = 0; i < 1000; i++) pipeline.incr(key);
        return pipeline.exec();
      },
      1000,
    ),
  ];
}

async function postgres(): Promise<Case[]> {
  const names = ['postgres nextval awaited', 'postgres UPDATE RETURNING awaited'] as const;
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    skip([...names], `${POSTGRES_URL} unreachable (${(error as Error).message})`);
    return [];
  }
  // Ordinary (logged) objects, as a user's would be; dropped at the end.
  const suffix = randomUUID().replaceAll('-', '').slice(0, 12);
  const sequence = `sequent_bench_seq_${suffix}`;
  const table = `sequent_bench_counter_${suffix}`;
  cleanups.push(async () => {
    await client.query(`DROP SEQUENCE IF EXISTS ${sequence}`).catch(() => {});
    await client.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await client.end();
  });
  await client.query(`CREATE SEQUENCE ${sequence}`);
  await client.query(`CREATE TABLE ${table} (k text PRIMARY KEY, v bigint NOT NULL)`);
  await client.query(`INSERT INTO ${table} VALUES ('hot', 0)`);
  return [
    asyncCase(names[0], 'await SELECT nextval(...), one at a time, one connection', () => client.query({ name: 'nextval', text: `SELECT nextval('${sequence}')` })),
    asyncCase(names[1], 'await UPDATE ... SET v = v + 1 RETURNING v (committed), one at a time', () =>
      client.query({ name: 'update', text: `UPDATE ${table} SET v = v + 1 WHERE k = $1 RETURNING v`, values: ['hot'] }),
    ),
  ];
}

const RATIOS: Array<[ours: string, peer: string]> = [
  ['counters hot key', 'redis INCR awaited'],
  ['counters hot key', 'redis INCR pipelined'],
  ['counters hot key', 'postgres nextval awaited'],
  ['counters hot key', 'postgres UPDATE RETURNING awaited'],
  ['counters 100k keys', 'redis INCR awaited'],
  ['counters 100k keys', 'redis INCR pipelined'],
  ['counters 100k keys', 'postgres nextval awaited'],
  ['ids next()', '@sapphire/snowflake generate()'],
  ['ids next()', '@sapphire/snowflake generate().toString()'],
  ['ids next()', 'uuid v7()'],
  ['clock now()', 'Date.now()'],
];

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  log(`warmup ${WARMUP_MS} ms per row, then ${ROUNDS} interleaved rounds of ${ROUND_MS} ms`);
  // The machine may be shared: the load average says how quiet it was.
  const loadBefore = loadavg()[0]!;
  const cases: Case[] = [];
  try {
    cases.push(...(await ours()), ...idLibraries(), ...(await redis()), ...(await postgres()));
    for (const c of cases) await c.time(WARMUP_MS);
    const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases) samples.get(c.name)!.push(await c.time(ROUND_MS));
    }

    const measured = new Map<string, number>();
    const rows: Row[] = cases.map((c) => {
      const s = samples.get(c.name)!;
      const opsPerS = Math.round(median(s));
      measured.set(c.name, opsPerS);
      log(`${c.name.padEnd(44)} ${opsPerS.toLocaleString('en-US').padStart(14)} ops/s  (rounds ${s.map((x) => Math.round(x).toLocaleString('en-US')).join(', ')})`);
      return { name: c.name, ops_per_s: opsPerS, min_ops_per_s: Math.round(Math.min(...s)), max_ops_per_s: Math.round(Math.max(...s)), measures: c.measures };
    });
    rows.push(...skipped);

    const ratios: Record<string, number> = {};
    for (const [a, b] of RATIOS) {
      const x = measured.get(a);
      const y = measured.get(b);
      if (x !== undefined && y !== undefined) ratios[`${a} / ${b}`] = ratio(x, y);
    }
    const get = (name: string) => measured.get(name) ?? Number.NaN;
    const fastestIdPeer = Math.max(get('@sapphire/snowflake generate()'), get('uuid v7()'));
    const targets = [
      { target: 'counters hot key >= 10,000,000 next()/s', met: get('counters hot key') >= 10_000_000 },
      { target: 'counters hot key >= 100x redis INCR awaited', met: get('counters hot key') >= 100 * get('redis INCR awaited') },
      { target: 'ids next() >= the fastest of @sapphire/snowflake generate() and uuid v7()', met: get('ids next()') >= fastestIdPeer },
    ];
    writeResults('seq', { rows, ratios, targets, settings: { warmup_ms: WARMUP_MS, round_ms: ROUND_MS, rounds: ROUNDS, statistic: 'median of rounds' },
      load_average_1m: { before: loadBefore, after: loadavg()[0]! },
    });
    for (const t of targets) process.stdout.write(`${t.met ? 'met    ' : 'NOT MET'}  ${t.target}\n`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  }
  if (sink === Symbol.for('never')) process.stdout.write('\n');
}

await main();
