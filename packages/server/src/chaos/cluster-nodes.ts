/**
 * The N node processes of a cluster chaos run (`serve --cluster`), each with its
 * own relay to PostgreSQL and to NATS that the run can hurt: NATS connections
 * cut, PostgreSQL packets dropped. Two ways to drop them:
 *
 * - `nft`: each node runs in a network namespace the run makes (netns.ts), its
 *   PostgreSQL and NATS reached through Unix sockets, and an nftables rule in
 *   the namespace drops its PostgreSQL packets — the node's own sockets go half
 *   open. Its clients reach it through a loopback port of the harness.
 * - `proxy`: the nodes run on the host's loopback and the relay black-holes the
 *   bytes in user space (link-proxy.ts): the fallback that works anywhere.
 *
 * A node keeps its name, its client-facing port and its relays across restarts,
 * as a node restarted under its name on the same machine would.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { endpointOf, startLinkProxy, withHostPort, type Endpoint, type LinkProxy } from './link-proxy.js';
import { createNetns, sweepStaleNetns, type Netns } from './netns.js';
import { killServer, pauseServer, packageRoot, spawnServerProcess, stepClock, stopServer, type ServerChild } from './server-process.js';

export type PgDropMode = 'nft' | 'proxy';

export interface ClusterNodesOptions {
  nodes: number;
  /** The run's fresh database. */
  postgresUrl: string;
  natsUrl: string;
  secret: string;
  leaseMs: number;
  dataDir: string;
  clockFile?: string;
  pgDrop: PgDropMode;
  /** More flags for every node. */
  args?: string[];
  /** The program started as `serve --cluster` (default bin/sequent-server). */
  bin?: string;
  log?: (line: string) => void;
}

/** What `GET /cluster` answers. */
export interface ClusterInfo {
  node: string;
  incarnation?: string;
  live: string[];
  slots: number;
  held: number[];
}

export type NodeState = 'up' | 'down' | 'paused';

export interface ClusterNode {
  readonly name: string;
  readonly index: number;
  state: NodeState;
  /** ws url clients connect to (stable across restarts) */
  readonly url: string;
  readonly httpUrl: string;
  metricsUrl(): string | undefined;
  pid(): number | undefined;
  /** Its PostgreSQL packets are being dropped. */
  pgDropped: boolean;
  /** Its last answer to GET /cluster. */
  lastInfo: ClusterInfo | undefined;
}

/** Ports inside a namespace: each namespace has its own loopback, so every node uses the same ones. */
const IN_NS = { http: 8080, metrics: 9090, pg: 5432, nats: 4222 } as const;

interface NodeParts extends ClusterNode {
  child: ServerChild | undefined;
  pg: LinkProxy;
  nats: LinkProxy;
  /** netns mode: the namespace, its relay process and the harness's ports into it */
  netns?: Netns;
  relay?: ChildProcess;
  inbound: LinkProxy[];
  port: number;
}

export class ClusterNodes {
  readonly nodes: ClusterNode[];
  private readonly parts: NodeParts[];

  private constructor(
    private readonly options: ClusterNodesOptions,
    parts: NodeParts[],
    private readonly socketDir: string | undefined,
  ) {
    this.parts = parts;
    this.nodes = parts;
  }

  static async start(options: ClusterNodesOptions): Promise<ClusterNodes> {
    const pgTarget = endpointOf(options.postgresUrl, 5432);
    const natsTarget = endpointOf(options.natsUrl, 4222);
    // Unix socket paths are limited to about 100 bytes: a short directory of their own.
    const socketDir = options.pgDrop === 'nft' ? mkdtempSync(join(tmpdir(), 'sqc-')) : undefined;
    if (options.pgDrop === 'nft') for (const name of await sweepStaleNetns()) options.log?.(`deleted the namespace ${name} of a run that is gone`);
    const parts: NodeParts[] = [];
    const group = new ClusterNodes(options, parts, socketDir);
    try {
      for (let i = 0; i < options.nodes; i++) parts.push(await group.prepare(i, pgTarget, natsTarget));
      // All at once: nodes must create and migrate the schema safely when they start together.
      await Promise.all(parts.map((p) => group.spawnNode(p)));
    } catch (error) {
      await group.stop();
      throw error;
    }
    return group;
  }

  private async prepare(index: number, pgTarget: Endpoint, natsTarget: Endpoint): Promise<NodeParts> {
    const name = `n${index + 1}`;
    mkdirSync(join(this.options.dataDir, name), { recursive: true });
    if (this.options.pgDrop === 'proxy') {
      const pg = await startLinkProxy(pgTarget);
      const nats = await startLinkProxy(natsTarget);
      // A port for the node that stays its own across restarts: taken once, then released for the node.
      const port = await freePort();
      return { name, index, state: 'down', url: `ws://127.0.0.1:${port}/v1/ws`, httpUrl: `http://127.0.0.1:${port}`, metricsUrl: () => undefined, pid: () => undefined, pgDropped: false, lastInfo: undefined, child: undefined, pg, nats, inbound: [], port };
    }
    const dir = this.socketDir!;
    const sock = (what: string) => join(dir, `${name}-${what}.sock`);
    const pg = await startLinkProxy(pgTarget, { path: sock('pg') });
    const nats = await startLinkProxy(natsTarget, { path: sock('nats') });
    const netns = await createNetns(name);
    const relay = spawnChild(
      netns.exec[0]!,
      [
        ...netns.exec.slice(1),
        process.execPath,
        join(packageRoot(), 'dist', 'src', 'chaos', 'ns-relay.js'),
        JSON.stringify([
          { listen: { host: '127.0.0.1', port: IN_NS.pg }, target: { path: sock('pg') } },
          { listen: { host: '127.0.0.1', port: IN_NS.nats }, target: { path: sock('nats') } },
          { listen: { path: sock('http') }, target: { host: '127.0.0.1', port: IN_NS.http } },
          { listen: { path: sock('metrics') }, target: { host: '127.0.0.1', port: IN_NS.metrics } },
        ]),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const parts: NodeParts = { name, index, state: 'down', url: '', httpUrl: '', metricsUrl: () => undefined, pid: () => undefined, pgDropped: false, lastInfo: undefined, child: undefined, pg, nats, netns, relay, inbound: [], port: IN_NS.http };
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the relay in ${netns.name} did not start`)), 10_000);
      createInterface({ input: relay.stdout! }).once('line', () => {
        clearTimeout(timer);
        resolve();
      });
      relay.once('exit', (code) => reject(new Error(`the relay in ${netns.name} exited (${code})`)));
    });
    const http = await startLinkProxy({ path: sock('http') });
    const metrics = await startLinkProxy({ path: sock('metrics') });
    parts.inbound.push(http, metrics);
    Object.assign(parts, { url: `ws://127.0.0.1:${http.port}/v1/ws`, httpUrl: `http://127.0.0.1:${http.port}`, metricsUrl: () => (parts.child ? `http://127.0.0.1:${metrics.port}/metrics` : undefined) });
    return parts;
  }

  private async spawnNode(p: NodeParts): Promise<void> {
    const o = this.options;
    const netns = p.netns !== undefined;
    const pgUrl = netns ? withHostPort(o.postgresUrl, '127.0.0.1', IN_NS.pg) : withHostPort(o.postgresUrl, '127.0.0.1', p.pg.port!);
    const natsUrl = netns ? `nats://127.0.0.1:${IN_NS.nats}` : `nats://127.0.0.1:${p.nats.port!}`;
    const args = ['--cluster', '--postgres', pgUrl, '--nats', natsUrl, '--node', p.name, '--lease-ms', String(o.leaseMs), '--host', '127.0.0.1', '--metrics-port', String(netns ? IN_NS.metrics : 0), ...(o.args ?? [])];
    p.child = await spawnServerProcess({
      dataDir: join(o.dataDir, p.name),
      secret: o.secret,
      port: p.port,
      args,
      ...(o.clockFile === undefined ? {} : { clockFile: o.clockFile }),
      ...(p.netns ? { wrap: p.netns.exec } : {}),
      ...(o.bin === undefined ? {} : { bin: o.bin }),
      startTimeoutMs: 30_000,
    });
    const child = p.child;
    p.pid = () => child.pid;
    if (!netns) p.metricsUrl = () => child.metricsUrl;
    p.state = 'up';
    void child.exited.then(() => {
      if (p.child === child) p.state = 'down';
    });
  }

  private part(node: ClusterNode): NodeParts {
    return this.parts[node.index]!;
  }

  /** SIGKILL, nothing flushed. */
  async kill(node: ClusterNode): Promise<void> {
    const p = this.part(node);
    if (p.child && p.state !== 'down') {
      if (p.state === 'paused') p.child.child.kill('SIGCONT');
      await killServer(p.child);
    }
    p.state = 'down';
  }

  /** Starts the node again under its name, on its port. */
  async restart(node: ClusterNode): Promise<void> {
    const p = this.part(node);
    if (p.state !== 'down') return;
    await this.spawnNode(p);
  }

  /** SIGSTOP for ms, then SIGCONT. */
  async pause(node: ClusterNode, ms: number): Promise<void> {
    const p = this.part(node);
    if (!p.child || p.state !== 'up') return;
    p.state = 'paused';
    await pauseServer(p.child, ms);
    if (p.state === 'paused') p.state = 'up';
  }

  /** Every NATS connection of the node destroyed; it reconnects at once. */
  natsCut(node: ClusterNode): number {
    const p = this.part(node);
    const n = p.nats.connections();
    p.nats.cut();
    return n;
  }

  /** Drops (or lets through again) the node's PostgreSQL traffic. */
  async pgDrop(node: ClusterNode, on: boolean): Promise<void> {
    const p = this.part(node);
    if (p.netns) {
      if (on) await p.netns.drop([IN_NS.pg]);
      else await p.netns.undrop();
    } else p.pg.blackhole(on);
    p.pgDropped = on;
  }

  stepClock(file: string, offsetMs: number): void {
    stepClock(undefined, file, offsetMs);
    for (const p of this.parts) if (p.child && p.state === 'up') p.child.child.kill('SIGUSR2');
  }

  /** The node's GET /cluster, or undefined when it does not answer in time. */
  async info(node: ClusterNode, timeoutMs = 1000): Promise<ClusterInfo | undefined> {
    if (node.state !== 'up') return undefined;
    try {
      const response = await fetch(`${node.httpUrl}/cluster`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) return undefined;
      const info = (await response.json()) as ClusterInfo;
      this.part(node).lastInfo = info;
      return info;
    } catch {
      return undefined;
    }
  }

  /** Output of a node's current process, for evidence. */
  output(node: ClusterNode): string[] {
    return this.part(node).child?.output ?? [];
  }

  /** Every node stopped (SIGTERM; SIGKILL after 10 s), every relay and namespace gone. */
  async stop(): Promise<void> {
    await Promise.all(
      this.parts.map(async (p) => {
        if (p.netns?.dropping) await p.netns.undrop().catch(() => {});
        p.pg.blackhole(false);
        if (p.child && p.state !== 'down') {
          if (p.state === 'paused') p.child.child.kill('SIGCONT');
          const child = p.child;
          const timer = setTimeout(() => child.child.kill('SIGKILL'), 10_000);
          await stopServer(child);
          clearTimeout(timer);
        }
        p.state = 'down';
        for (const link of [...p.inbound, p.pg, p.nats]) await link.close().catch(() => {});
        if (p.relay && p.relay.exitCode === null) {
          const exited = new Promise((resolve) => p.relay!.once('exit', resolve));
          p.relay.stdin?.end();
          const timer = setTimeout(() => p.relay!.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
        await p.netns?.delete().catch((error: unknown) => this.options.log?.(`could not delete ${p.netns?.name}: ${String(error)}`));
      }),
    );
    if (this.socketDir) rmSync(this.socketDir, { recursive: true, force: true });
  }
}

/** A free loopback port: bound once and released, for a process started right after. */
async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
