/**
 * `sequent-server chaos`: a reproducible fault run against the real server; exits 1 on any broken promise.
 * `sequent-server chaos check FILE`: judges a saved history again, with the same checker and report.
 */
import { dirname, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { checkHistoryStream } from '../chaos/checker.js';
import { readHistoryFile } from '../chaos/history-file.js';
import { DEFAULT_RATES, type FaultRates } from '../chaos/plan.js';
import { formatViolation, renderSummary, ReportBuilder, writeReport } from '../chaos/report.js';
import { runChaos } from '../chaos/runner.js';
import { DEFAULT_CHAOS_LEASE_MS, resolvePgDrop } from '../chaos/cluster-run.js';
import { parseFlags, usage, UsageError, type FlagSpec, type ParsedFlags } from './args.js';

const rate = (name: keyof FaultRates, help: string): FlagSpec => ({ kind: 'int', default: DEFAULT_RATES[name], min: 0, max: 6000, help: `${help}, per minute` });

const FLAGS: Record<string, FlagSpec> = {
  duration: { kind: 'duration', default: 30_000, min: 2000, max: 3_600_000, help: 'how long clients send and faults happen (e.g. 30s, 2m)' },
  users: { kind: 'int', default: 10, min: 2, max: 200, help: 'users, each with --devices devices' },
  devices: { kind: 'int', default: 2, min: 1, max: 5, help: 'devices per user' },
  groups: { kind: 'int', default: 5, min: 0, max: 100, help: 'groups (plus a few DMs per user)' },
  seed: { kind: 'int', min: 0, max: 2 ** 32 - 1, help: 'seed of the fault schedule (default: random, printed)' },
  out: { kind: 'string', default: './chaos-out', help: 'directory for the report, the SVG chart, the history and the run data' },
  'send-every': { kind: 'duration', min: 5, max: 600_000, help: 'mean gap between two sends of one device (e.g. 120ms, 2s; default 120ms, longer beyond 20 devices: about 167 sends a second in all)' },
  'kill-every': { kind: 'duration', default: 60_000 / DEFAULT_RATES.serverKill, min: 1000, max: 3_600_000, help: 'mean gap between two server SIGKILLs (e.g. 10s)' },
  'client-kill-every': { kind: 'duration', default: 60_000 / DEFAULT_RATES.clientKill, min: 1000, max: 3_600_000, help: 'mean gap between two client crashes' },
  'cut-rate': rate('cut', 'connections cut'),
  'dup-rate': rate('dupToServer', 'frames duplicated in each direction'),
  'reorder-rate': rate('reorderToClient', 'server frames held back behind the next'),
  'stall-rate': rate('stall', 'connections whose frames vanish for 0.5–4 s (silent drops)'),
  'half-open-rate': rate('halfOpen', 'connections whose frames vanish until the client gives up'),
  'lost-reply-rate': rate('lostReply', 'sends whose answer vanishes with the connection'),
  'pause-rate': rate('serverPause', 'server SIGSTOPs of 0.3–3 s'),
  'clock-rate': rate('clockStep', 'steps of the server wall clock by up to ±30 s'),
  'membership-rate': rate('membership', 'membership changes'),
  'chat-share': { kind: 'int', default: 30, min: 0, max: 100, help: "percent of a device's turns that edit, delete, react, read, list or try a forbidden edit instead of sending" },
  delay: { kind: 'int', default: 25, min: 0, max: 10_000, help: 'largest random delay of a frame, in ms, each direction' },
  postgres: { kind: 'bool', default: false, help: 'keep the log in a fresh PostgreSQL database (admin URL from SEQUENT_TEST_POSTGRES_URL), dropped after' },
  'min-acks': { kind: 'int', min: 0, max: 100_000_000, help: 'fail when fewer messages were acked (default: a quarter of the planned sends)' },
  cluster: { kind: 'bool', default: false, help: 'run --nodes `serve --cluster` nodes on a fresh PostgreSQL database and NATS (SEQUENT_NATS_URL)' },
  nodes: { kind: 'int', min: 1, max: 16, help: 'nodes of a --cluster run (default 3)' },
  'lease-ms': { kind: 'int', default: DEFAULT_CHAOS_LEASE_MS, min: 100, max: 60_000, help: 'the nodes\' slot lease in a --cluster run' },
  'pg-drop': { kind: 'string', default: 'auto', help: 'how a node\'s PostgreSQL packets are dropped: nft (a network namespace per node), proxy (user space), auto (nft when possible)' },
  'nats-cut-rate': rate('natsCut', 'NATS connections of one node (a third of the time all) cut, --cluster'),
  'pg-drop-rate': rate('pgDrop', "one node's PostgreSQL packets dropped for 1.5–3 leases, --cluster"),
  'live-bound': { kind: 'duration', min: 100, max: 600_000, help: 'after the faults stop, every send must be acked within this (--cluster; default 4 leases + 10 s)' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

const CHECK_FLAGS: Record<string, FlagSpec> = {
  out: { kind: 'string', help: "directory for the report (default: the history's own directory)" },
  'min-acks': { kind: 'int', default: 1, min: 0, max: 100_000_000, help: 'fail when fewer messages were acked' },
  'min-final-logs': { kind: 'int', default: 1, min: 0, max: 100_000_000, help: 'fail when fewer final logs were read' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

function parse(argv: string[], specs: Record<string, FlagSpec>, command: string): ParsedFlags | number {
  try {
    return parseFlags(argv, specs);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`sequent-server ${command}: ${error.message}\n${usage(command, specs)}`);
    return 2;
  }
}

export async function runChaosCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'check') return runCheck(argv.slice(1));
  const flags = parse(argv, FLAGS, 'chaos');
  if (typeof flags === 'number') return flags;
  if (flags['help']) {
    process.stdout.write(usage('chaos', FLAGS));
    return 0;
  }
  const clustered = Boolean(flags['cluster']);
  if (!clustered && flags['nodes'] !== undefined) {
    process.stderr.write('sequent-server chaos: --nodes needs --cluster\n');
    return 2;
  }
  const pgDropFlag = String(flags['pg-drop']);
  if (pgDropFlag !== 'auto' && pgDropFlag !== 'nft' && pgDropFlag !== 'proxy') {
    process.stderr.write(`sequent-server chaos: flag --pg-drop takes auto, nft or proxy, got ${JSON.stringify(pgDropFlag)}\n`);
    return 2;
  }
  let cluster;
  if (clustered) {
    try {
      const pgDrop = await resolvePgDrop(pgDropFlag, (line) => process.stderr.write(`${line}\n`));
      cluster = {
        nodes: Number(flags['nodes'] ?? 3),
        leaseMs: Number(flags['lease-ms']),
        pgDrop,
        ...(flags['live-bound'] === undefined ? {} : { liveBoundMs: Number(flags['live-bound']) }),
      };
    } catch (error) {
      process.stderr.write(`sequent-server chaos: ${(error as Error).message}\n`);
      return 2;
    }
  }
  const seed = flags['seed'] === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(flags['seed']);
  const outDir = resolve(String(flags['out']));
  const perMinute = (flag: string) => Number(flags[flag]);
  const dup = perMinute('dup-rate');
  const delay = Number(flags['delay']);
  process.stdout.write(`sequent-server chaos: seed ${seed}, ${Number(flags['duration']) / 1000} s, writing to ${outDir}\n`);
  const result = await runChaos({
    durationMs: Number(flags['duration']),
    users: Number(flags['users']),
    devicesPerUser: Number(flags['devices']),
    groups: Number(flags['groups']),
    seed,
    outDir,
    ...(flags['send-every'] === undefined ? {} : { sendEveryMs: Number(flags['send-every']) }),
    rates: {
      serverKill: 60_000 / Number(flags['kill-every']),
      clientKill: 60_000 / Number(flags['client-kill-every']),
      cut: perMinute('cut-rate'),
      dupToServer: dup,
      dupToClient: dup,
      reorderToClient: perMinute('reorder-rate'),
      stall: perMinute('stall-rate'),
      halfOpen: perMinute('half-open-rate'),
      lostReply: perMinute('lost-reply-rate'),
      serverPause: perMinute('pause-rate'),
      clockStep: perMinute('clock-rate'),
      membership: perMinute('membership-rate'),
      natsCut: perMinute('nats-cut-rate'),
      pgDrop: perMinute('pg-drop-rate'),
    },
    faults: { toServerDelayMs: { min: 0, max: delay }, toClientDelayMs: { min: 0, max: delay } },
    chatShare: Number(flags['chat-share']) / 100,
    postgres: Boolean(flags['postgres']),
    ...(cluster ? { cluster } : {}),
    ...(flags['min-acks'] === undefined ? {} : { floor: { acks: Number(flags['min-acks']) } }),
    log: (line) => process.stdout.write(`  ${line}\n`),
  });
  process.stdout.write(`\n${result.summary}\n`);
  process.stdout.write(`chart: ${result.files.svg}\nhistory: ${result.files.history}\n`);
  if (result.violations.length > 0) {
    process.stdout.write(`\n${result.violations.length} violation(s); first:\n${formatViolation(result.violations[0]!)}\nreplay with --seed ${seed}\n`);
    return 1;
  }
  return 0;
}

/** `sequent-server chaos check FILE [--out DIR]`: 0 when the history keeps every promise, 1 when not, 2 for bad usage. */
async function runCheck(argv: string[]): Promise<number> {
  const file = argv[0] !== undefined && !argv[0].startsWith('--') ? argv[0] : undefined;
  const flags = parse(file === undefined ? argv : argv.slice(1), CHECK_FLAGS, 'chaos check');
  if (typeof flags === 'number') return flags;
  if (flags['help'] || file === undefined) {
    (file === undefined && !flags['help'] ? process.stderr : process.stdout).write(`usage: sequent-server chaos check FILE [flags]\n${usage('chaos check', CHECK_FLAGS)}`);
    return file === undefined && !flags['help'] ? 2 : 0;
  }
  const path = resolve(file);
  if (!existsSync(path)) {
    process.stderr.write(`sequent-server chaos check: no such file ${path}\n`);
    return 2;
  }
  const builder = new ReportBuilder();
  let check;
  try {
    check = await checkHistoryStream(() => readHistoryFile(path), { floor: { acks: Number(flags['min-acks']), finalLogs: Number(flags['min-final-logs']) } }, (e) => builder.add(e));
  } catch (error) {
    process.stderr.write(`sequent-server chaos check: ${(error as Error).message}\n`);
    return 2;
  }
  const outDir = resolve(String(flags['out'] ?? dirname(path)));
  const written = await writeReport(outDir, builder, { check });
  process.stdout.write(renderSummary(written.report, check.violations));
  process.stdout.write(`report: ${written.jsonPath}\n`);
  return check.violations.length > 0 || check.notListed > 0 ? 1 : 0;
}
