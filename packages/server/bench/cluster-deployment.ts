/**
 * One deployment of the cluster benchmark: a fresh database, its node processes
 * (N cluster nodes, or the single PostgreSQL-backed node), and the clients,
 * spread over the nodes round robin, each sending into one group conversation.
 * Measures a closed-loop phase: acked msgs/s, ack latency, CPU per acked
 * message per node, forwarded share, bus messages and PostgreSQL commits per
 * message. At the end the log is checked against every ack received.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TokenAuthority } from '../src/server/auth.js';
import { ClusterClient, type AckRecord } from './cluster-client.js';
import type { ClusterBenchConfig } from './cluster-config.js';
import { createBenchDatabase, type BenchDatabase, type Violations } from './cluster-db.js';
import { awaitSettled, NodeProcess, type ClusterView } from './cluster-nodes.js';
import { messageBody } from './e2e-config.js';
import { phaseStats, runWindowed, type PhaseStats } from './load.js';

export const FORWARDED = 'sequent_cluster_forwarded_total';
export const BUS_PUBLISHED = 'sequent_cluster_bus_published_total';
const BATCHES = 'sequent_commit_batch_entries_count';
const BATCH_ENTRIES = 'sequent_commit_batch_entries_sum';
const FORWARD_UNAVAILABLE = 'sequent_cluster_forward_unavailable_total';
const COUNTERS = [FORWARDED, BUS_PUBLISHED, FORWARD_UNAVAILABLE, BATCHES, BATCH_ENTRIES] as const;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (n: number, places = 2) => Math.round(n * 10 ** places) / 10 ** places;

export interface Deployment {
  label: string;
  cluster: boolean;
  db: BenchDatabase;
  nodes: NodeProcess[];
  clients: ClusterClient[];
  /** Which node each client belongs to (index into nodes). */
  homes: number[];
  acks: AckRecord[];
  /** Listeners of every ack (the takeover phase watches them). */
  ackListeners: Set<(ack: AckRecord) => void>;
  views: ClusterView[];
}

export interface SteadyResult extends PhaseStats {
  /** CPU µs per acked message, each node's and all nodes' together. */
  cpu_us_per_msg_by_node: number[];
  cpu_us_per_msg: number;
  /** Each node's CPU seconds per wall second. */
  cores_by_node: number[];
  /** Each node's CPU seconds per wall second while the deployment stood idle just before (lease ticks, heartbeats, timers): paid per second, not per message. */
  idle_cores_by_node: number[];
  forwarded_share: number | null;
  bus_msgs_per_msg: number | null;
  pg_commits_per_1k_msgs: number;
  /** Commits of the database per second of the phase (idle commits included). */
  pg_commits_per_s: number;
  /** Commits per second of the idle deployment (heartbeats, renewals), subtracted from the phase's count over the settle waits. */
  pg_idle_commits_per_s: number;
  entries_per_batch: number | null;
  /** Sends the clients resent after an `unavailable`, and forwards the gateways answered `unavailable` themselves. */
  resends: number;
  forwards_unavailable: number | null;
}

/** One directory per node of a deployment, so that every profile names its node. */
function profileDirOf(root: string, label: string, node: number): string {
  const dir = join(root, `${label}-n${node + 1}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function openDeployment(config: ClusterBenchConfig, label: string, cluster: boolean, count: number, log: (line: string) => void): Promise<Deployment> {
  const db = await createBenchDatabase(config.postgresUrl, `sequent_bench_cluster_${process.pid}_${label}`);
  const secret = randomBytes(24).toString('base64url');
  const nodes = Array.from(
    { length: count },
    (_, i) =>
      new NodeProcess({
        name: `n${i + 1}`,
        cluster,
        postgresUrl: db.url,
        natsUrl: config.natsUrl,
        leaseMs: config.leaseMs,
        secret,
        nodeArgs: config.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDirOf(config.profileDir, label, i)],
      }),
  );
  const deployment: Deployment = { label, cluster, db, nodes, clients: [], homes: [], acks: [], ackListeners: new Set(), views: [] };
  try {
    // All at once, as an operator's supervisor would start them, on the empty database.
    await Promise.all(nodes.map((n) => n.start()));
    log(`${label}: ${nodes.map((n) => `${n.spec.name} pid ${n.pid} port ${n.port}`).join(', ')}, database ${db.name}`);
    if (cluster) {
      const started = performance.now();
      deployment.views = await awaitSettled(nodes, 120_000);
      log(`${label}: settled in ${Math.round(performance.now() - started)} ms: ${deployment.views.map((v) => `${v.node} holds ${v.held.length}`).join(', ')} of ${deployment.views[0]!.slots} slots`);
    }
    const tokens = new TokenAuthority(secret);
    const bodyJson = JSON.stringify(messageBody(config.bodyBytes));
    for (let i = 0; i < config.clients; i++) {
      const home = i % count;
      const user = `u${i}`;
      deployment.homes.push(home);
      deployment.clients.push(
        new ClusterClient({
          user,
          token: await tokens.mint(user, 'd1'),
          conv: `g:c${i % config.convs}`,
          bodyJson,
          retryMs: config.retryMs,
          log,
          route: () => routeOf(nodes, home, i),
          onAck: (ack) => {
            deployment.acks.push(ack);
            for (const listener of deployment.ackListeners) listener(ack);
          },
        }),
      );
    }
    await Promise.all(deployment.clients.map((c) => c.connect()));
    for (let c = 0; c < config.convs; c++) {
      // Client c (the first member) creates the group with the others in it.
      const others: string[] = [];
      for (let i = c + config.convs; i < config.clients; i += config.convs) others.push(`u${i}`);
      await createGroup(deployment.clients[c]!, `g:c${c}`, others, 30_000);
    }
    return deployment;
  } catch (error) {
    await closeDeployment(deployment, config, log).catch(() => {});
    throw error;
  }
}

/** The client's own node while it runs, else one of the live others (spread by client). */
function routeOf(nodes: readonly NodeProcess[], home: number, client: number): string {
  if (nodes[home]!.alive) return nodes[home]!.url;
  const others = nodes.filter((n) => n.alive);
  return others.length === 0 ? nodes[home]!.url : others[client % others.length]!.url;
}

/** `create`, resent while a node answers `unavailable` (slots still moving right after start). */
async function createGroup(client: ClusterClient, conv: string, members: string[], timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await client.request({ t: 'create', conv, members });
      return;
    } catch (error) {
      const message = (error as Error).message;
      if (!message.startsWith('unavailable') || performance.now() > deadline) throw new Error(`create ${conv}: ${message}`);
      await sleep(50);
    }
  }
}

interface Sample {
  at: number;
  cpu: number[];
  counters: Record<string, number>[];
}

async function sample(nodes: readonly NodeProcess[]): Promise<Sample> {
  const at = performance.now();
  const cpu = nodes.map((n) => n.cpuSeconds());
  const counters = await Promise.all(nodes.map((n) => n.counters(COUNTERS)));
  return { at, cpu, counters };
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/** Warm-up, then `messages` sends at full speed with every client's window full. */
export async function measureSteady(d: Deployment, config: ClusterBenchConfig, log: (line: string) => void): Promise<SteadyResult> {
  const resendsBefore = () => sum(d.clients.map((c) => c.resends));
  if (config.warmup > 0) await runWindowed(d.clients, config.warmup, config.window, config.timeoutMs);
  // The commit counts of the warm-up reach pg_stat_database only once every backend has flushed them.
  await sleep(config.statsSettleMs);
  const idleFrom = { at: performance.now(), commits: await d.db.commits(), cpu: d.nodes.map((n) => n.cpuSeconds()) };
  const idleMs = Math.min(5000, Math.max(1000, config.statsSettleMs / 2));
  await sleep(idleMs);
  const commitsBefore = await d.db.commits();
  const idleS = (performance.now() - idleFrom.at) / 1000;
  const idleRate = (commitsBefore - idleFrom.commits) / idleS;
  const idleCores = d.nodes.map((n, i) => round((n.cpuSeconds() - idleFrom.cpu[i]!) / idleS, 3));
  const resends0 = resendsBefore();
  const before = await sample(d.nodes);
  const phase = await runWindowed(d.clients, config.messages, config.window, config.timeoutMs);
  const after = await sample(d.nodes);
  const settleFrom = performance.now();
  await sleep(config.statsSettleMs);
  const commitsAfter = await d.db.commits();
  const idleCommits = (idleRate * (performance.now() - settleFrom)) / 1000;
  const commits = Math.max(0, commitsAfter - commitsBefore - idleCommits);
  const acked = phase.messages;
  const wallS = (after.at - before.at) / 1000;
  const cpuByNode = d.nodes.map((_, i) => after.cpu[i]! - before.cpu[i]!);
  const delta = (name: string) => sum(d.nodes.map((_, i) => after.counters[i]![name]! - before.counters[i]![name]!));
  const batches = delta(BATCHES);
  for (const name of d.cluster ? [FORWARDED, BUS_PUBLISHED] : []) {
    if (Number.isNaN(delta(name))) log(`${d.label}: warning: a node's /metrics has no ${name}; its per-message value is n/a`);
  }
  const stats = phaseStats([phase]);
  const result: SteadyResult = {
    ...stats,
    cpu_us_per_msg_by_node: cpuByNode.map((s) => round((s * 1e6) / acked, 1)),
    cpu_us_per_msg: round((sum(cpuByNode) * 1e6) / acked, 1),
    cores_by_node: cpuByNode.map((s) => round(s / wallS)),
    idle_cores_by_node: idleCores,
    forwarded_share: d.cluster ? round(delta(FORWARDED) / acked, 3) : null,
    bus_msgs_per_msg: d.cluster ? round(delta(BUS_PUBLISHED) / acked, 3) : null,
    pg_commits_per_1k_msgs: round((commits * 1000) / acked, 1),
    pg_commits_per_s: Math.round(commits / (phase.elapsedMs / 1000)),
    pg_idle_commits_per_s: round(idleRate, 1),
    entries_per_batch: batches > 0 && Number.isFinite(batches) ? round(delta(BATCH_ENTRIES) / batches, 1) : null,
    resends: resendsBefore() - resends0,
    forwards_unavailable: d.cluster ? delta(FORWARD_UNAVAILABLE) : null,
  };
  log(
    `${d.label}: ${stats.msgs_per_s} acked msgs/s, p50 ${stats.p50_ms} ms, p99 ${stats.p99_ms} ms; CPU µs/msg ${result.cpu_us_per_msg} ` +
      `(${result.cpu_us_per_msg_by_node.join(' + ')}); forwarded ${result.forwarded_share ?? '-'}, bus ${result.bus_msgs_per_msg ?? '-'}/msg; ` +
      `PostgreSQL ${result.pg_commits_per_1k_msgs} commits per 1,000 msgs, ${result.pg_commits_per_s} commits/s (idle ${result.pg_idle_commits_per_s}/s); ` +
      `${result.entries_per_batch ?? '?'} entries per batch; ${result.resends} resends; idle cores ${idleCores.join(' + ')}`,
  );
  return result;
}

/** Waits (bounded) for every unacked send to be acked, closes clients and nodes, checks the log, drops the database. */
export async function closeDeployment(d: Deployment, config: ClusterBenchConfig, log: (line: string) => void): Promise<Violations | undefined> {
  const deadline = performance.now() + Math.min(config.timeoutMs, 60_000);
  while (d.clients.some((c) => c.unacked > 0) && performance.now() < deadline) await sleep(50);
  const unacked = sum(d.clients.map((c) => c.unacked));
  if (unacked > 0) log(`${d.label}: ${unacked} sends still unacked when the deployment closed`);
  for (const client of d.clients) client.close();
  for (const node of d.nodes) await node.stop();
  let violations: Violations | undefined;
  try {
    if (d.acks.length > 0) {
      violations = await d.db.check(d.acks, sum(d.clients.map((c) => c.seqMismatches)));
      log(`${d.label}: log check over ${violations.acked} acks and ${violations.entries} entries: ${violations.total} violations ${JSON.stringify(violations)}`);
    }
  } finally {
    for (const node of d.nodes) node.dispose();
    if (config.keepDb) log(`${d.label}: kept database ${d.db.name}`);
    else await d.db.drop();
  }
  return violations;
}
