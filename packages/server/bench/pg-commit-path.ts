/**
 * `node packages/server/dist/bench/pg-commit-path.js [--against <dir>/store/postgres.js]`:
 * this process's CPU per commit and per entry of the PostgreSQL store's commit
 * path, the node's side of it (building the statements, writing them, parsing the
 * replies), committing `--batches` fenced batches of `--entries` messages through
 * the real store. With `--against`, another build of the store (say, an older
 * release's dist) runs too, the two taking turns phase by phase (A/B/A/B), each
 * in a fresh schema, so that a noisy machine affects both alike.
 *
 * Commits go `--in-flight` at a time (as the sequencer pipelines them); each
 * batch's messages are spread over as many conversations, as a cluster node's
 * small commits are. The fence is the cluster's own function over a lease table
 * of the bench schema, so the fenced path is the one measured.
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { parseFlags, usage, type FlagSpec } from '../src/cli/args.js';
import { fenceFunctionSql } from '../src/db/pg-fence.js';
import type { Entry } from 'sequent-client/protocol';
import type { CommitBatch, CommitFence, MembershipChange, Store } from '../src/store/index.js';
import type { PostgresStoreOptions } from '../src/store/postgres.js';
import { admin } from './pg-admin.js';

const FLAGS: Record<string, FlagSpec> = {
  url: { kind: 'string', default: process.env['POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test', help: 'PostgreSQL (env POSTGRES_URL)' },
  against: { kind: 'string', default: '', help: "another build's store/postgres.js to compare with (A/B)" },
  batches: { kind: 'int', default: 1000, min: 1, help: 'commits per phase' },
  entries: { kind: 'int', default: 37, min: 1, max: 4000, help: 'messages per commit' },
  convs: { kind: 'int', default: 2000, min: 1, help: 'group conversations (3 members each)' },
  'in-flight': { kind: 'int', default: 4, min: 1, max: 64, help: 'commits at once' },
  rounds: { kind: 'int', default: 3, min: 1, max: 20, help: 'rounds of each build' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

type Open = (options: PostgresStoreOptions) => Store;

interface Result {
  cpuUsPerCommit: number;
  cpuUsPerEntry: number;
  commitsPerSec: number;
}

async function phase(open: Open, url: string, n: number, flags: Record<string, unknown>): Promise<Result> {
  const schema = `bench_pgcp_${process.pid}_${n}`;
  const batches = flags['batches'] as number;
  const perBatch = flags['entries'] as number;
  const convs = flags['convs'] as number;
  const inFlight = flags['in-flight'] as number;
  await admin(url, `CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.slots (slot integer PRIMARY KEY, epoch bigint NOT NULL, holder text NOT NULL);
    INSERT INTO ${schema}.slots VALUES (0, 1, 'bench');
    ${fenceFunctionSql(`"${schema}"."sequent_cluster_fence"`, `"${schema}"."slots"`)}`);
  const store = open({ url, schema, clusterSchema: schema, maxConnections: 2 * inFlight, maxCommitsInFlight: inFlight });
  const fence: CommitFence = { slot: 0, epoch: 1 };
  try {
    await store.init();
    let mid = 7_000_000_000_000_000_000n;
    const last: number[] = [];
    for (let i = 0; i < convs; i += 200) {
      const batch: CommitBatch = { newConvs: [], entries: [], memberships: [], fences: new Map() };
      for (let c = i; c < Math.min(convs, i + 200); c++) {
        const conv = `g:c${c}`;
        batch.newConvs.push({ conv, kind: 'group' });
        batch.entries.push({ conv, seq: 1, kind: 'system', mid: String(++mid), ts: Date.now(), from: 'u0', dev: 'server', body: { op: 'create' } });
        for (const user of [`u${c}`, `u${c + 1}`, `u${c + 2}`]) batch.memberships.push({ op: 'add', conv, user, seq: 1 } satisfies MembershipChange);
        (batch.fences as Map<string, CommitFence>).set(conv, fence);
        last.push(1);
      }
      await store.commit(batch);
    }
    const body = { text: 'x'.repeat(100) };
    const bodyJson = JSON.stringify(body);
    let next = 0;
    const makeBatch = (): CommitBatch => {
      const entries: Entry[] = [];
      const fences = new Map<string, CommitFence>();
      for (let k = 0; k < perBatch; k++) {
        const c = next++ % convs;
        const conv = `g:c${c}`;
        const seq = ++last[c]!;
        entries.push({ conv, seq, kind: 'msg', mid: String(++mid), ts: Date.now(), from: `u${c}`, dev: 'd', cmid: `m${c}-${seq}`, dseq: seq, body });
        fences.set(conv, fence);
      }
      return { newConvs: [], entries, memberships: [], bodyJson: entries.map(() => bodyJson), fences };
    };
    // Unmeasured warm-up: connections open, statements prepared, the JIT warm.
    for (let i = 0; i < 300; i++) await store.commit(makeBatch());
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let left = batches;
    const worker = async () => {
      while (left-- > 0) await store.commit(makeBatch());
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const us = cpu.user + cpu.system;
    return { cpuUsPerCommit: us / batches, cpuUsPerEntry: us / (batches * perBatch), commitsPerSec: batches / seconds };
  } finally {
    await store.close();
    await admin(url, `DROP SCHEMA ${schema} CASCADE`);
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), FLAGS);
  if (flags['help']) {
    process.stdout.write(usage('bench pg-commit-path', FLAGS));
    return;
  }
  const url = flags['url'] as string;
  const builds: { name: string; open: Open }[] = [];
  const load = async (path: string) => ((await import(path)) as { openPostgresStore: Open }).openPostgresStore;
  if (flags['against']) builds.push({ name: 'against', open: await load(pathToFileURL(resolve(flags['against'] as string)).href) });
  builds.push({ name: 'this', open: await load('../src/store/postgres.js') });
  const results = new Map<string, Result[]>(builds.map((b) => [b.name, []]));
  let n = 0;
  for (let round = 0; round < (flags['rounds'] as number); round++) {
    for (const build of round % 2 === 0 ? builds : [...builds].reverse()) {
      const r = await phase(build.open, url, ++n, flags);
      results.get(build.name)!.push(r);
      process.stdout.write(
        `${build.name.padEnd(8)} round ${round + 1}: ${r.cpuUsPerCommit.toFixed(0)} µs CPU/commit, ${r.cpuUsPerEntry.toFixed(2)} µs/entry, ${r.commitsPerSec.toFixed(0)} commits/s (load ${(await loadAvg()).join(' ')})\n`,
      );
    }
  }
  for (const [name, rs] of results) {
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    process.stdout.write(
      `${name.padEnd(8)} median: ${median(rs.map((r) => r.cpuUsPerCommit)).toFixed(0)} µs CPU/commit, ${median(rs.map((r) => r.cpuUsPerEntry)).toFixed(2)} µs/entry, ${median(rs.map((r) => r.commitsPerSec)).toFixed(0)} commits/s\n`,
    );
  }
}

async function loadAvg(): Promise<string[]> {
  const { loadavg } = await import('node:os');
  return loadavg().map((l) => l.toFixed(2));
}

await main();
