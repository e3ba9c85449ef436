/**
 * `npm run bench:chat -- --scenarios ejabberd`: a real chat server as the peer.
 * The same rooms on Sequent (`--durability full` and `process`, two servers)
 * and on ejabberd (MUC rooms with MAM on mnesia, clients on `@xmpp/client` with
 * stream management): the same clients, members per room, message count,
 * window and body, the clients spread over the same client processes
 * (chat-xmpp-clients.ts). The systems take turns round by round, so that the
 * shared machine's load falls on all of them.
 *
 * Per system: messages/s acked to the sender, deliveries/s to the other
 * members, p50/p99 send → ack; for ejabberd also the p50/p99 of the XEP-0198
 * `<a/>`. The server's fsync-family calls are counted per round (perf), which is
 * what says whether an ack waited for the disk, and the bytes it wrote. ejabberd
 * without MAM runs beside, for scale. ejabberd not installed (or not startable)
 * is a `skipped` row with the reason.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { FlagSpec, ParsedFlags } from '../src/cli/args.js';
import { processCpuSeconds } from './cpu.js';
import type { FromClients, ToClients } from './chat-xmpp-clients.js';
import { roomOf, startEjabberdPeer, startSequentPeer, type Layout, type Peer } from './chat-xmpp-peers.js';
import { countSyncs } from './chat-xmpp-syncs.js';
import { quantile, quotaOf } from './load.js';
import { markdownTable, ratio, writeResults, type Row } from './report.js';

export const EJABBERD_FLAGS: Record<string, FlagSpec> = {
  'ejabberd-clients': { kind: 'int', default: 20, min: 2, max: 2000, help: 'ejabberd scenario: clients, one user each' },
  'ejabberd-rooms': { kind: 'int', default: 5, min: 1, help: 'ejabberd scenario: rooms; client i is in room i mod rooms' },
  // ejabberd's mnesia archive gets slower as a room's archive grows (see docs/bench.md): sized so that its rounds end.
  'ejabberd-messages': { kind: 'int', default: 12_000, min: 1, help: 'ejabberd scenario: measured messages per system' },
  'ejabberd-warmup': { kind: 'int', default: 1200, min: 0, help: 'ejabberd scenario: unmeasured messages per system first' },
  'ejabberd-rounds': { kind: 'int', default: 3, min: 1, max: 100, help: 'ejabberd scenario: rounds the measured messages are split into, the systems taking turns' },
  'ejabberd-window': { kind: 'int', default: 16, min: 1, max: 1000, help: 'ejabberd scenario: unacknowledged sends per client' },
  'ejabberd-procs': { kind: 'int', default: 2, min: 1, max: 64, help: 'ejabberd scenario: client processes the clients are spread over' },
};

export interface EjabberdScenarioConfig extends Layout {
  messages: number;
  warmup: number;
  rounds: number;
  window: number;
  procs: number;
  body: string;
  timeoutMs: number;
}

export function ejabberdScenarioConfig(flags: ParsedFlags, body: string, timeoutMs: number): EjabberdScenarioConfig {
  const n = (name: string) => Number(flags[`ejabberd-${name}`]);
  return { clients: n('clients'), rooms: n('rooms'), messages: n('messages'), warmup: n('warmup'), rounds: n('rounds'), window: n('window'), procs: n('procs'), body, timeoutMs };
}

/** A forked client process, asked one thing at a time. */
class ClientProcess {
  private readonly child: ChildProcess;
  private waiting: ((m: FromClients) => void) | undefined;
  readonly exited: Promise<void>;

  constructor() {
    this.child = fork(fileURLToPath(new URL('./chat-xmpp-clients.js', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromClients) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.(m);
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    void this.exited.then(() => this.waiting?.({ type: 'failed', error: 'client process exited' }));
  }

  async ask(message: ToClients): Promise<FromClients> {
    const reply = await new Promise<FromClients>((resolve) => {
      this.waiting = resolve;
      this.child.send(message);
    });
    if (reply.type === 'failed') throw new Error(reply.error);
    return reply;
  }

  async close(): Promise<void> {
    if (this.child.connected) this.child.send({ type: 'close' } satisfies ToClients);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

interface RoundResult {
  messages: number;
  elapsedMs: number;
  latencies: number[];
  transportAcks: number[];
  deliveries: number;
  expected: number;
  deliveryMs: number;
  serverCores: number | null;
  clientCores: number;
  syncs: number | undefined;
  /** Bytes the server process sent toward storage (/proc/<pid>/io write_bytes: file pages it dirtied). */
  written: number | undefined;
}

function bytesWritten(pid: number): number | undefined {
  try {
    const bytes = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1];
    return bytes === undefined ? undefined : Number(bytes);
  } catch {
    return undefined;
  }
}

interface Entrant {
  key: string;
  name: string;
  /** What its ack means, for the table. */
  ack: string;
  start(): Promise<Peer>;
  peer?: Peer;
  procs: ClientProcess[];
  skipped?: string;
  rounds: RoundResult[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const wall = () => performance.timeOrigin + performance.now();
const round2 = (n: number) => Math.round(n * 100) / 100;

async function open(entrant: Entrant, config: EjabberdScenarioConfig): Promise<void> {
  const peer = await entrant.start();
  entrant.peer = peer;
  if (peer.version !== undefined) entrant.name = entrant.name.replace('ejabberd', `ejabberd ${peer.version}`);
  entrant.procs = Array.from({ length: config.procs }, () => new ClientProcess());
  await Promise.all(
    entrant.procs.map((p, k) =>
      p.ask({ type: 'connect', system: peer.system, url: peer.url, domain: peer.domain, clients: peer.specs.filter((_, i) => i % config.procs === k), body: config.body, timeoutMs: config.timeoutMs }),
    ),
  );
}

async function close(entrant: Entrant): Promise<void> {
  await Promise.all(entrant.procs.map((p) => p.close()));
  entrant.procs = [];
  await entrant.peer?.stop();
  entrant.peer = undefined;
}

async function runRound(entrant: Entrant, config: EjabberdScenarioConfig, messages: number): Promise<RoundResult> {
  const { procs, peer } = entrant;
  const roomSize = (r: number) => Array.from({ length: config.clients }, (_, i) => i).filter((i) => roomOf(config, i) === r).length;
  const quota = (i: number) => quotaOf(messages, config.clients, i);
  const quotas = procs.map((_, k) => Array.from({ length: config.clients }, (_, i) => i).filter((i) => i % config.procs === k).reduce((sum, i) => sum + quota(i), 0));
  const expected = Array.from({ length: config.clients }, (_, i) => quota(i) * (roomSize(roomOf(config, i)) - 1)).reduce((a, b) => a + b, 0);
  const reports = () => Promise.all(procs.map((p) => p.ask({ type: 'report' }))) as Promise<Extract<FromClients, { type: 'report' }>[]>;

  const before = await reports();
  const delivered0 = before.reduce((n, r) => n + r.deliveries, 0);
  const syncs = countSyncs(peer!.pid);
  await sleep(200); // perf attaches
  const wall0 = wall();
  const cpu0 = processCpuSeconds(peer!.pid);
  const written0 = bytesWritten(peer!.pid);
  const ran = (await Promise.all(procs.map((p, k) => p.ask({ type: 'run', messages: quotas[k]!, window: config.window, timeoutMs: config.timeoutMs })))) as Extract<FromClients, { type: 'ran' }>[];
  const startedAt = Math.min(...ran.map((r) => r.startedAt));
  const endedAt = Math.max(...ran.map((r) => r.endedAt));
  // The pushes: done when the other members have every message, or nothing moved for 10 s.
  let after = await reports();
  let delivered = 0;
  let lastProgress = wall();
  for (;;) {
    const total = after.reduce((n, r) => n + r.deliveries, 0) - delivered0;
    if (total > delivered) lastProgress = wall();
    delivered = total;
    if (delivered >= expected || wall() - lastProgress > 10_000) break;
    await sleep(50);
    after = await reports();
  }
  const cpu1 = processCpuSeconds(peer!.pid);
  const written1 = bytesWritten(peer!.pid);
  const seconds = (wall() - wall0) / 1000;
  const syncCount = await syncs.stop();
  const lastDelivery = Math.max(...after.map((r) => r.lastAt));
  const clientCpu = after.reduce((n, r, k) => n + r.cpuSeconds - before[k]!.cpuSeconds, 0);
  return {
    messages,
    elapsedMs: endedAt - startedAt,
    latencies: ran.flatMap((r) => r.latencies),
    transportAcks: ran.flatMap((r) => r.transportAcks),
    deliveries: delivered,
    expected,
    deliveryMs: lastDelivery - startedAt,
    serverCores: cpu0 === undefined || cpu1 === undefined ? null : round2((cpu1 - cpu0) / seconds),
    clientCores: round2(clientCpu / seconds),
    syncs: syncCount,
    written: written0 === undefined || written1 === undefined ? undefined : written1 - written0,
  };
}

function summarize(entrant: Entrant): Row {
  const rounds = entrant.rounds;
  const sum = (pick: (r: RoundResult) => number) => rounds.reduce((n, r) => n + pick(r), 0);
  const sorted = (values: number[]) => Float64Array.from(values).sort();
  const latencies = sorted(rounds.flatMap((r) => r.latencies));
  const transport = sorted(rounds.flatMap((r) => r.transportAcks));
  const messages = sum((r) => r.messages);
  const cores = rounds.map((r) => r.serverCores);
  const syncs = rounds.every((r) => r.syncs !== undefined) ? sum((r) => r.syncs!) : null;
  const written = rounds.every((r) => r.written !== undefined) ? sum((r) => r.written!) : null;
  return {
    name: entrant.name,
    ack: entrant.ack,
    acked_msgs_per_s: Math.round(messages / (sum((r) => r.elapsedMs) / 1000)),
    deliveries_per_s: Math.round(sum((r) => r.deliveries) / (sum((r) => r.deliveryMs) / 1000)),
    p50_ms: round2(quantile(latencies, 0.5)),
    p99_ms: round2(quantile(latencies, 0.99)),
    transport_ack_p50_ms: transport.length > 0 ? round2(quantile(transport, 0.5)) : null,
    transport_ack_p99_ms: transport.length > 0 ? round2(quantile(transport, 0.99)) : null,
    fsyncs_per_1k_msgs: syncs === null ? null : round2((syncs * 1000) / messages),
    server_disk_kb_per_msg: written === null ? null : round2(written / 1024 / messages),
    server_cores: cores.every((c) => c !== null) ? round2(cores.reduce((a, b) => a! + b!, 0)! / cores.length) : null,
    client_cores: round2(sum((r) => r.clientCores) / rounds.length),
    delivered_share: round2(sum((r) => r.deliveries) / sum((r) => r.expected)),
    round_msgs_per_s: rounds.map((r) => Math.round(r.messages / (r.elapsedMs / 1000))).join(' / '),
  };
}

export async function runEjabberdScenario(config: EjabberdScenarioConfig, defaults: boolean, log: (line: string) => void): Promise<void> {
  log(
    `ejabberd scenario: ${config.clients} clients in ${config.rooms} rooms over ${config.procs} client processes, ` +
      `${config.messages} messages per system in ${config.rounds} rounds after ${config.warmup} warmup, window ${config.window}, ${config.body.length}-byte bodies`,
  );
  const loadBefore = loadavg();
  const entrants: Entrant[] = [
    { key: 'sequent-full', name: 'sequent, --durability full', ack: 'ack: committed, WAL fsynced', start: () => startSequentPeer(config, 'full', log), procs: [], rounds: [] },
    { key: 'sequent-process', name: 'sequent, --durability process', ack: 'ack: committed, WAL written, no fsync', start: () => startSequentPeer(config, 'process', log), procs: [], rounds: [] },
    { key: 'ejabberd', name: 'ejabberd, MUC + MAM (mnesia)', ack: 'reflection: archived in mnesia, no fsync', start: () => startEjabberdPeer(config, true, log), procs: [], rounds: [] },
    // For scale, not for the targets: what the same rooms cost ejabberd without the archive.
    { key: 'ejabberd-no-mam', name: 'ejabberd, MUC without MAM', ack: 'reflection: routed, nothing stored', start: () => startEjabberdPeer(config, false, log), procs: [], rounds: [] },
  ];
  try {
    for (const entrant of entrants) {
      try {
        await open(entrant, config);
        if (config.warmup > 0) await runRound(entrant, config, config.warmup);
        log(`${entrant.key}: connected and warmed up with ${config.warmup} messages`);
      } catch (error) {
        // Sequent is ours: if it cannot run, the scenario fails. A peer that cannot is skipped.
        if (!entrant.key.startsWith('ejabberd')) throw error;
        entrant.skipped = error instanceof Error ? error.message : String(error);
        log(`${entrant.key}: skipped (${entrant.skipped})`);
        await close(entrant).catch(() => undefined);
      }
    }
    for (let r = 0; r < config.rounds; r++) {
      const running = entrants.filter((e) => !e.skipped);
      // Each round starts with another system, so that none always follows the same one.
      const turns = [...running.slice(r % running.length), ...running.slice(0, r % running.length)];
      for (const entrant of turns) {
        let result: RoundResult;
        try {
          result = await runRound(entrant, config, quotaOf(config.messages, config.rounds, r));
        } catch (error) {
          if (!entrant.key.startsWith('ejabberd')) throw error;
          entrant.skipped = `round ${r + 1} failed: ${error instanceof Error ? error.message : String(error)}`;
          log(`${entrant.key}: ${entrant.skipped}; its rounds so far: ${entrant.rounds.map((x) => Math.round(x.messages / (x.elapsedMs / 1000))).join(' / ')} msgs/s`);
          await close(entrant).catch(() => undefined);
          continue;
        }
        entrant.rounds.push(result);
        const sorted = Float64Array.from(result.latencies).sort();
        log(
          `round ${r + 1}/${config.rounds} ${entrant.key}: ${Math.round(result.messages / (result.elapsedMs / 1000))} msgs/s, ` +
            `p50 ${quantile(sorted, 0.5).toFixed(2)} ms, p99 ${quantile(sorted, 0.99).toFixed(2)} ms; ` +
            `${Math.round(result.deliveries / (result.deliveryMs / 1000))} deliveries/s (${result.deliveries}/${result.expected}); ` +
            `fsyncs ${result.syncs ?? '?'}, ${result.written === undefined ? '?' : Math.round(result.written / 1024)} KiB written; cores: server ${result.serverCores ?? '?'}, clients ${result.clientCores}`,
        );
      }
    }
  } finally {
    for (const entrant of entrants) await close(entrant).catch((error: unknown) => log(`${entrant.key}: close failed: ${String(error)}`));
  }

  const rows: Row[] = entrants.map((e) => (e.skipped ? { name: e.name, ack: e.ack, skipped: e.skipped.slice(0, 300) } : summarize(e)));
  const ratios: Record<string, number> = {};
  const ejabberd = rows[entrants.findIndex((e) => e.key === 'ejabberd')]!;
  for (const ours of rows.filter((_, i) => entrants[i]!.key.startsWith('sequent'))) {
    if (ejabberd['skipped'] !== undefined) break;
    ratios[`${ours.name} / ejabberd acked msgs/s`] = ratio(Number(ours['acked_msgs_per_s']), Number(ejabberd['acked_msgs_per_s']));
    ratios[`${ours.name} / ejabberd deliveries/s`] = ratio(Number(ours['deliveries_per_s']), Number(ejabberd['deliveries_per_s']));
  }
  const results = {
    rows,
    ratios,
    targets: Object.fromEntries(Object.entries(ratios).map(([name, value]) => [`${name} ≥ 3`, { value, met: value >= 3 }])),
    load_average: { before: loadBefore.map(round2), after: loadavg().map(round2) },
    config: { ...config, body: config.body.length },
  };
  // Only a run at the default sizes is a result; any other is printed, not kept.
  if (defaults) writeResults('chat-ejabberd', results);
  else process.stdout.write(`${markdownTable(results)}(not the default sizes: bench/results/chat-ejabberd.* left as they were)\n`);
  process.stdout.write(`load average (1/5/15 min): before ${results.load_average.before.join(' ')}, after ${results.load_average.after.join(' ')}\n`);
  if (Object.keys(results.targets).length === 0) process.stdout.write('targets vs ejabberd: not measured (ejabberd skipped)\n');
  for (const [name, target] of Object.entries(results.targets)) process.stdout.write(`target ${name}: ${target.value} → ${target.met ? 'met' : 'NOT met'}\n`);
}
