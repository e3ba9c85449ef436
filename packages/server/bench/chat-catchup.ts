/**
 * Scenario `catch-up`: a device was offline while M messages (100,000 by
 * default) arrived over C conversations (100); it comes back with the SDK.
 *
 * - Before: the reader's device runs the SDK (`SequentClient`) on a
 *   MemoryClientStore until it is caught up on the C new groups, then stops.
 *   The store keeps what an app's store keeps: identity and cursors.
 * - While offline: other users' devices (raw protocol connections) write the M
 *   messages through the real server (SQLite, fsync per group commit).
 * - Measured: a new `SequentClient` on a copy of that store, as after an app
 *   restart, from `start()` until every conversation's view holds all its new
 *   entries. Entries/s, and the server's CPU (from /proc) per entry over that
 *   window. Once per SDK sync page size (`--catchup-pages`, default the SDK's
 *   default and its maximum).
 * - Peer: NATS JetStream, the same messages in a file stream, replayed by an
 *   ordered consumer, at its default pull batch and at the larger page size.
 * - Both are filled first, then measured in `--catchup-rounds` rounds (3), the
 *   systems taking turns in each, so that load from elsewhere on the machine
 *   falls on both; a row's rate is its entries over its rounds' time.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { DEFAULT_SYNC_CONCURRENCY, DEFAULT_SYNC_PAGE_SIZE, MemoryClientStore, SequentClient, webSocketTransport, type ClientSnapshot } from 'sequent-client';
import type { FlagSpec, ParsedFlags } from '../src/cli/args.js';
import { spawnServerProcess, stopServer, type ServerChild } from '../src/chaos/server-process.js';
import { TokenAuthority } from '../src/server/auth.js';
import { fillJetStream, type ReplayResult } from './chat-catchup-jetstream.js';
import { convName, openWriters } from './chat-catchup-writers.js';
import { now, round, type ChatScenario, type ScenarioOutcome } from './chat-scenario.js';
import { mainThreadCpuSeconds, processCpuSeconds } from './cpu.js';
import { formatSummary, readProfile, summarizeProfile } from './cpuprofile.js';
import { quotaOf } from './load.js';
import { ratio, type Row } from './report.js';

const FLAGS: Record<string, FlagSpec> = {
  'catchup-messages': { kind: 'int', default: 100_000, min: 1, help: 'catch-up: messages that arrive while the device is offline' },
  'catchup-convs': { kind: 'int', default: 100, min: 1, max: 1000, help: 'catch-up: conversations they are spread over' },
  'catchup-pages': { kind: 'string', default: `${DEFAULT_SYNC_PAGE_SIZE},1000`, help: 'catch-up: SDK sync page sizes to measure (syncPageSize), comma-separated' },
  'catchup-concurrency': { kind: 'int', default: DEFAULT_SYNC_CONCURRENCY, min: 1, max: 64, help: 'catch-up: conversations the SDK catches up in parallel (syncConcurrency)' },
  'catchup-writers': { kind: 'int', default: 10, min: 1, max: 1000, help: 'catch-up: writing devices (each creates and writes its share of the conversations)' },
  'catchup-rounds': { kind: 'int', default: 3, min: 1, max: 20, help: 'catch-up: measured rounds, the systems taking turns in each' },
  'catchup-profile': { kind: 'string', help: 'catch-up: write CPU profiles of the server and of the SDK to this directory and summarize them' },
  'nats-url': { kind: 'string', default: process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222', help: 'NATS with JetStream, the peer of catch-up' },
};

const READER = 'reader';
const JETSTREAM_DEFAULT_BATCH = 100;

function check(flags: ParsedFlags): string | undefined {
  for (const page of String(flags['catchup-pages']).split(',')) {
    if (!/^\d+$/.test(page) || Number(page) < 1 || Number(page) > 1000) return `flag --catchup-pages: ${JSON.stringify(page)} is not a page size (1..1000)`;
  }
  return undefined;
}

/** The device's store as it was when it went offline: a fresh copy per measurement. */
async function storeFrom(snapshot: ClientSnapshot): Promise<MemoryClientStore> {
  const store = new MemoryClientStore();
  if (snapshot.identity) await store.setIdentity(snapshot.identity);
  for (const record of snapshot.convs) await store.setCursor(record.conv, record.cursor);
  return store;
}

function sdk(url: string, authority: TokenAuthority, store: MemoryClientStore, syncPageSize: number, syncConcurrency = DEFAULT_SYNC_CONCURRENCY): SequentClient {
  return new SequentClient({
    url,
    getToken: (device) => authority.mint(READER, device),
    store,
    transport: webSocketTransport(WebSocket),
    syncPageSize,
    syncConcurrency,
  });
}

interface CatchUpResult {
  entries: number;
  seconds: number;
  /** From start() to the SDK's `ready` state (its catch-up done). */
  readySeconds: number;
  serverCpu: number | null;
  /** Of serverCpu: the main thread's, and the kernel's (system time) over all threads. */
  serverMainCpu: number | null;
  serverSystemCpu: number | null;
  /** The server's other threads' CPU by name, µs per entry. */
  serverThreads: string;
  clientCpu: number;
}

/** A process's system (kernel) CPU seconds, all threads, from /proc; undefined where there is none. */
function systemCpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[12]) / 100;
  } catch {
    return undefined;
  }
}

const since = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined ? null : b - a);

/** CPU seconds (user + system) of a process's threads, summed by thread name (main thread, V8 workers, libuv, a worker's name). */
function threadCpuSeconds(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
        const name = task === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).trim();
        const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
        byName.set(name, (byName.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
      } catch {
        // The thread ended meanwhile.
      }
    }
  } catch {
    // No /proc here.
  }
  return byName;
}

/** Per thread name, the CPU between two readings, as µs per entry: where a server's CPU per entry goes besides its main thread. */
function threadsPerEntry(before: Map<string, number>, after: Map<string, number>, entries: number): string {
  const parts: string[] = [];
  for (const [name, seconds] of after) {
    const used = seconds - (before.get(name) ?? 0);
    if (name !== 'main' && used > 0) parts.push(`${name} ${((used * 1e6) / entries).toFixed(2)}`);
  }
  return parts.join(', ') || 'none';
}

/** A new SDK instance on the offline store: from start() to every view complete. */
async function catchUp(
  server: ServerChild,
  authority: TokenAuthority,
  offline: ClientSnapshot,
  expected: Map<string, { count: number; last: number }>,
  page: number,
  concurrency: number,
  timeoutMs: number,
): Promise<CatchUpResult> {
  const client = sdk(server.url, authority, await storeFrom(offline), page, concurrency);
  const left = new Map([...expected].map(([conv, e]) => [conv, e.count]));
  let incomplete = left.size;
  let finish!: () => void;
  const complete = new Promise<void>((r) => (finish = r));
  client.on('message', ({ conv, entry }) => {
    if (entry.kind !== 'msg') return;
    const n = (left.get(conv) ?? 0) - 1;
    left.set(conv, n);
    if (n === 0 && --incomplete === 0) finish();
  });
  const timer = setTimeout(finish, timeoutMs);
  const cpu0 = processCpuSeconds(server.pid);
  const main0 = mainThreadCpuSeconds(server.pid);
  const system0 = systemCpuSeconds(server.pid);
  const threads0 = threadCpuSeconds(server.pid);
  const client0 = process.cpuUsage();
  const started = now();
  await client.start();
  const ready = client.ready(timeoutMs).then(() => now());
  await complete;
  const ended = now();
  const readyAt = await ready;
  const cpu1 = processCpuSeconds(server.pid);
  const main1 = mainThreadCpuSeconds(server.pid);
  const system1 = systemCpuSeconds(server.pid);
  const threads1 = threadCpuSeconds(server.pid);
  const clientCpu = process.cpuUsage(client0);
  clearTimeout(timer);
  let entries = 0;
  for (const [conv, e] of expected) {
    const got = client.entries(conv).filter((entry) => entry.kind === 'msg');
    entries += got.length;
    if (got.length !== e.count || got.at(-1)?.seq !== e.last || client.cursor(conv) !== e.last) {
      await client.stop();
      throw new Error(`${conv}: the view holds ${got.length} of ${e.count} entries (last seq ${got.at(-1)?.seq}, cursor ${client.cursor(conv)}, expected ${e.last}) after ${Math.round(ended - started)} ms`);
    }
  }
  await client.stop();
  return {
    entries,
    seconds: (ended - started) / 1000,
    readySeconds: (readyAt - started) / 1000,
    serverCpu: cpu0 === undefined || cpu1 === undefined ? null : cpu1 - cpu0,
    serverMainCpu: since(main0, main1),
    serverSystemCpu: since(system0, system1),
    serverThreads: threadsPerEntry(threads0, threads1, entries),
    clientCpu: (clientCpu.user + clientCpu.system) / 1e6,
  };
}

function rowOf(name: string, r: { entries: number; seconds: number; serverCpu: number | null; clientCpu: number }, extra: Record<string, number | string | null> = {}): Row {
  return {
    name,
    entries: r.entries,
    seconds: round(r.seconds, 3),
    entries_per_s: Math.round(r.entries / r.seconds),
    server_cpu_us_per_entry: r.serverCpu === null ? null : round((r.serverCpu * 1e6) / r.entries, 2),
    client_cpu_us_per_entry: round((r.clientCpu * 1e6) / r.entries, 2),
    server_cores: r.serverCpu === null ? null : round(r.serverCpu / r.seconds),
    ...extra,
  };
}

/** The client's own CPU profile of one catch-up, through the inspector (the server's comes from --cpu-prof). */
async function profiled<T>(dir: string | undefined, name: string, run: () => Promise<T>): Promise<T> {
  if (dir === undefined) return run();
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await run();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    const path = join(dir, `${name}.cpuprofile`);
    writeFileSync(path, JSON.stringify(profile));
    process.stderr.write(`${formatSummary(`SDK (bench process), ${name}`, summarizeProfile(profile as Parameters<typeof summarizeProfile>[0]))}\n`);
    session.disconnect();
  }
}

const perEntry = (cpu: number | null, entries: number): string => (cpu === null ? '?' : ((cpu * 1e6) / entries).toFixed(2));
const heapMb = (): number => Math.round(process.memoryUsage().heapUsed / 2 ** 20);

/** A row's sum over its rounds: its rate is all its entries over all its rounds' time. */
interface Totals {
  entries: number;
  seconds: number;
  readySeconds: number;
  serverCpu: number | null;
  clientCpu: number;
  perRound: number[];
}

function add(totals: Totals | undefined, r: CatchUpResult | ReplayResult): Totals {
  const t = totals ?? { entries: 0, seconds: 0, readySeconds: 0, serverCpu: 0, clientCpu: 0, perRound: [] };
  t.entries += r.entries;
  t.seconds += r.seconds;
  t.readySeconds += 'readySeconds' in r ? r.readySeconds : 0;
  t.serverCpu = t.serverCpu === null || r.serverCpu === null ? null : t.serverCpu + r.serverCpu;
  t.clientCpu += r.clientCpu;
  t.perRound.push(Math.round(r.entries / r.seconds));
  return t;
}

async function run(flags: ParsedFlags, log: (line: string) => void): Promise<ScenarioOutcome> {
  const messages = Number(flags['catchup-messages']);
  const convs = Number(flags['catchup-convs']);
  const pages = String(flags['catchup-pages']).split(',').map(Number);
  const rounds = Number(flags['catchup-rounds']);
  const concurrency = Number(flags['catchup-concurrency']);
  const body = 'x'.repeat(Number(flags['body']));
  const timeoutMs = Number(flags['timeout']);
  const profileDir = flags['catchup-profile'] === undefined ? undefined : resolve(String(flags['catchup-profile']));
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const perConv = (c: number) => quotaOf(messages, convs, c);
  const rows: Row[] = [];
  const ratios: Record<string, number> = {};
  const batches = [...new Set([JETSTREAM_DEFAULT_BATCH, ...pages])];
  log(`catch-up: ${messages} messages over ${convs} conversations, SDK sync pages ${pages.join(', ')} (${concurrency} conversations at a time), JetStream pull batches ${batches.join(', ')}, ${rounds} interleaved rounds`);

  const dataDir = mkdtempSync(join(tmpdir(), 'sequent-bench-catchup-'));
  const secret = randomBytes(24).toString('base64url');
  const authority = new TokenAuthority(secret);
  let server = await spawnServerProcess({ dataDir, secret });
  let jetstream: Awaited<ReturnType<typeof fillJetStream>> | undefined;
  const ours = new Map<number, Totals>();
  const theirs = new Map<number, Totals>();
  try {
    const writers = await openWriters(server.url, authority, Number(flags['catchup-writers']), convs, READER);
    // The device, online once: it learns its conversations (their creation entries) and goes offline.
    const store = new MemoryClientStore();
    const before = sdk(server.url, authority, store, DEFAULT_SYNC_PAGE_SIZE);
    await before.start();
    await before.ready(timeoutMs);
    await before.stop();
    const offline = await store.load();
    const cursors = new Map(offline.convs.map((r) => [r.conv, r.cursor]));
    if (cursors.size !== convs) throw new Error(`the device knew ${cursors.size} of ${convs} conversations before going offline`);

    const t0 = now();
    await writers.write(perConv, body, 32);
    writers.close();
    log(`catch-up: ${messages} messages written while the device was offline (${((now() - t0) / 1000).toFixed(1)} s)`);
    const expected = new Map(
      Array.from({ length: convs }, (_, c) => [convName(c), { count: perConv(c), last: (cursors.get(convName(c)) ?? 0) + perConv(c) }] as const),
    );
    if (profileDir) {
      // Restarted with the profiler on, so that the server's profile covers the catch-ups, not the writes.
      await stopServer(server);
      server = await spawnServerProcess({ dataDir, secret, port: server.port, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] });
    }
    const url = String(flags['nats-url']);
    try {
      jetstream = await fillJetStream(url, convs, perConv, body, log);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      log(`catch-up: jetstream skipped (${reason})`);
      rows.push({ name: 'jetstream ordered consumer replay', skipped: reason });
    }
    // Unmeasured: each side's read path warm (JIT, caches), as on a server that has served catch-ups before.
    await catchUp(server, authority, offline, expected, DEFAULT_SYNC_PAGE_SIZE, concurrency, timeoutMs);
    await jetstream?.replay(JETSTREAM_DEFAULT_BATCH, timeoutMs);
    // The systems take turns, round after round, so that a burst of load from elsewhere falls on both.
    for (let r = 0; r < rounds; r++) {
      for (const page of pages) {
        const result = await profiled(profileDir, `sdk-page-${page}-round-${r + 1}`, () => catchUp(server, authority, offline, expected, page, concurrency, timeoutMs));
        ours.set(page, add(ours.get(page), result));
        log(`catch-up round ${r + 1}: sequent page ${page}: ${Math.round(result.entries / result.seconds)} entries/s, server ${perEntry(result.serverCpu, result.entries)} µs/entry (main thread ${perEntry(result.serverMainCpu, result.entries)}, system ${perEntry(result.serverSystemCpu, result.entries)}; other threads: ${result.serverThreads}), SDK ${perEntry(result.clientCpu, result.entries)} µs/entry, bench heap ${heapMb()} MB`);
      }
      for (const batch of jetstream ? batches : []) {
        const result = await jetstream!.replay(batch, timeoutMs);
        theirs.set(batch, add(theirs.get(batch), result));
        log(`catch-up round ${r + 1}: jetstream batch ${batch}: ${Math.round(result.entries / result.seconds)} entries/s, server ${perEntry(result.serverCpu, result.entries)} µs/entry, client ${perEntry(result.clientCpu, result.entries)} µs/entry, bench heap ${heapMb()} MB`);
      }
    }
  } finally {
    await jetstream?.close();
    const exit = await stopServer(server);
    if (exit.code !== 0) log(`catch-up: server exited with ${exit.code ?? exit.signal}: ${server.output.slice(-5).join('')}`);
    if (profileDir) summarizeServerProfiles(profileDir, server.pid, log);
    rmSync(dataDir, { recursive: true, force: true });
  }

  const sequentRows = new Map<number, Row>();
  for (const [page, t] of ours) {
    const row = rowOf(`sequent SDK catch-up, sync page ${page}`, t, { ready_s: round(t.readySeconds / rounds, 3), entries_per_s_by_round: t.perRound.join(' / ') });
    rows.push(row);
    sequentRows.set(page, row);
  }
  for (const [batch, t] of theirs) {
    const row = rowOf(`jetstream ordered consumer replay, pull batch ${batch}`, t, { entries_per_s_by_round: t.perRound.join(' / ') });
    rows.push(row);
    for (const [page, mine] of sequentRows) {
      if (page !== batch && !(batch === JETSTREAM_DEFAULT_BATCH && page === DEFAULT_SYNC_PAGE_SIZE)) continue;
      ratios[`sequent page ${page} / jetstream batch ${batch} entries/s`] = ratio(Number(mine['entries_per_s']), Number(row['entries_per_s']));
      if (mine['server_cpu_us_per_entry'] !== null && row['server_cpu_us_per_entry'] !== null) {
        ratios[`sequent page ${page} / jetstream batch ${batch} server CPU per entry`] = ratio(Number(mine['server_cpu_us_per_entry']), Number(row['server_cpu_us_per_entry']));
      }
      const rs = ours.get(page)!.perRound.map((o, i) => ratio(o, t.perRound[i]!));
      log(`catch-up: sequent page ${page} / jetstream batch ${batch} entries/s by round: ${rs.join(', ')}`);
    }
  }
  for (const row of rows) log(`catch-up: ${JSON.stringify(row)}`);
  for (const [name, value] of Object.entries(ratios)) log(`catch-up: ${name}: ${value}×`);
  // A profiled run is slowed by the profiler: printed, never written as the results.
  const full = messages === FLAGS['catchup-messages']!.default && convs === FLAGS['catchup-convs']!.default && concurrency === DEFAULT_SYNC_CONCURRENCY && profileDir === undefined;
  return { results: { rows, ratios, config: { messages, convs, pages, concurrency, rounds, body: body.length } }, write: full };
}

function summarizeServerProfiles(dir: string, pid: number, log: (line: string) => void): void {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${pid}.`))) {
    const path = join(dir, file);
    if (statSync(path).size === 0) continue;
    log(formatSummary(`server ${file}`, summarizeProfile(readProfile(path))));
  }
}

export const catchUpScenario: ChatScenario = { flags: FLAGS, check, run };
