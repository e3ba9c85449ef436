/**
 * Scenario `connections`: many idle authenticated connections to one server
 * (100,000 by default), then a reconnect storm.
 *
 * - The clients live in child processes (chat-conn-clients.ts), each client on
 *   a local address of its own among 127.0.1.1–250 (no ephemeral-port
 *   exhaustion), one user and device per connection, users paired in DMs.
 *   They are light: raw `ws` speaking the protocol's hello, convs, sync, send
 *   and ping as the SDK does, without the SDK's state machine (a full SDK per
 *   connection would make the clients, not the server, the limit).
 * - Memory: the server's RSS, heap and external memory after a full GC (over
 *   its inspector) at half the connections and at all of them; per connection
 *   is the growth between the two over the connections added, not total / N.
 * - Idle: the server's CPU over a quiet window, while the clients ping after
 *   20 s without a frame (the SDK's heartbeat) and the server ws-pings every 30 s.
 * - Storm: every even user sends one DM (its partner's cursor is now behind),
 *   the server restarts (SIGTERM, drain, a new process on the same port and
 *   data), and every client reconnects with the SDK's backoff, says hello,
 *   asks convs, syncs what is behind and sends one message. Measured: time
 *   until all are online (welcome) again, resynced, and acked, and the p99 of
 *   that first send's ack.
 *
 * The server process needs a file descriptor per connection; the benchmark
 * raises the soft limit of the server and of the client processes to their hard
 * limit (prlimit) and refuses, with the reason, a count the hard limit cannot hold.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlagSpec, ParsedFlags } from '../src/cli/args.js';
import { spawnServerProcess, stopServer, type ServerChild } from '../src/chaos/server-process.js';
import type { FromConnClients, ToConnClients } from './chat-conn-clients.js';
import { Inspector, type MemoryUsage } from './chat-inspector.js';
import { now, round, sleep, type ChatScenario, type ScenarioOutcome } from './chat-scenario.js';
import { processCpuSeconds } from './cpu.js';
import { quantile } from './load.js';
import type { Row } from './report.js';

const FLAGS: Record<string, FlagSpec> = {
  connections: { kind: 'int', default: 100_000, min: 2, help: 'connections: idle authenticated connections to one server' },
  'conn-procs': { kind: 'int', default: 0, min: 0, max: 64, help: 'connections: client processes (0: one per 10,000 connections, at least 2)' },
  'conn-idle': { kind: 'int', default: 30, min: 1, max: 600, help: 'connections: seconds of the idle window whose server CPU is measured' },
  'conn-storm-timeout': { kind: 'int', default: 60_000, min: 1000, help: 'connections: longest the reconnect storm may take, ms' },
};

const ADDRESSES = 250;
/** Files the server keeps open besides its connections (database, WAL, logs, listeners, inspector). */
const SERVER_FILES_MARGIN = 256;
const TARGET_KIB_PER_CONNECTION = 8;
const TARGET_STORM_S = 30;

/** The soft and hard "Max open files" of a process. */
function fileLimits(pid: number | 'self'): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').split(/\s{2,}/).slice(1, 3).map((v) => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v)));
  return { soft: soft ?? 1024, hard: hard ?? 1024 };
}

/** Raises a process's soft file limit to what it needs (at most its hard limit); returns the soft limit it has then. */
function raiseFileLimit(pid: number, needed: number): number {
  const { soft, hard } = fileLimits(pid);
  if (soft >= needed) return soft;
  const target = Math.min(needed, hard);
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${target}:${Number.isFinite(hard) ? hard : 'unlimited'}`]);
  return fileLimits(pid).soft;
}

/** The kernel's counts of connections a full accept queue refused (host-wide: other programs' listeners too). */
function listenDrops(): { overflows: number; drops: number } {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const value = (name: string) => Number(values[names.indexOf(name)] ?? 0);
  return { overflows: value('ListenOverflows'), drops: value('ListenDrops') };
}

function rssBytes(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb ?? 0) * 1024;
}

/** A forked client process, asked one thing at a time. */
class ClientProcess {
  private readonly child: ChildProcess;
  private waiting: ((m: FromConnClients) => void) | undefined;

  constructor() {
    const profile = process.env['SEQUENT_BENCH_CLIENT_PROF'];
    this.child = fork(fileURLToPath(new URL('./chat-conn-clients.js', import.meta.url)), {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // SEQUENT_BENCH_CLIENT_PROF=DIR: a CPU profile of each client process (written when it exits).
      ...(profile ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${profile}`] } : {}),
    });
    this.child.on('message', (m: FromConnClients) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.(m);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  ask<T extends FromConnClients['type']>(message: ToConnClients): Promise<Extract<FromConnClients, { type: T }>> {
    return new Promise((resolve) => {
      this.waiting = resolve as (m: FromConnClients) => void;
      this.child.send(message);
    });
  }

  close(): void {
    if (this.child.connected) this.child.send({ type: 'close' } satisfies ToConnClients);
  }
}

interface Server {
  child: ServerChild;
  inspector: Inspector;
}

async function startServer(dataDir: string, secret: string, needed: number, port?: number): Promise<Server> {
  // Each client address carries total / ADDRESSES connections: the per-address cap (1000 by default) is off.
  const child = await spawnServerProcess({
    dataDir,
    secret,
    ...(port === undefined ? {} : { port }),
    // SEQUENT_BENCH_SERVER_PROF=DIR: a CPU profile of each server process, written there when it exits.
    nodeArgs: ['--inspect=127.0.0.1:0', ...(process.env['SEQUENT_BENCH_SERVER_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['SEQUENT_BENCH_SERVER_PROF']}`] : [])],
    args: ['--max-connections-per-address', '0', ...(process.env['SEQUENT_BENCH_SERVER_ARGS']?.split(' ').filter(Boolean) ?? [])],
  });
  // Raised right after it listens: the connections come after this.
  raiseFileLimit(child.pid, needed);
  return { child, inspector: await Inspector.open(child.output) };
}

async function run(flags: ParsedFlags, log: (line: string) => void): Promise<ScenarioOutcome> {
  const total = Number(flags['connections']);
  const procs = Number(flags['conn-procs']) || Math.max(2, Math.ceil(total / 10_000));
  const idleSeconds = Number(flags['conn-idle']);
  const stormTimeoutMs = Number(flags['conn-storm-timeout']);
  const timeoutMs = Number(flags['timeout']);
  const name = `sequent ${total.toLocaleString('en-US')} connections`;
  const config = { connections: total, procs, idle_s: idleSeconds, addresses: ADDRESSES };

  const limits = fileLimits('self');
  const serverNeeds = total + SERVER_FILES_MARGIN;
  const clientNeeds = Math.ceil(total / procs) + SERVER_FILES_MARGIN;
  if (limits.hard < Math.max(serverNeeds, clientNeeds)) {
    const reason =
      `the hard file limit is ${limits.hard} (ulimit -Hn) and this user may not raise it, so one server process cannot hold ` +
      `${total} connections (it needs ${serverNeeds} files); run with --connections ${limits.hard - SERVER_FILES_MARGIN} or less, or raise the hard limit`;
    log(`connections: skipped (${reason})`);
    return { results: { rows: [{ name, skipped: reason }], ratios: {}, config }, write: false };
  }

  const dataDir = mkdtempSync(join(tmpdir(), 'sequent-bench-conns-'));
  const secret = randomBytes(24).toString('base64url');
  let server = await startServer(dataDir, secret, serverNeeds);
  const clients = Array.from({ length: procs }, () => new ClientProcess());
  for (const c of clients) raiseFileLimit(c.pid, clientNeeds);
  const rows: Row[] = [];
  const ratios: Record<string, number> = {};
  // Interrupted: the server child must not outlive the benchmark (the client processes leave with their IPC channel).
  const interrupted = () => {
    server.child.child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  try {
    log(`connections: ${total} over ${procs} client processes, server pid ${server.child.pid} (file limit ${fileLimits(server.child.pid).soft})`);
    const connect = async (from: number, to: number) => {
      const t0 = now();
      const users = Array.from({ length: to - from }, (_, k) => from + k);
      const replies = await Promise.all(
        clients.map((c, p) =>
          c.ask<'connected'>({ type: 'connect', url: server.child.url, secret, users: users.filter((i) => i % procs === p), total, addresses: ADDRESSES, timeoutMs }),
        ),
      );
      const connected = replies.reduce((n, r) => n + r.connected, 0);
      const error = replies.find((r) => r.error)?.error;
      log(`connections: ${connected} of ${to - from} more connected in ${((now() - t0) / 1000).toFixed(1)} s${error ? ` (first failure: ${error})` : ''}`);
      if (connected !== to - from) throw new Error(`${connected} of ${to - from} connections opened${error ? `: ${error}` : ''}`);
    };
    const settled = async (): Promise<MemoryUsage> => {
      await sleep(2000);
      const usage = await server.inspector.memoryAfterGc();
      return { ...usage, rss: rssBytes(server.child.pid) };
    };

    const baseline = await settled();
    const half = Math.floor(total / 2);
    await connect(0, half);
    const atHalf = await settled();
    await connect(half, total);
    const atAll = await settled();
    const perConn = (key: keyof MemoryUsage) => round((atAll[key] - atHalf[key]) / (total - half) / 1024, 2);
    const clientRss = clients.reduce((n, c) => n + rssBytes(c.pid), 0);
    log(`connections: server RSS ${Math.round(baseline.rss / 2 ** 20)} MB idle, ${Math.round(atHalf.rss / 2 ** 20)} MB at ${half}, ${Math.round(atAll.rss / 2 ** 20)} MB at ${total}`);

    const cpu0 = processCpuSeconds(server.child.pid);
    const idle0 = now();
    await sleep(idleSeconds * 1000);
    const cpu1 = processCpuSeconds(server.child.pid);
    const idleWall = (now() - idle0) / 1000;
    const idleCpu = cpu0 === undefined || cpu1 === undefined ? null : cpu1 - cpu0;
    const idleRow: Row = {
      name: `${name}, idle`,
      server_rss_mb: Math.round(atAll.rss / 2 ** 20),
      rss_kib_per_conn: perConn('rss'),
      heap_kib_per_conn: perConn('heapUsed'),
      external_kib_per_conn: perConn('external'),
      server_rss_mb_before: Math.round(baseline.rss / 2 ** 20),
      idle_server_cores: idleCpu === null ? null : round(idleCpu / idleWall, 3),
      idle_server_us_per_conn_s: idleCpu === null ? null : round((idleCpu * 1e6) / idleWall / total, 3),
      clients_rss_mb: Math.round(clientRss / 2 ** 20),
    };
    log(`connections: ${JSON.stringify(idleRow)}`);
    rows.push(idleRow);
    ratios['server RSS KiB per idle connection / 8 KiB target'] = round(Number(idleRow['rss_kib_per_conn']) / TARGET_KIB_PER_CONNECTION);

    // One DM from every even user: its partner is behind when the storm comes, and syncs it.
    const dms = await Promise.all(clients.map((c) => c.ask<'dm-done'>({ type: 'dm', timeoutMs })));
    const dmAcked = dms.reduce((n, r) => n + r.acked, 0);
    if (dms.some((r) => r.failed > 0)) throw new Error(`DMs before the restart failed: ${dms.find((r) => r.error)?.error}`);
    log(`connections: ${dmAcked} DMs sent before the restart`);

    const drops0 = listenDrops();
    const cpuBefore = (await Promise.all(clients.map((c) => c.ask<'progress'>({ type: 'progress' })))).map((p) => p.cpuSeconds);
    await Promise.all(clients.map((c) => c.ask<'armed'>({ type: 'arm' })));
    const stopAt = now();
    const port = server.child.port;
    server.inspector.close();
    const exit = await stopServer(server.child);
    const stoppedAt = now();
    if (exit.code !== 0) log(`connections: the server exited with ${exit.code ?? exit.signal} on SIGTERM`);
    const drainLine = server.child.output.find((line) => line.includes('"msg":"drained"'));
    if (drainLine !== undefined) log(`connections: server drain ${drainLine}`);
    const spawnAt = now();
    server = await startServer(dataDir, secret, serverNeeds, port);
    const listenAt = now();
    log(`connections: old server exited ${((stoppedAt - stopAt) / 1000).toFixed(2)} s after SIGTERM; the new one listened ${((listenAt - spawnAt) / 1000).toFixed(2)} s after its spawn`);
    const stormCpu0 = processCpuSeconds(server.child.pid);
    log(`connections: server restarted (drain ${((stoppedAt - stopAt) / 1000).toFixed(1)} s, listening again after ${((listenAt - stopAt) / 1000).toFixed(1)} s)`);
    let progress: Extract<FromConnClients, { type: 'progress' }>[] = [];
    for (;;) {
      progress = await Promise.all(clients.map((c) => c.ask<'progress'>({ type: 'progress' })));
      const done = progress.reduce((n, p) => n + p.done, 0);
      if (done >= total || now() - listenAt > stormTimeoutMs) break;
      await sleep(250);
    }
    const stormCpu1 = processCpuSeconds(server.child.pid);
    const drops1 = listenDrops();
    log(`connections: full accept queues in the storm (host-wide): ${drops1.overflows - drops0.overflows} overflows, ${drops1.drops - drops0.drops} drops`);
    const reports = await Promise.all(clients.map((c) => c.ask<'storm-report'>({ type: 'storm-report' })));
    const all = (pick: (r: (typeof reports)[number]) => number[]) => reports.flatMap(pick);
    const onlineAt = all((r) => r.onlineAt).filter((t) => t > 0);
    const resyncedAt = all((r) => r.resyncedAt).filter((t) => t > 0);
    const ackedAt = all((r) => r.ackedAt).filter((t) => t > 0);
    const acks = all((r) => r.ackedAt);
    const ackMs = Float64Array.from(all((r) => r.ackMs).filter((_, k) => acks[k]! > 0)).sort();
    const sinceListen = (times: number[]) => Float64Array.from(times, (t) => (t - listenAt) / 1000).sort();
    const online = sinceListen(onlineAt);
    const stormRow: Row = {
      name: `${name}, reconnect storm`,
      online: onlineAt.length,
      acked: ackedAt.length,
      restart_s: round((listenAt - stopAt) / 1000),
      all_online_s: onlineAt.length === total ? round(quantile(online, 1)) : null,
      online_p50_s: round(quantile(online, 0.5)),
      online_p99_s: round(quantile(online, 0.99)),
      all_resynced_s: resyncedAt.length === total ? round(quantile(sinceListen(resyncedAt), 1)) : null,
      all_acked_s: ackedAt.length === total ? round(quantile(sinceListen(ackedAt), 1)) : null,
      first_ack_p50_ms: round(quantile(ackMs, 0.5)),
      first_ack_p99_ms: round(quantile(ackMs, 0.99)),
      attempts_per_conn: round(reports.reduce((n, r) => n + r.attempts, 0) / total),
      storm_server_cpu_s: stormCpu0 === undefined || stormCpu1 === undefined ? null : round(stormCpu1 - stormCpu0),
      server_rss_mb_after: Math.round(rssBytes(server.child.pid) / 2 ** 20),
      clients_cpu_s: round(progress.reduce((n, p, i) => n + p.cpuSeconds - cpuBefore[i]!, 0)),
    };
    const failures: Record<string, number> = {};
    for (const r of reports) for (const [kind, n] of Object.entries(r.failures)) failures[kind] = (failures[kind] ?? 0) + n;
    log(`connections: failed attempts in the storm by reason: ${JSON.stringify(failures)}`);
    const errors = reports.flatMap((r) => r.errors);
    if (errors.length > 0) log(`connections: storm errors (first ${errors.length}): ${errors.join('; ')}`);
    log(`connections: ${JSON.stringify(stormRow)}`);
    rows.push(stormRow);
    if (stormRow['all_online_s'] !== null) ratios['all back online s / 30 s target'] = round(Number(stormRow['all_online_s']) / TARGET_STORM_S);
    return { results: { rows, ratios, config }, write: true };
  } finally {
    process.off('SIGINT', interrupted).off('SIGTERM', interrupted);
    for (const c of clients) c.close();
    server.inspector.close();
    await stopServer(server.child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export const connectionsScenario: ChatScenario = { flags: FLAGS, run };
