/**
 * The server processes of the cluster benchmark: `sequent-server serve --cluster`
 * nodes sharing one PostgreSQL database and NATS, or one `serve --postgres` node
 * (the baseline). Each node is its own process, so that kill -9 hits it alone and
 * /proc tells its CPU; a node restarted keeps its name and its port.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assignSlots } from '../src/cluster/slots.js';
import { killServer, SEQUENT_BIN, spawnServerProcess, stopServer, type ServerChild } from '../src/chaos/server-process.js';
import { processCpuSeconds } from './cpu.js';

export interface ClusterView {
  node: string;
  incarnation: string;
  live: string[];
  slots: number;
  held: number[];
}

export interface NodeSpec {
  name: string;
  /** Cluster mode (`--cluster --nats … --node name`) or a single PostgreSQL-backed node. */
  cluster: boolean;
  postgresUrl: string;
  natsUrl: string;
  leaseMs: number;
  secret: string;
  /** Flags for node itself (e.g. --cpu-prof). */
  nodeArgs: string[];
}

/** Whether this build's `serve` knows `--cluster`. */
export function clusterAvailable(): boolean {
  try {
    const help = execFileSync(process.execPath, [SEQUENT_BIN, 'serve', '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return help.includes('--cluster');
  } catch (error) {
    const out = (error as { stdout?: string }).stdout ?? '';
    return out.includes('--cluster');
  }
}

export class NodeProcess {
  private server: ServerChild | undefined;
  private readonly dataDir: string;
  /** Kept across restarts: clients reconnect to the same address. */
  port = 0;
  restarts = 0;

  constructor(readonly spec: NodeSpec) {
    this.dataDir = mkdtempSync(join(tmpdir(), `sequent-bench-cluster-${spec.name}-`));
  }

  get alive(): boolean {
    const child = this.server?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  get pid(): number {
    return this.live().pid;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get metricsUrl(): string | undefined {
    return this.server?.metricsUrl;
  }

  /** The last lines the process printed, for a report when it misbehaves. */
  tail(lines = 8): string {
    return (this.server?.output ?? []).slice(-lines).join('\n');
  }

  async start(): Promise<void> {
    const { spec } = this;
    const clusterArgs = spec.cluster ? ['--cluster', '--nats', spec.natsUrl, '--node', spec.name, '--lease-ms', String(spec.leaseMs)] : [];
    this.server = await spawnServerProcess({
      dataDir: this.dataDir,
      port: this.port,
      secret: spec.secret,
      postgresUrl: spec.postgresUrl,
      args: [...clusterArgs, '--host', '127.0.0.1', '--metrics-port', '0', '--max-connections-per-address', '0'],
      nodeArgs: spec.nodeArgs,
      startTimeoutMs: 30_000,
    });
    this.port = this.server.port;
  }

  /** kill -9: no drain, no release of its leases. */
  async kill(): Promise<void> {
    if (this.server && this.alive) await killServer(this.server);
  }

  async restart(): Promise<void> {
    this.restarts++;
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.server && this.alive) {
      const exit = await stopServer(this.server);
      if (exit.code !== 0 && exit.signal !== 'SIGTERM') process.stderr.write(`${this.spec.name} exited with ${exit.code ?? exit.signal}:\n${this.tail()}\n`);
    }
  }

  dispose(): void {
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** User + system CPU seconds of the live process (all its threads). */
  cpuSeconds(): number {
    const seconds = processCpuSeconds(this.pid);
    if (seconds === undefined) throw new Error(`cannot read /proc/${this.pid}/stat of ${this.spec.name}`);
    return seconds;
  }

  /** GET /cluster, or undefined when the node does not answer. */
  async view(timeoutMs = 1000): Promise<ClusterView | undefined> {
    try {
      const response = await fetch(`${this.httpUrl}/cluster`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) return undefined;
      return (await response.json()) as ClusterView;
    } catch {
      return undefined;
    }
  }

  /** Every sample of the given metric names summed over their labels; a name the node does not export is NaN, never 0. */
  async counters(names: readonly string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = Object.fromEntries(names.map((name) => [name, Number.NaN]));
    if (this.metricsUrl === undefined) throw new Error(`${this.spec.name} has no metrics port`);
    const text = await (await fetch(this.metricsUrl, { signal: AbortSignal.timeout(5000) })).text();
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)/.exec(line);
      if (match && match[1]! in out) out[match[1]!] = (Number.isNaN(out[match[1]!]!) ? 0 : out[match[1]!]!) + Number(match[2]);
    }
    return out;
  }

  private live(): ServerChild {
    if (!this.server || !this.alive) throw new Error(`${this.spec.name} is not running`);
    return this.server;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once every node sees all of them live and each holds exactly the
 * slots rendezvous hashing gives it among them: after a start or a restart the
 * slots move a few per lease tick, and a measurement taken before would count
 * the hand-offs.
 */
export async function awaitSettled(nodes: readonly NodeProcess[], timeoutMs: number): Promise<ClusterView[]> {
  const deadline = performance.now() + timeoutMs;
  let last: (ClusterView | undefined)[] = [];
  const names = nodes.map((n) => n.spec.name);
  let owners: (string | undefined)[] | undefined;
  while (performance.now() < deadline) {
    last = await Promise.all(nodes.map((n) => n.view()));
    const views = last.filter((v): v is ClusterView => v !== undefined);
    if (views.length === nodes.length && views.every((v) => v.live.length === nodes.length)) {
      owners ??= assignSlots(views[0]!.slots, names);
      const settled = views.every((v) => {
        const mine = owners!.flatMap((owner, slot) => (owner === v.node ? [slot] : []));
        const held = new Set(v.held);
        return held.size === mine.length && mine.every((slot) => held.has(slot));
      });
      if (settled) return views;
    }
    await sleep(50);
  }
  throw new Error(
    `the cluster did not settle within ${timeoutMs} ms: ` +
      last
        .map((v, i) => {
          const wins = owners?.filter((o) => o === names[i]).length;
          return `${names[i]}: ${v ? `live [${v.live.join(',')}], holds ${v.held.length} of ${v.slots}${wins === undefined ? '' : ` (wins ${wins})`}` : 'no answer'}`;
        })
        .join('; '),
  );
}
