/**
 * Sequent's side of the end-to-end benchmark: the real server as a child
 * process (`bin/sequent-server serve` on the embedded SQLite store, so it has a core of
 * its own), and raw WebSocket clients speaking protocol v1: one user with one
 * device each, a member of one group, sending with cmid and dseq and keeping up
 * to `window` sends unacknowledged.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { spawnServerProcess, stopServer } from '../src/chaos/server-process.js';
import { newCmid } from 'sequent-client';
import { TokenAuthority } from '../src/server/auth.js';
import { MicrotaskCork } from './microtask-cork.js';
import { groupOf, groupSizes, messageBody, type E2eConfig } from './e2e-config.js';
import { startCpuCount } from './cpu.js';
import { DeliveryTally, settleDeliveries, tallyTotal } from './deliveries.js';
import { phaseServerStats, scrapeMetrics } from './server-metrics.js';
import { runPaced, runWindowed, type LoadClient, type PhaseResult } from './load.js';
import type { BenchSystem, Round } from './system.js';

type Reply = { t: string; id?: number; code?: string; message?: string };
type Pending = { resolve(frame: Reply): void; reject(error: Error): void };
type AckWaiter = { acked(): void; failed(error: Error): void };

const MSG_PUSH = Buffer.from('{"t":"msg"');
const KIND_MSG = '"kind":"msg"';

class SequentClient implements LoadClient {
  private nextId = 1;
  private dseq = 0;
  private readonly requests = new Map<number, Pending>();
  private readonly acks = new Map<number, AckWaiter>();
  private conv = '';
  private sendPrefix = '';
  /** Like the `nats` client, this one writes what it sends while handling one read at once (ws keeps the open TCP socket in `_socket`). */
  private readonly cork: MicrotaskCork;
  /** Messages this client has sent, for the deliveries its group must receive. */
  sent = 0;
  readonly tally = new DeliveryTally();

  private constructor(
    private readonly ws: WebSocket,
    private readonly bodyJson: string,
  ) {
    this.cork = new MicrotaskCork((ws as unknown as { _socket: Socket })._socket);
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('close', (code) => this.abort(new Error(`connection closed (${code})`)));
    ws.on('error', (error) => this.abort(error));
  }

  static async connect(url: string, token: string, bodyJson: string): Promise<SequentClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const client = new SequentClient(ws, bodyJson);
    await client.request({ t: 'hello', proto: 1, token });
    return client;
  }

  request(frame: Record<string, unknown>): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** From now on, sends go to `conv`, each with a new cmid made as the SDK makes them. */
  target(conv: string): void {
    this.conv = conv;
    this.sendPrefix = `{"t":"send","conv":${JSON.stringify(conv)},"body":${this.bodyJson},`;
  }

  send(acked: () => void, failed: (error: Error) => void): void {
    const id = this.nextId++;
    const dseq = ++this.dseq;
    this.acks.set(id, { acked, failed });
    this.sent++;
    this.cork.hold();
    this.ws.send(`${this.sendPrefix}"id":${id},"cmid":"${newCmid()}","dseq":${dseq}}`);
  }

  close(): void {
    this.ws.close();
  }

  private onFrame(data: Buffer): void {
    // Pushes are counted without parsing: the receiving side must not be the bottleneck.
    if (data.subarray(0, MSG_PUSH.length).equals(MSG_PUSH)) {
      if (data.indexOf(KIND_MSG) !== -1) this.tally.received();
      return;
    }
    const frame = JSON.parse(data.toString('utf8')) as Reply;
    if (frame.id === undefined) return;
    const ack = this.acks.get(frame.id);
    if (ack) {
      this.acks.delete(frame.id);
      if (frame.t === 'ack') ack.acked();
      else ack.failed(new Error(`send ${frame.id} to ${this.conv}: ${frame.code ?? frame.t} ${frame.message ?? ''}`));
      return;
    }
    const request = this.requests.get(frame.id);
    if (!request) return;
    this.requests.delete(frame.id);
    if (frame.t === 'error') request.reject(new Error(`${frame.code}: ${frame.message}`));
    else request.resolve(frame);
  }

  private abort(error: Error): void {
    for (const waiter of this.acks.values()) waiter.failed(error);
    for (const request of this.requests.values()) request.reject(error);
    this.acks.clear();
    this.requests.clear();
  }
}

export interface SequentSystem extends BenchSystem {
  readonly serverPid: number;
  /** `messages` sends at a fixed total rate, latency counted from when each was due. */
  paced(messages: number, ratePerS: number): Promise<Round>;
}

export async function openSequent(config: E2eConfig, log: (line: string) => void): Promise<SequentSystem> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sequent-bench-e2e-'));
  const secret = randomBytes(24).toString('base64url');
  const server = await spawnServerProcess({
    dataDir,
    secret,
    args: ['--durability', config.durability, '--metrics-port', '0'],
    nodeArgs: [...config.serverNodeArgs, ...(config.profileDir ? ['--cpu-prof', '--cpu-prof-dir', config.profileDir] : [])],
  });
  const clients: SequentClient[] = [];
  const close = async () => {
    for (const client of clients) client.close();
    const exit = await stopServer(server);
    if (exit.code !== 0) log(`sequent: server exited with ${exit.code ?? exit.signal}: ${server.output.slice(-5).join('')}`);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    log(`sequent: server pid ${server.pid} on port ${server.port}, durability ${config.durability}, data ${dataDir}`);
    const tokens = new TokenAuthority(secret);
    const bodyJson = JSON.stringify(messageBody(config.bodyBytes));
    const users = Array.from({ length: config.clients }, (_, i) => `u${i}`);
    clients.push(
      ...(await Promise.all(users.map(async (user) => SequentClient.connect(server.url, await tokens.mint(user, 'd1'), bodyJson)))),
    );
    for (let g = 0; g < config.groups; g++) {
      const conv = `g:bench${g}`;
      const members = users.filter((_, i) => groupOf(config, i) === g);
      // The first member (client g) creates the group with the others in it.
      await clients[g]!.request({ t: 'create', conv, members: members.filter((u) => u !== users[g]) });
    }
    clients.forEach((client, i) => client.target(`g:bench${groupOf(config, i)}`));
  } catch (error) {
    await close();
    throw error;
  }

  const sizes = groupSizes(config);
  const tallies = clients.map((c) => c.tally);
  const measure = async (run: () => Promise<PhaseResult>): Promise<Round> => {
    const sentBefore = clients.map((c) => c.sent);
    const deliveredBefore = tallyTotal(tallies);
    const metricsBefore = await scrapeMetrics(server.metricsUrl);
    const cpuCount = startCpuCount(server.pid);
    const phase = await run();
    const cpu = cpuCount();
    const expected = clients.reduce((sum, c, i) => sum + (c.sent - sentBefore[i]!) * (sizes[groupOf(config, i)]! - 1), 0);
    const deliveries = await settleDeliveries(tallies, deliveredBefore, expected, phase.startedAt, 10_000);
    const said = phaseServerStats(metricsBefore, await scrapeMetrics(server.metricsUrl));
    const note = said
      ? `${said.batches} batches of ${said.entries_per_batch} entries to the store, ${said.ms_per_batch} ms each until durable ` +
        `(${(said.batches_over_10ms * 100).toFixed(1)}% over 10 ms); server-side ack p99 ≤ ${said.server_ack_p99_ms_at_most ?? '?'} ms`
      : undefined;
    return { phase, deliveries, cpu, extra: { server: said }, ...(note ? { note } : {}) };
  };
  return {
    name: `sequent send→ack (durability ${config.durability})`,
    serverPid: server.pid,
    warmup: async (messages) => {
      await measure(() => runWindowed(clients, messages, config.window, config.timeoutMs));
    },
    round: (messages) => measure(() => runWindowed(clients, messages, config.window, config.timeoutMs)),
    paced: (messages, ratePerS) => measure(() => runPaced(clients, messages, ratePerS, config.window, config.timeoutMs)),
    close,
  };
}
