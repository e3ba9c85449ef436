/**
 * `npm run bench:e2e`: Sequent against NATS JetStream and a Socket.IO room
 * broadcast, in one run on one machine, with the same clients, the same message
 * count and the same window of unacknowledged sends for each.
 *
 * - Sequent: the real server as a child process on the embedded SQLite store;
 *   raw protocol-v1 WebSocket clients send into groups. Acked messages/s, ack
 *   latency (send → ack: deduplicated, sequenced, durable), deliveries/s; then a
 *   paced run at half the measured peak for the latency at half load.
 * - JetStream: a file-backed stream, publish with msgID (dedup), await PubAck.
 * - Socket.IO: a room broadcast, no durability, no dedup.
 *
 * The measured messages are split into rounds and the systems take turns, so
 * that a change in the machine's load (it is shared) falls on all of them.
 * Every number is measured here; a peer that cannot be reached is listed as
 * skipped with the reason.
 */
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { formatSummary, readProfile, summarizeProfile, type ProfileSummary } from './cpuprofile.js';
import { deliveryRate } from './deliveries.js';
import { readConfig, SYSTEMS, type E2eConfig } from './e2e-config.js';
import { openJetStream } from './e2e-jetstream.js';
import { openSequent, type SequentSystem } from './e2e-sequent.js';
import { openSocketIo } from './e2e-socketio.js';
import { phaseStats, quantile, quotaOf, rateOf, type PhaseStats } from './load.js';
import { markdownTable, ratio, writeResults, type Row } from './report.js';
import { describeRound, type BenchSystem, type Round } from './system.js';

const TARGET_VS_JETSTREAM = 2;
const TARGET_P99_HALF_LOAD_MS = 20;
const JETSTREAM = 'jetstream';
const SOCKETIO = 'socketio';

const log = (line: string) => process.stderr.write(`${line}\n`);
const round2 = (n: number) => Math.round(n * 100) / 100;
const mean = (values: number[]) => (values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor((sorted.length - 1) / 2)]!;
};

interface Entrant {
  key: string;
  name: string;
  system: BenchSystem | undefined;
  skipped?: string;
  rounds: Round[];
}

/** What the rounds of one system add up to. */
interface Summary extends PhaseStats {
  deliveries_per_s: number | null;
  /** msgs/s of each round, to show the spread. */
  round_msgs_per_s: number[];
  server_cores: number | null;
  server_main_cores: number | null;
  server_main_waiting: number | null;
  bench_cores: number;
}

function summarize(rounds: readonly Round[]): Summary {
  const deliveries = rounds.flatMap((r) => (r.deliveries ? [r.deliveries] : []));
  const cpu = (pick: (r: Round) => number | null) => {
    const values = rounds.map(pick).filter((v): v is number => v !== null);
    return values.length === rounds.length && values.length > 0 ? round2(mean(values)) : null;
  };
  return {
    ...phaseStats(rounds.map((r) => r.phase)),
    deliveries_per_s: deliveries.length > 0 ? deliveryRate(deliveries) : null,
    round_msgs_per_s: rounds.map((r) => Math.round(rateOf(r.phase))),
    server_cores: cpu((r) => r.cpu.server_cores),
    server_main_cores: cpu((r) => r.cpu.server_main_cores),
    server_main_waiting: cpu((r) => r.cpu.server_main_waiting),
    bench_cores: round2(mean(rounds.map((r) => r.cpu.bench_cores))),
  };
}

function row(name: string, s: Summary): Row {
  return {
    name,
    msgs_per_s: s.msgs_per_s,
    p50_ms: s.p50_ms,
    p99_ms: s.p99_ms,
    deliveries_per_s: s.deliveries_per_s,
    server_cores: s.server_cores,
    bench_cores: s.bench_cores,
  };
}

/** The profiles node wrote for the server's pid (one per thread: main and the SQLite writer). */
function serverProfiles(dir: string, pid: number): { path: string; summary: ProfileSummary }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs)
    .map((path) => ({ path, summary: summarizeProfile(readProfile(path)) }));
}

async function open(key: string, name: string, start: () => Promise<BenchSystem>): Promise<Entrant> {
  try {
    return { key, name, system: await start(), rounds: [] };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    log(`${key}: skipped (${reason})`);
    return { key, name, system: undefined, skipped: reason, rounds: [] };
  }
}

async function main(config: E2eConfig): Promise<number> {
  log(
    `bench:e2e: ${config.messages} messages per system in ${config.rounds} rounds, ${config.clients} clients in ` +
      `${config.groups} groups, window ${config.window}, ${config.bodyBytes}-byte bodies`,
  );
  const loadBefore = loadavg();
  // Sequent is ours: if it cannot start, the run fails. A peer that cannot is reported as skipped.
  const sequent: SequentSystem | undefined = config.systems.has('sequent') ? await openSequent(config, log) : undefined;
  const entrants: Entrant[] = [];
  if (sequent) entrants.push({ key: 'sequent', name: sequent.name, system: sequent, rounds: [] });
  if (config.systems.has(JETSTREAM)) {
    entrants.push(await open(JETSTREAM, 'nats jetstream publish(msgID)→PubAck, file stream', () => openJetStream(config, log)));
  }
  if (config.systems.has(SOCKETIO)) entrants.push(await open(SOCKETIO, 'socket.io room broadcast emit→ack', () => openSocketIo(config, log)));

  let paced: Round | undefined;
  let pacedRate = 0;
  try {
    const { warmup } = config;
    const running = () => entrants.filter((e) => e.system !== undefined);
    const attempt = async (entrant: Entrant, what: string, run: (system: BenchSystem) => Promise<void>) => {
      try {
        await run(entrant.system!);
      } catch (error) {
        if (entrant.key === 'sequent') throw error;
        entrant.skipped = `${what} failed: ${error instanceof Error ? error.message : String(error)}`;
        log(`${entrant.key}: skipped (${entrant.skipped})`);
        await entrant.system!.close().catch(() => {});
        entrant.system = undefined;
      }
    };
    for (const entrant of running()) await attempt(entrant, 'warmup', (system) => system.warmup(warmup));
    log(`warmed up with ${warmup} messages each`);
    for (let r = 0; r < config.rounds; r++) {
      const messages = quotaOf(config.messages, config.rounds, r);
      // Each round starts with another system, so that none always follows the same one.
      const order = running();
      const turns = [...order.slice(r % order.length), ...order.slice(0, r % order.length)];
      for (const entrant of turns) {
        await attempt(entrant, `round ${r + 1}`, async (system) => {
          const result = await system.round(messages);
          entrant.rounds.push(result);
          log(`round ${r + 1}/${config.rounds} ${entrant.key}: ${describeRound(result)}`);
        });
      }
    }
    if (sequent && !config.skipPaced) {
      // The peers are done: their servers and idle clients leave the machine to Sequent's
      // paced run (with them still open, the benchmark process itself fell behind its schedule).
      for (const entrant of entrants) {
        if (entrant.key === 'sequent' || !entrant.system) continue;
        await entrant.system.close();
        entrant.system = undefined;
      }
      pacedRate = summarize(entrants[0]!.rounds).msgs_per_s / 2;
      paced = await sequent.paced(Math.max(1, Math.ceil(config.messages / 2)), pacedRate);
      const lag = paced.phase.sendLags;
      log(
        `paced sequent at ${Math.round(pacedRate)}/s: ${describeRound(paced)}` +
          (lag ? `; sends left late by p50 ${quantile(lag, 0.5).toFixed(2)} ms, p99 ${quantile(lag, 0.99).toFixed(2)} ms` : ''),
      );
    }
  } finally {
    for (const entrant of entrants) await entrant.system?.close();
  }

  const summaries = new Map(entrants.filter((e) => !e.skipped).map((e) => [e.key, summarize(e.rounds)]));
  const rows: Row[] = [];
  for (const entrant of entrants) {
    const summary = summaries.get(entrant.key);
    if (summary) rows.push(row(entrant.key === 'sequent' ? `${entrant.name}, peak` : entrant.name, summary));
    else {
      const empty = { msgs_per_s: null, p50_ms: null, p99_ms: null, deliveries_per_s: null, server_cores: null, bench_cores: null };
      rows.push({ name: entrant.name, ...empty, skipped: entrant.skipped ?? '' });
    }
    if (entrant.key === 'sequent' && paced) {
      rows.push(row(`${entrant.name}, paced at half peak (${Math.round(pacedRate)}/s)`, summarize([paced])));
    }
  }

  const ours = summaries.get('sequent');
  const jet = summaries.get(JETSTREAM);
  const sio = summaries.get(SOCKETIO);
  const ratios: Record<string, number> = {};
  if (ours && jet) ratios['sequent acked msgs/s / jetstream msgs/s'] = ratio(ours.msgs_per_s, jet.msgs_per_s);
  if (ours && sio) {
    ratios['sequent acked msgs/s / socket.io msgs/s'] = ratio(ours.msgs_per_s, sio.msgs_per_s);
    if (ours.deliveries_per_s !== null && sio.deliveries_per_s !== null) {
      ratios['sequent deliveries/s / socket.io deliveries/s'] = ratio(ours.deliveries_per_s, sio.deliveries_per_s);
    }
  }
  // The same ratio round by round: each pair ran minutes apart at most, under about the same load.
  const roundRatios = (peer: string) => {
    const a = entrants.find((e) => e.key === 'sequent')?.rounds ?? [];
    const b = entrants.find((e) => e.key === peer && !e.skipped)?.rounds ?? [];
    return b.length === 0 ? [] : a.slice(0, b.length).map((round, i) => ratio(rateOf(round.phase), rateOf(b[i]!.phase)));
  };
  const vsJetStream = ratios['sequent acked msgs/s / jetstream msgs/s'];
  const pacedP99 = paced ? summarize([paced]).p99_ms : undefined;
  const targets = {
    [`acked msgs/s ≥ ${TARGET_VS_JETSTREAM}× jetstream`]: vsJetStream === undefined ? { value: null, met: null } : { value: vsJetStream, met: vsJetStream >= TARGET_VS_JETSTREAM },
    [`p99 ack latency at half peak < ${TARGET_P99_HALF_LOAD_MS} ms`]: pacedP99 === undefined ? { value: null, met: null } : { value: pacedP99, met: pacedP99 < TARGET_P99_HALF_LOAD_MS },
  };

  for (const [key, rounds] of [...entrants.map((e) => [e.key, e.rounds] as const), ['sequent paced', paced ? [paced] : []] as const]) {
    for (const d of rounds.flatMap((r) => (r.deliveries ? [r.deliveries] : []))) {
      if (d.deliveries !== d.expected) log(`warning: ${key}: ${d.deliveries} of ${d.expected} expected deliveries arrived`);
    }
  }

  const results = {
    rows,
    ratios,
    targets,
    round_ratios: { 'sequent / jetstream': roundRatios(JETSTREAM), 'sequent / socket.io': roundRatios(SOCKETIO) },
    /** 1/5/15-minute load averages: other work on a shared machine moves every number. */
    load_average: { before: loadBefore.map(round2), after: loadavg().map(round2) },
    config: {
      messages: config.messages,
      warmup_messages: config.warmup,
      rounds: config.rounds,
      clients: config.clients,
      groups: config.groups,
      window: config.window,
      body_bytes: config.bodyBytes,
      durability: config.durability,
    },
    detail: Object.fromEntries([
      ...entrants.map((e) => [e.key, summaries.get(e.key) ?? { skipped: e.skipped }]),
      ...(paced
        ? [
            [
              'sequent paced',
              {
                target_msgs_per_s: Math.round(pacedRate),
                ...summarize([paced]),
                // Latency counts from when a send was due; this much of it the sender itself was late.
                send_lag_p50_ms: paced.phase.sendLags ? round2(quantile(paced.phase.sendLags, 0.5)) : null,
                send_lag_p99_ms: paced.phase.sendLags ? round2(quantile(paced.phase.sendLags, 0.99)) : null,
              },
            ],
          ]
        : []),
      ...(sequent ? [['sequent server', [...entrants[0]!.rounds, ...(paced ? [paced] : [])].map((r) => r.extra?.['server'] ?? null)]] : []),
    ]),
  };
  // Only a run of every system is a result; a subset (for profiling, say) is printed, not kept.
  if (SYSTEMS.every((name) => config.systems.has(name))) writeResults('e2e', results);
  else process.stdout.write(`${markdownTable(results)}(a subset of the systems: bench/results/e2e.* left as they were)\n`);
  for (const [name, target] of Object.entries(targets)) {
    process.stdout.write(`target ${name}: ${target.met === null ? 'not measured' : `${target.value} → ${target.met ? 'met' : 'NOT met'}`}\n`);
  }

  if (config.profileDir && sequent) {
    for (const { path, summary } of serverProfiles(config.profileDir, sequent.serverPid)) {
      process.stdout.write(`\n${formatSummary(path, summary)}\n`);
    }
  }
  return 0;
}

const config = readConfig(process.argv.slice(2), process.env);
if ('exit' in config) {
  (config.exit === 0 ? process.stdout : process.stderr).write(config.text);
  process.exitCode = config.exit;
} else {
  if (config.profileDir) {
    config.profileDir = resolve(config.profileDir);
    mkdirSync(config.profileDir, { recursive: true });
  }
  main(config).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      log(`bench:e2e failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      process.exitCode = 1;
    },
  );
}
