/**
 * The cluster side of a chaos run (`sequent-server chaos --cluster`): N nodes on
 * one fresh PostgreSQL database and the machine's NATS (cluster-nodes.ts), one
 * fault proxy per node, devices spread over the nodes, and the node faults of the
 * plan — kill -9 and restart under the same name, SIGSTOP beyond the lease, NATS
 * connections cut, PostgreSQL packets dropped — each recorded with the
 * conversations of the slots the node held, and its takeover timed by polling
 * `GET /cluster`. At the end it reads every entry's epoch from the database.
 */
import pg from 'pg';
import { slotOf } from '../cluster/slots.js';
import { ClusterNodes, type ClusterInfo, type ClusterNode, type PgDropMode } from './cluster-nodes.js';
import type { HistoryRecorder, NodeHurtEvent } from './history.js';
import type { PlannedFault } from './plan.js';
import { netnsSupport } from './netns.js';
import { createChaosDatabase, type ChaosDatabase } from './postgres.js';
import { startFaultProxy, type FaultOptions, type FaultProxy } from './proxy.js';
import { proxyGroup, type ProxyGroup } from './proxy-group.js';

export const CHAOS_NATS_URL = process.env['SEQUENT_NATS_URL'] ?? 'nats://127.0.0.1:4222';
/** The default lease of a cluster chaos run: short, so that takeovers happen within the run. */
export const DEFAULT_CHAOS_LEASE_MS = 1000;

export interface ClusterRunOptions {
  nodes: number;
  leaseMs: number;
  postgresAdminUrl: string;
  natsUrl: string;
  pgDrop: PgDropMode;
  secret: string;
  dataDir: string;
  clockFile: string;
  seed: number;
  faults: FaultOptions;
  /** every conversation of the run, to name those of a hurt node's slots */
  convs: string[];
  history: HistoryRecorder;
  log: (line: string) => void;
  /** The program started as `serve --cluster` (default bin/sequent-server). */
  bin?: string;
}

/**
 * How the run drops a node's PostgreSQL packets. `auto`: nftables in a network
 * namespace when this process may make one, else the relay's user-space
 * black-hole with one loud line — and under CI=true that is an error, since CI
 * installs nftables and must run the faithful fault. `nft` insists.
 */
export async function resolvePgDrop(requested: 'auto' | PgDropMode, warn: (line: string) => void): Promise<PgDropMode> {
  if (requested === 'proxy') return 'proxy';
  const support = await netnsSupport();
  if (support.ok) return 'nft';
  const inCI = process.env['CI'] === 'true';
  if (requested === 'nft' || inCI) throw new Error(`PostgreSQL drops by nftables in a network namespace are not possible here: ${support.why}${inCI ? ' (CI=true)' : ''}`);
  warn(`!!! nftables in a network namespace unavailable (${support.why}): a node's PostgreSQL packets are dropped by the relay in user space instead !!!`);
  return 'proxy';
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ClusterRun {
  /** takeover polls still running */
  private readonly polls = new Set<Promise<void>>();
  /** nodes between a fault and its end: what they say of their own slots does not count */
  private readonly hurtNodes = new Set<string>();
  private poller: NodeJS.Timeout | undefined;

  private constructor(
    private readonly options: ClusterRunOptions,
    readonly database: ChaosDatabase,
    readonly nodes: ClusterNodes,
    readonly proxies: ProxyGroup,
  ) {}

  static async start(options: ClusterRunOptions): Promise<ClusterRun> {
    const database = await createChaosDatabase(options.postgresAdminUrl);
    options.log(`PostgreSQL database ${database.name}, NATS ${options.natsUrl}, ${options.nodes} nodes, lease ${options.leaseMs} ms, PostgreSQL drops by ${options.pgDrop === 'nft' ? 'nftables in a network namespace per node' : 'the relay (user space)'}`);
    let nodes: ClusterNodes | undefined;
    const proxies: FaultProxy[] = [];
    try {
      nodes = await ClusterNodes.start({
        nodes: options.nodes,
        postgresUrl: database.url,
        natsUrl: options.natsUrl,
        secret: options.secret,
        leaseMs: options.leaseMs,
        dataDir: options.dataDir,
        clockFile: options.clockFile,
        pgDrop: options.pgDrop,
        log: options.log,
        ...(options.bin === undefined ? {} : { bin: options.bin }),
      });
      for (const node of nodes.nodes) proxies.push(await startFaultProxy({ target: node.url, seed: options.seed + node.index, faults: options.faults }));
    } catch (error) {
      await Promise.all(proxies.map((p) => p.close()));
      await nodes?.stop();
      await database.drop().catch(() => {});
      throw error;
    }
    const run = new ClusterRun(options, database, nodes, proxyGroup(proxies));
    try {
      await run.settled(30_000);
    } catch (error) {
      await run.stop();
      throw error;
    }
    run.poller = setInterval(() => void run.pollAll(), 500);
    run.poller.unref();
    return run;
  }

  /** Waits until every node sees all of them live and every slot is held (bounded). */
  private async settled(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const infos = await this.pollAll();
      const held = infos.reduce((n, i) => n + (i?.held.length ?? 0), 0);
      const slots = infos[0]?.slots ?? 0;
      last = infos.map((i, k) => `${this.nodes.nodes[k]!.name}: ${i ? `${i.live.length} live, ${i.held.length} held` : 'no answer'}`).join('; ');
      if (slots > 0 && held === slots && infos.every((i) => i?.live.length === this.options.nodes)) {
        this.options.log(`cluster settled: ${last} of ${slots} slots`);
        return;
      }
      await sleep(200);
    }
    throw new Error(`the cluster did not settle within ${timeoutMs} ms (${last})`);
  }

  private pollAll(): Promise<(ClusterInfo | undefined)[]> {
    return Promise.all(this.nodes.nodes.map((n) => this.nodes.info(n, 500)));
  }

  private node(index: number): ClusterNode {
    return this.nodes.nodes[index % this.nodes.nodes.length]!;
  }

  /** The fault proxy url a device connects to: its home node's, or the next serving one's while that is down or paused. */
  deviceUrl(deviceIndex: number): string {
    const n = this.nodes.nodes.length;
    for (let k = 0; k < n; k++) {
      const node = this.node(deviceIndex + k);
      if (node.state === 'up') return this.proxies.proxies[node.index]!.url;
    }
    return this.proxies.proxies[deviceIndex % n]!.url;
  }

  /** A serving node's own url, past the fault proxies (the harness's reads of the truth). */
  directUrl(): string {
    return (this.nodes.nodes.find((n) => n.state === 'up' && !n.pgDropped) ?? this.nodes.nodes[0]!).url;
  }

  pids(): number[] {
    return this.nodes.nodes.map((n) => n.pid()).filter((p): p is number => p !== undefined);
  }

  /** A node fault of the plan. Kills, pauses and drops run one at a time (the caller chains them). */
  async fire(fault: Extract<PlannedFault, { kind: 'server-kill' | 'server-pause' | 'pg-drop' }>, beforeKill: (node: ClusterNode) => Promise<string>): Promise<void> {
    const node = this.node(fault.node ?? 0);
    const { history, log } = this.options;
    const hurt = (kind: NodeHurtEvent['fault'], detail: string) => {
      const info = node.lastInfo;
      const held = new Set(info?.held ?? []);
      const convs = info ? this.options.convs.filter((c) => held.has(slotOf(c, info.slots))) : [];
      history.record({ type: 'fault', kind, node: node.name, detail });
      history.record({ type: 'node-hurt', node: node.name, fault: kind, slots: held.size, convs });
      this.hurtNodes.add(node.name);
      this.timeTakeover(node, kind, [...held], Date.now());
      return held.size;
    };
    await this.nodes.info(node, 500);
    switch (fault.kind) {
      case 'server-kill': {
        if (node.state !== 'up') return;
        const inFlight = await beforeKill(node);
        const slots = hurt('server-kill', `${inFlight}, node ${node.name} down ${fault.downMs} ms`);
        history.record({ type: 'server-kill' });
        log(`${fault.at} ms: SIGKILL node ${node.name} (pid ${node.pid()}, ${slots} slots)`);
        await this.nodes.kill(node);
        await sleep(fault.downMs);
        if (!(await this.restart(node))) return;
        history.record({ type: 'server-start' });
        this.hurtNodes.delete(node.name);
        history.record({ type: 'node-healed', node: node.name, fault: 'server-kill' });
        return;
      }
      case 'server-pause': {
        if (node.state !== 'up') return;
        const slots = hurt('server-pause', `node ${node.name} ${fault.ms} ms`);
        log(`${fault.at} ms: SIGSTOP node ${node.name} for ${fault.ms} ms (${slots} slots)`);
        await this.nodes.pause(node, fault.ms);
        this.hurtNodes.delete(node.name);
        history.record({ type: 'node-healed', node: node.name, fault: 'server-pause' });
        return;
      }
      case 'pg-drop': {
        if (node.state !== 'up') return;
        const slots = hurt('pg-drop', `node ${node.name} ${fault.ms} ms`);
        log(`${fault.at} ms: drop node ${node.name}'s PostgreSQL packets for ${fault.ms} ms (${slots} slots)`);
        await this.nodes.pgDrop(node, true);
        try {
          await sleep(fault.ms);
        } finally {
          await this.nodes.pgDrop(node, false);
        }
        this.hurtNodes.delete(node.name);
        history.record({ type: 'node-healed', node: node.name, fault: 'pg-drop' });
        return;
      }
    }
  }

  /**
   * Starts a killed node again under its name, as a supervisor would: up to 5
   * tries, each failure recorded (a node that cannot rejoin is the checker's
   * `node-restart`); never throws, so that the run goes on with the others.
   */
  private async restart(node: ClusterNode): Promise<boolean> {
    const tries = 5;
    for (let attempt = 1; attempt <= tries; attempt++) {
      try {
        await this.nodes.restart(node);
        return true;
      } catch (error) {
        const line = String(error).split('\n').map((l) => l.trim()).filter((l) => l !== '').at(-1) ?? String(error);
        const why = /sequent-server serve: .*$/.exec(line)?.[0] ?? line.slice(-300);
        this.options.history.record({ type: 'node-start-failed', node: node.name, attempt, error: why, ...(attempt === tries ? { gaveUp: true as const } : {}) });
        this.options.log(`!!! node ${node.name} did not start (try ${attempt} of ${tries}): ${why}`);
        await sleep(300 * attempt);
      }
    }
    return false;
  }

  /** Cuts one node's NATS connections, or every node's (NATS restarted, as the nodes see it). */
  natsCut(fault: Extract<PlannedFault, { kind: 'nats-cut' }>): void {
    const targets = fault.node === 'all' ? this.nodes.nodes : [this.node(fault.node)];
    let cut = 0;
    for (const node of targets) cut += this.nodes.natsCut(node);
    const name = fault.node === 'all' ? 'all' : this.node(fault.node).name;
    this.options.history.record({ type: 'fault', kind: 'nats-cut', node: name, detail: `${cut} connections` });
    this.options.log(`${fault.at} ms: cut NATS of ${name} (${cut} connections)`);
  }

  stepClock(offsetMs: number): void {
    this.nodes.stepClock(this.options.clockFile, offsetMs);
  }

  /**
   * Polls every node's /cluster until each slot the hurt node held is held by a
   * live node again; records the time as a `takeover` event.
   */
  private timeTakeover(victim: ClusterNode, fault: NodeHurtEvent['fault'], slots: number[], at: number): void {
    if (slots.length === 0) return;
    const boundMs = this.options.leaseMs * 4 + 10_000;
    const poll = (async () => {
      while (Date.now() - at < boundMs) {
        await sleep(50);
        const infos = await Promise.all(this.nodes.nodes.map((n) => this.nodes.info(n, 300)));
        const others = new Set(infos.filter((i, k) => i && k !== victim.index).flatMap((i) => i!.held));
        // A node cut off from PostgreSQL may still list slots whose lease ran out: only once healed does it speak for itself.
        const own = new Set(this.hurtNodes.has(victim.name) ? [] : (infos[victim.index]?.held ?? []));
        const by = slots.every((s) => others.has(s)) ? 'others' : slots.every((s) => others.has(s) || own.has(s)) ? 'itself' : undefined;
        if (by) {
          this.options.history.record({ type: 'takeover', node: victim.name, fault, ms: Date.now() - at, by, slots: slots.length });
          return;
        }
      }
      this.options.history.record({ type: 'takeover', node: victim.name, fault, ms: Date.now() - at, by: 'timeout', slots: slots.length });
    })();
    this.polls.add(poll);
    void poll.finally(() => this.polls.delete(poll));
  }

  /** Every node serving again (the plan's faults are over): waits for the takeover polls too. */
  async healed(): Promise<void> {
    for (const node of this.nodes.nodes) {
      if (node.pgDropped) await this.nodes.pgDrop(node, false);
      if (node.state === 'down') await this.restart(node);
    }
    await Promise.all([...this.polls]);
  }

  /** Each conversation's entries' epochs in seq order, from the database, recorded as `epochs` events. */
  async recordEpochs(): Promise<number> {
    const client = new pg.Client({ connectionString: this.database.url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      const where = await client.query<{ table_schema: string }>(`SELECT table_schema FROM information_schema.columns WHERE table_name = 'entries' AND column_name = 'epoch'`);
      const schema = where.rows[0]?.table_schema;
      if (schema === undefined) throw new Error('no entries.epoch column in the run database');
      const rows = await client.query<{ conv: string; seqs: string[]; epochs: string[] }>(
        `SELECT conv, array_agg(seq ORDER BY seq) AS seqs, array_agg(epoch ORDER BY seq) AS epochs FROM "${schema}".entries GROUP BY conv ORDER BY conv`,
      );
      let entries = 0;
      for (const r of rows.rows) {
        entries += r.seqs.length;
        this.options.history.record({ type: 'epochs', conv: r.conv, seqs: r.seqs.map(Number), epochs: r.epochs.map(Number) });
      }
      return entries;
    } finally {
      await client.end();
    }
  }

  async stop(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    await Promise.all([...this.polls]);
    await this.proxies.close();
    await this.nodes.stop();
    await this.database.drop().catch((error: unknown) => this.options.log(`could not drop ${this.database.name}: ${String(error)}`));
  }
}
