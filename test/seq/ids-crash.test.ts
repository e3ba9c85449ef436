/**
 * kill -9 at random moments, 20 times, with the wall clock set further back at
 * every restart: across all runs no id repeats, each run's ids increase, and each
 * restart starts above every id printed before it (the high-water mark in the
 * store). The child prints an id only after next() returned it. On SQLite and on
 * PostgreSQL.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { bundleFixture, ROOT } from '../support/child-fixture.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { decodeMid } from '../../packages/server/src/seq/ids.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';

const postgresUp = await serviceAvailable('postgres', POSTGRES_URL);

// Inside the package (git-ignored) so the bundle resolves better-sqlite3 from node_modules.
const BUILD_DIR = join(ROOT, `.sequent-test-ids-${process.pid}`);
const CHILD = join(BUILD_DIR, 'ids-child.mjs');
const RUNS = 20;

interface Run {
  worker: number;
  ids: bigint[];
}

function runUntilKilled(store: string, offsetMs: number, killAfterMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, store, String(offsetMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      // Kill at a random moment once the generator is issuing.
      if (!timer && out.includes('\n')) timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') return reject(new Error(`child exited on its own (${signal ?? _code}): ${err}`));
      const lines = out.split('\n');
      lines.pop(); // a line cut by the kill is not a reported id
      const [header, ...ids] = lines;
      if (!header?.startsWith('worker ')) return reject(new Error(`no worker line; stderr: ${err}`));
      resolve({ worker: Number(header.slice(7)), ids: ids.map((id) => BigInt(id)) });
    });
  });
}

beforeAll(async () => {
  await bundleFixture('test/seq/fixtures/ids-child.ts', BUILD_DIR, 'ids-child');
});
afterAll(() => {
  rmSync(BUILD_DIR, { recursive: true, force: true });
});

async function killAndRestart(store: string): Promise<void> {
  const seen = new Set<bigint>();
  let highest = 0n;
  let total = 0;
  for (let run = 0; run < RUNS; run++) {
    const { worker, ids } = await runUntilKilled(store, -1_500 * run, 5 + Math.floor(Math.random() * 55));
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      // Plain checks: up to millions of ids.
      if (seen.has(id)) throw new Error(`run ${run}: id ${id} repeated`);
      if (!(id > highest)) throw new Error(`run ${run}: id ${id} not above ${highest} (index ${i})`);
      seen.add(id);
      highest = id;
    }
    if (ids.length > 0) expect(decodeMid(String(ids[0])).worker).toBe(worker);
    total += ids.length;
  }
  expect(total).toBeGreaterThan(RUNS);
}

const TITLE = `never repeats or goes back over ${RUNS} kills, with the clock 1.5 s further behind at every restart`;

describe('ids across kill -9 and restarts (SQLite)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sequent-ids-crash-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(TITLE, () => killAndRestart(`sqlite:${join(dir, 'seq.db')}`));
});

describe.skipIf(!postgresUp)('ids across kill -9 and restarts (PostgreSQL)', () => {
  const tablePrefix = `ids_crash_${process.pid}_`;
  afterAll(async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    await client.query(`DROP TABLE IF EXISTS "${tablePrefix}sections", "${tablePrefix}meta"`);
    await client.end();
  });

  it(TITLE, () => killAndRestart(`postgres:${tablePrefix}:${POSTGRES_URL}`));
});
