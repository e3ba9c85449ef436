/**
 * `npm run bench:chat`: chat-shaped load against the servers a team would pick
 * instead, each in the same run, with the ratios printed.
 *
 * Scenarios (`--scenarios`, comma-separated; the table is SCENARIOS below):
 * `large-groups` (here), `catch-up` (chat-catchup.ts), `connections`
 * (chat-connections.ts). Each writes its own section of bench/results/chat.*.
 *
 * Scenario `large-groups`: one group of N members (2,000 and 10,000 by default),
 * every member online on a connection of its own, the members spread over several
 * client processes; 5 senders send into the group. Measured per system: deliveries/s
 * (from the first send to the last push), the server's CPU per 1,000 deliveries, and
 * p50/p99 from a send to its last member's push. The peers: a raw `ws` broadcast that
 * corks each socket for the turn (the ceiling of Node fan-out), a naive `ws`
 * broadcast, and a Socket.IO room. None of the peers stores anything; Sequent
 * commits every message durably (SQLite, fsync per group commit) before it pushes.
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { io, type Socket as IoSocket } from 'socket.io-client';
import WebSocket from 'ws';
import { newCmid } from 'sequent-client';
import { parseFlags, usage, UsageError, type FlagSpec, type ParsedFlags } from '../src/cli/args.js';
import { spawnServerProcess, stopServer } from '../src/chaos/server-process.js';
import { TokenAuthority } from '../src/server/auth.js';
import { processCpuSeconds } from './cpu.js';
import type { FromMembers, MemberSystem, ToMembers } from './chat-members.js';
import { quantile } from './load.js';
import { catchUpScenario } from './chat-catchup.js';
import { connectionsScenario } from './chat-connections.js';
import { writeChatResults } from './chat-results.js';
import { ejabberdScenario } from './chat-ejabberd-scenario.js';
import type { ChatScenario, ScenarioOutcome } from './chat-scenario.js';
import { ratio, type Results, type Row } from './report.js';

const SYSTEMS: readonly MemberSystem[] = ['sequent', 'ws-corked', 'ws-naive', 'socketio'];

const LARGE_GROUP_FLAGS: Record<string, FlagSpec> = {
  members: { kind: 'string', default: '2000,10000', help: 'group sizes of large-groups, comma-separated' },
  senders: { kind: 'int', default: 5, min: 1, max: 100, help: 'members that send' },
  deliveries: { kind: 'int', default: 1_000_000, min: 1000, help: 'deliveries per group size and system (messages = this / members)' },
  window: { kind: 'int', default: 4, min: 1, max: 1000, help: 'unacknowledged sends each sender keeps in flight' },
  procs: { kind: 'int', default: 4, min: 1, max: 64, help: 'client processes the members are spread over' },
  body: { kind: 'int', default: 100, min: 1, max: 60_000, help: 'bytes of text in each message body' },
  systems: { kind: 'string', default: SYSTEMS.join(','), help: `comma-separated subset of ${SYSTEMS.join(', ')}` },
  timeout: { kind: 'int', default: 120_000, min: 1000, help: 'longest any one phase may take, ms' },
};

interface Config {
  sizes: number[];
  senders: number;
  deliveries: number;
  window: number;
  procs: number;
  body: string;
  systems: MemberSystem[];
  timeoutMs: number;
}

function checkLargeGroups(flags: ParsedFlags): string | undefined {
  for (const s of String(flags['systems']).split(',')) if (!(SYSTEMS as readonly string[]).includes(s)) return `flag --systems: unknown system ${JSON.stringify(s)}`;
  for (const m of String(flags['members']).split(',')) if (!/^\d+$/.test(m) || Number(m) < 2) return `flag --members: ${JSON.stringify(m)} is not a group size (at least 2)`;
  return undefined;
}

function largeGroupConfig(flags: ParsedFlags): Config {
  return {
    sizes: String(flags['members']).split(',').map(Number),
    senders: Number(flags['senders']),
    deliveries: Number(flags['deliveries']),
    window: Number(flags['window']),
    procs: Number(flags['procs']),
    body: 'x'.repeat(Number(flags['body'])),
    systems: String(flags['systems']).split(',') as MemberSystem[],
    timeoutMs: Number(flags['timeout']),
  };
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

function rssMb(pid: number): number | null {
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? null : Math.round(Number(kb) / 1024);
  } catch {
    return null;
  }
}

/** A server under test: where clients connect, its pid for CPU and memory, how members join. */
interface ServerUnderTest {
  url: string;
  pid: number;
  /** One token (or placeholder) per member, and the senders' connections, once the group exists. */
  tokens: string[];
  sender(index: number): Promise<Sender>;
  stop(): Promise<void>;
}

interface Sender {
  /** Sends message number `bn`; resolves on its ack. */
  send(bn: number): Promise<void>;
  close(): void;
}

async function startPeerProcess(args: string[]): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    void exited.then(() => reject(new Error(`${args.join(' ')} exited before listening`)));
  });
  return { port, pid: child.pid!, stop: async () => (child.kill('SIGTERM'), await exited) };
}

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Request/answer over one ws by `id`, pushes ignored. */
function answers(ws: WebSocket, idOf: (frame: Record<string, unknown>) => number | undefined): (id: number) => Promise<Record<string, unknown>> {
  const waiting = new Map<number, (frame: Record<string, unknown>) => void>();
  ws.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
    if (text.startsWith('{"t":"msg"') || text.startsWith('{"msg"')) return;
    const frame = JSON.parse(text) as Record<string, unknown>;
    const id = idOf(frame);
    if (id === undefined) return;
    waiting.get(id)?.(frame);
    waiting.delete(id);
  });
  return (id) => new Promise((resolve) => waiting.set(id, resolve));
}

async function startSequent(config: Config, members: number): Promise<ServerUnderTest> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sequent-bench-chat-'));
  const secret = randomBytes(24).toString('base64url');
  // Every member connects from 127.0.0.1: the per-address cap is for the public internet.
  const server = await spawnServerProcess({ dataDir, secret, args: ['--max-connections-per-address', '0'] });
  const authority = new TokenAuthority(secret);
  const conv = 'g:big';
  const senderNames = Array.from({ length: config.senders }, (_, i) => `s${i}`);
  const memberNames = Array.from({ length: members }, (_, i) => `m${i}`);

  const connect = async (user: string) => {
    const ws = await openWs(server.url);
    const answer = answers(ws, (f) => (typeof f['id'] === 'number' ? f['id'] : undefined));
    let nextId = 1;
    const request = async (frame: Record<string, unknown>) => {
      const id = nextId++;
      const reply = answer(id);
      ws.send(JSON.stringify({ ...frame, id }));
      const got = await reply;
      if (got['t'] === 'error') throw new Error(`${user}: ${String(got['code'])} ${String(got['message'])}`);
      return got;
    };
    await request({ t: 'hello', proto: 1, token: await authority.mint(user, 'bench') });
    return { ws, request };
  };

  const owner = await connect(senderNames[0]!);
  await owner.request({ t: 'create', conv, members: senderNames.slice(1) });
  for (let i = 0; i < memberNames.length; i += 1000) await owner.request({ t: 'members', conv, add: memberNames.slice(i, i + 1000) });
  owner.ws.close();
  const tokens = await Promise.all(memberNames.map((name) => authority.mint(name, 'bench')));
  const body = config.body;
  return {
    url: server.url,
    pid: server.pid,
    tokens,
    sender: async (index) => {
      const { ws, request } = await connect(senderNames[index]!);
      let dseq = 0;
      return {
        send: async (bn) => void (await request({ t: 'send', conv, cmid: newCmid(), dseq: ++dseq, body: { bn, text: body } })),
        close: () => ws.close(),
      };
    },
    stop: async () => {
      await stopServer(server);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function startWsPeer(config: Config, members: number, mode: 'corked' | 'naive'): Promise<ServerUnderTest> {
  const peer = await startPeerProcess([fileURLToPath(new URL('./broadcast-server.js', import.meta.url)), mode]);
  const url = `ws://127.0.0.1:${peer.port}/`;
  return {
    url,
    pid: peer.pid,
    tokens: new Array<string>(members).fill(''),
    sender: async () => {
      const ws = await openWs(url);
      const answer = answers(ws, (f) => (f['joined'] === true ? 0 : typeof f['ack'] === 'number' ? f['ack'] : undefined));
      const joined = answer(0);
      ws.send(JSON.stringify({ join: 'big' }));
      await joined;
      let id = 0;
      return {
        send: async (bn) => {
          const mine = ++id;
          const acked = answer(mine);
          ws.send(JSON.stringify({ send: { bn, text: config.body }, id: mine }));
          await acked;
        },
        close: () => ws.close(),
      };
    },
    stop: peer.stop,
  };
}

async function startSocketIo(config: Config, members: number): Promise<ServerUnderTest> {
  const peer = await startPeerProcess([fileURLToPath(new URL('./socketio-server.js', import.meta.url))]);
  const url = `http://127.0.0.1:${peer.port}`;
  return {
    url,
    pid: peer.pid,
    tokens: new Array<string>(members).fill(''),
    sender: async () => {
      const socket: IoSocket = io(url, { transports: ['websocket'], reconnection: false });
      await new Promise<void>((resolve, reject) => {
        socket.once('connect_error', reject);
        socket.once('connect', () => socket.emit('join', 'big', () => resolve()));
      });
      return {
        send: (bn) => new Promise<void>((resolve) => socket.emit('send', 'big', { bn, text: config.body }, () => resolve())),
        close: () => socket.close(),
      };
    },
    stop: peer.stop,
  };
}

function start(system: MemberSystem, config: Config, members: number): Promise<ServerUnderTest> {
  switch (system) {
    case 'sequent':
      return startSequent(config, members);
    case 'ws-corked':
      return startWsPeer(config, members, 'corked');
    case 'ws-naive':
      return startWsPeer(config, members, 'naive');
    case 'socketio':
      return startSocketIo(config, members);
  }
}

/** A forked member process, asked one thing at a time. */
class MemberProcess {
  private readonly child: ChildProcess;
  private waiting: ((m: FromMembers) => void) | undefined;

  constructor() {
    this.child = fork(fileURLToPath(new URL('./chat-members.js', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: FromMembers) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.(m);
    });
  }

  ask(message: ToMembers): Promise<FromMembers> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.child.send(message);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  close(): void {
    this.child.send({ type: 'close' } satisfies ToMembers);
  }
}

async function largeGroup(system: MemberSystem, config: Config, members: number): Promise<Row> {
  const name = `${system} group of ${members.toLocaleString('en-US')}`;
  const perSender = Math.max(1, Math.ceil(config.deliveries / members / config.senders));
  const messages = perSender * config.senders;
  const server = await start(system, config, members);
  const procs = Array.from({ length: config.procs }, () => new MemberProcess());
  try {
    const t0 = now();
    const ready = await Promise.all(
      procs.map((p, i) =>
        p.ask({ type: 'connect', system, url: server.url, room: 'big', messages, tokens: server.tokens.filter((_, m) => m % config.procs === i) }),
      ),
    );
    const connected = ready.reduce((n, r) => n + (r.type === 'ready' ? r.connected : 0), 0);
    const failed = ready.find((r) => r.type === 'ready' && r.failed > 0);
    if (connected !== members) throw new Error(`${connected} of ${members} members connected${failed?.type === 'ready' ? `: ${failed.error}` : ''}`);
    log(`${name}: ${members} members online in ${((now() - t0) / 1000).toFixed(1)} s; server RSS ${rssMb(server.pid)} MB`);
    const rss = rssMb(server.pid);
    const senders = await Promise.all(Array.from({ length: config.senders }, (_, i) => server.sender(i)));
    const before = await Promise.all(procs.map((p) => p.ask({ type: 'report' })));
    const cpuStart = processCpuSeconds(server.pid);

    const sentAt = new Float64Array(messages);
    const started = now();
    await Promise.all(
      senders.map(async (sender, s) => {
        let next = 0;
        const lane = async () => {
          for (let i = next++; i < perSender; i = next++) {
            const bn = s * perSender + i;
            sentAt[bn] = now();
            await sender.send(bn);
          }
        };
        await Promise.all(Array.from({ length: config.window }, lane));
      }),
    );
    const sendsDone = now();

    // Wait for the pushes: done when every member has every message, or when nothing moved for 10 s.
    const expected = messages * members;
    let reports: FromMembers[] = [];
    let delivered = 0;
    let lastProgress = now();
    for (;;) {
      reports = await Promise.all(procs.map((p) => p.ask({ type: 'report' })));
      const total = reports.reduce((n, r) => n + (r.type === 'report' ? r.counts.reduce((a, b) => a + b, 0) : 0), 0);
      if (total > delivered) lastProgress = now();
      delivered = total;
      if (delivered >= expected || now() - lastProgress > 10_000 || now() - started > config.timeoutMs) break;
      await sleep(100);
    }
    const cpuEnd = processCpuSeconds(server.pid);

    const lastAt = new Float64Array(messages);
    const got = new Uint32Array(messages);
    for (const r of reports) {
      if (r.type !== 'report') continue;
      r.lastAt.forEach((at, n) => (lastAt[n] = Math.max(lastAt[n]!, at)));
      r.counts.forEach((c, n) => (got[n]! += c));
    }
    const complete = [...got.keys()].filter((n) => got[n] === members);
    const latencies = Float64Array.from(complete, (n) => lastAt[n]! - sentAt[n]!).sort();
    const end = Math.max(...lastAt);
    const seconds = (end - started) / 1000;
    const memberCpu = reports.reduce((n, r, i) => n + (r.type === 'report' && before[i]?.type === 'report' ? r.cpuSeconds - before[i].cpuSeconds : 0), 0);
    const serverCpu = cpuStart === undefined || cpuEnd === undefined ? null : cpuEnd - cpuStart;
    for (const sender of senders) sender.close();
    const row: Row = {
      name,
      deliveries_per_s: Math.round(delivered / seconds),
      p50_ms: Math.round(quantile(latencies, 0.5) * 100) / 100,
      p99_ms: Math.round(quantile(latencies, 0.99) * 100) / 100,
      server_cpu_ms_per_1k_deliveries: serverCpu === null ? null : Math.round(((serverCpu * 1e6) / delivered) * 100) / 100,
      server_cores: serverCpu === null ? null : Math.round((serverCpu / seconds) * 100) / 100,
      members_cores: Math.round((memberCpu / seconds) * 100) / 100,
      server_rss_mb_online: rss,
      messages,
      delivered_share: Math.round((delivered / expected) * 10_000) / 10_000,
    };
    log(`${name}: ${JSON.stringify(row)} (sends took ${((sendsDone - started) / 1000).toFixed(1)} s)`);
    return row;
  } finally {
    for (const p of procs) p.close();
    await server.stop();
  }
}

async function runLargeGroups(flags: ParsedFlags): Promise<ScenarioOutcome> {
  const config = largeGroupConfig(flags);
  const rows: Row[] = [];
  const ratios: Record<string, number> = {};
  for (const members of config.sizes) {
    const bySystem = new Map<MemberSystem, Row>();
    for (const system of config.systems) {
      try {
        const row = await largeGroup(system, config, members);
        rows.push(row);
        bySystem.set(system, row);
      } catch (error) {
        log(`${system} group of ${members}: failed: ${String(error)}`);
        rows.push({ name: `${system} group of ${members.toLocaleString('en-US')}`, failed: String(error).slice(0, 200) });
      }
    }
    const ours = bySystem.get('sequent');
    if (!ours) continue;
    for (const peer of ['ws-corked', 'ws-naive', 'socketio'] as const) {
      const theirs = bySystem.get(peer);
      if (theirs) ratios[`sequent / ${peer} deliveries/s, ${members} members`] = ratio(Number(ours['deliveries_per_s']), Number(theirs['deliveries_per_s']));
    }
    const corked = bySystem.get('ws-corked');
    if (corked && ours['server_cpu_ms_per_1k_deliveries'] !== null && corked['server_cpu_ms_per_1k_deliveries'] !== null) {
      ratios[`sequent / ws-corked server CPU per delivery, ${members} members`] = ratio(Number(ours['server_cpu_ms_per_1k_deliveries']), Number(corked['server_cpu_ms_per_1k_deliveries']));
    }
  }
  const subset = config.systems.length < SYSTEMS.length || config.sizes.join(',') !== String(LARGE_GROUP_FLAGS['members']!.default);
  return { results: { rows, ratios, config: { ...config, body: config.body.length } }, write: !subset };
}

const largeGroupsScenario: ChatScenario = { flags: LARGE_GROUP_FLAGS, check: checkLargeGroups, run: runLargeGroups };

/** Every scenario by its --scenarios name. A new scenario is one line here (and its own files). */
const SCENARIOS: Record<string, ChatScenario> = {
  'large-groups': largeGroupsScenario,
  'catch-up': catchUpScenario,
  connections: connectionsScenario,
  ejabberd: ejabberdScenario,
};

const FLAGS: Record<string, FlagSpec> = {
  scenarios: { kind: 'string', default: 'large-groups', help: `comma-separated scenarios: ${Object.keys(SCENARIOS).join(', ')}` },
  ...Object.assign({}, ...Object.values(SCENARIOS).map((s) => s.flags)),
  help: { kind: 'bool', default: false, help: 'print this help' },
};

function readFlags(argv: readonly string[]): { flags: ParsedFlags; scenarios: string[] } | { exit: number; text: string } {
  let flags: ParsedFlags;
  try {
    flags = parseFlags(argv, FLAGS);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return { exit: 2, text: `bench:chat: ${error.message}\n${usage('bench:chat', FLAGS)}` };
  }
  if (flags['help']) return { exit: 0, text: usage('bench:chat', FLAGS) };
  const scenarios = String(flags['scenarios']).split(',');
  for (const name of scenarios) {
    const scenario = SCENARIOS[name];
    const problem = scenario ? scenario.check?.(flags) : `flag --scenarios: unknown scenario ${JSON.stringify(name)}`;
    if (problem !== undefined) return { exit: 2, text: `bench:chat: ${problem}\n${usage('bench:chat', FLAGS)}` };
  }
  return { flags, scenarios };
}

async function main(): Promise<number> {
  const read = readFlags(process.argv.slice(2));
  if ('exit' in read) {
    (read.exit === 0 ? process.stdout : process.stderr).write(read.text);
    return read.exit;
  }
  const written: Record<string, Results> = {};
  for (const name of read.scenarios) {
    const outcome = await SCENARIOS[name]!.run(read.flags, log);
    if (outcome.write) written[name] = outcome.results;
    // A partial run is printed, not written over the full results.
    else process.stdout.write(`${name}: ${JSON.stringify(outcome.results, null, 2)}\n(a partial run: bench/results/chat.* left as they were)\n`);
  }
  if (Object.keys(written).length > 0) writeChatResults(written);
  return 0;
}

process.exitCode = await main();
