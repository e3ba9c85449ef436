/**
 * Sizes of the cluster benchmark. The defaults run in about ten minutes on 2
 * cores; `--quick` shrinks every phase (fewer messages, 3 kills, 5 s windows)
 * for a try-out whose takeover numbers are too few to judge the target by.
 */
import { resolve } from 'node:path';
import { parseFlags, usage, UsageError, type FlagSpec } from '../src/cli/args.js';

export interface ClusterBenchConfig {
  /** Cluster sizes to measure, e.g. [1, 2, 3]; the single PostgreSQL node is always measured too. */
  nodeCounts: number[];
  clients: number;
  convs: number;
  window: number;
  messages: number;
  warmup: number;
  bodyBytes: number;
  leaseMs: number;
  kills: number;
  /** The window after each kill whose ack latency is compared with steady state, and the steady window before the first kill. */
  afterKillMs: number;
  /** Paced load of the takeover phase, msgs/s; 0: half of the measured 3-node rate. */
  takeoverRate: number;
  /** Pause before resending a send answered `unavailable`. */
  retryMs: number;
  /** Wait for PostgreSQL's backends to flush their transaction counts (at most 10 s after they go idle). */
  statsSettleMs: number;
  timeoutMs: number;
  postgresUrl: string;
  natsUrl: string;
  /** Length of each half of the version-row probe (cluster-pg-probe.ts); 0: no probe. */
  probeMs: number;
  /** Directory for the nodes' CPU profiles (node --cpu-prof, written when a node exits on SIGTERM), or undefined. */
  profileDir: string | undefined;
  quick: boolean;
  keepDb: boolean;
}

const FLAGS: Record<string, FlagSpec> = {
  nodes: { kind: 'string', default: '1,2,3', help: 'cluster sizes to measure, comma-separated (takeover runs on 3)' },
  clients: { kind: 'int', default: 48, min: 2, max: 2000, help: 'clients (one user and device each), spread over the nodes round robin' },
  convs: { kind: 'int', default: 24, min: 1, help: 'group conversations; client i sends into conversation i mod convs' },
  window: { kind: 'int', default: 8, min: 1, max: 1000, help: 'unacknowledged sends each client keeps in flight' },
  messages: { kind: 'int', default: 60_000, min: 100, help: 'measured messages per cluster size' },
  warmup: { kind: 'int', default: 6000, min: 0, help: 'unmeasured messages first, per cluster size' },
  body: { kind: 'int', default: 100, min: 0, max: 60_000, help: 'bytes of text in each message body' },
  'lease-ms': { kind: 'int', default: 2000, min: 100, max: 60_000, help: "the nodes' --lease-ms" },
  kills: { kind: 'int', default: 10, min: 0, max: 1000, help: 'kill -9 trials on the 3-node cluster (0: no takeover phase)' },
  'after-kill': { kind: 'duration', default: 30_000, min: 1000, max: 600_000, shown: '30s', help: 'ack latency window after each kill (and the steady window before the first)' },
  'takeover-rate': { kind: 'int', default: 0, min: 0, help: 'paced msgs/s during the takeover phase (0: half of the 3-node rate)' },
  'retry-ms': { kind: 'int', default: 25, min: 1, max: 10_000, help: 'pause before resending a send answered unavailable' },
  'stats-settle': { kind: 'duration', default: 11_000, min: 0, max: 120_000, shown: '11s', help: "wait for PostgreSQL's transaction counts to be flushed" },
  timeout: { kind: 'duration', default: 180_000, min: 1000, shown: '180s', help: 'longest any one phase may take' },
  'postgres-url': { kind: 'string', default: process.env['POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test', help: 'an existing database to create and drop the runs\' databases from' },
  'nats-url': { kind: 'string', default: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222', help: 'NATS server of the cluster' },
  probe: { kind: 'duration', default: 3000, min: 0, max: 60_000, shown: '3s', help: "each half of the version-row probe: commits/s on one shared counter row against a row each (0: none)" },
  profile: { kind: 'string', help: "write every node's CPU profile to this directory (read one with node dist/bench/cpuprofile.js FILE)" },
  quick: { kind: 'bool', default: false, help: 'a short run: 8,000 messages, 3 kills, 5 s windows (sizes given as flags still win)' },
  'keep-db': { kind: 'bool', default: false, help: 'do not drop the databases at the end (to look at them)' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

const QUICK: Record<string, string> = { messages: '8000', warmup: '1000', kills: '3', 'after-kill': '5s' };

export function readClusterConfig(argv: readonly string[]): ClusterBenchConfig | { exit: number; text: string } {
  let flags;
  try {
    const quick = argv.includes('--quick');
    // The quick sizes go first, so that a size given as a flag still wins.
    const preset = quick ? Object.entries(QUICK).map(([flag, value]) => `--${flag}=${value}`) : [];
    flags = parseFlags([...preset, ...argv], FLAGS);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return { exit: 2, text: `bench:cluster: ${error.message}\n${usage('bench:cluster', FLAGS)}` };
  }
  if (flags['help']) return { exit: 0, text: usage('bench:cluster', FLAGS) };
  const nodeCounts = String(flags['nodes']).split(',').map(Number);
  if (nodeCounts.some((n) => !Number.isInteger(n) || n < 1 || n > 8)) {
    return { exit: 2, text: `bench:cluster: flag --nodes takes cluster sizes from 1 to 8, got ${JSON.stringify(flags['nodes'])}\n` };
  }
  const clients = Number(flags['clients']);
  const convs = Number(flags['convs']);
  if (convs * 2 > clients) return { exit: 2, text: `bench:cluster: ${convs} conversations need at least ${convs * 2} clients (two members each)\n` };
  return {
    nodeCounts: [...new Set(nodeCounts)].sort((a, b) => a - b),
    clients,
    convs,
    window: Number(flags['window']),
    messages: Number(flags['messages']),
    warmup: Number(flags['warmup']),
    bodyBytes: Number(flags['body']),
    leaseMs: Number(flags['lease-ms']),
    kills: Number(flags['kills']),
    afterKillMs: Number(flags['after-kill']),
    takeoverRate: Number(flags['takeover-rate']),
    retryMs: Number(flags['retry-ms']),
    statsSettleMs: Number(flags['stats-settle']),
    timeoutMs: Number(flags['timeout']),
    postgresUrl: String(flags['postgres-url']),
    natsUrl: String(flags['nats-url']),
    probeMs: Number(flags['probe']),
    profileDir: flags['profile'] === undefined ? undefined : resolve(String(flags['profile'])),
    quick: Boolean(flags['quick']),
    keepDb: Boolean(flags['keep-db']),
  };
}
