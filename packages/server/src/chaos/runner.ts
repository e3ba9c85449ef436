/**
 * `sequent-server chaos`: the real server as a child process behind a fault proxy,
 * SDK clients on file stores sending into groups and DMs, membership changes,
 * and faults at planned per-minute rates (server kills, pauses and clock steps,
 * client crashes, and faults on single connections) — then every device reads
 * its whole history, and the checker judges the recorded run. The history goes
 * to disk as it is recorded and is judged in one streaming pass.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TokenAuthority } from '../server/auth.js';
import { checkHistoryStream, type CheckOptions, type Violation } from './checker.js';
import { ChaosDevice } from './device.js';
import { applySystemEntries, DirectSession } from './direct.js';
import { HistoryFile, readHistoryFile } from './history-file.js';
import { HistoryRecorder, type TakeoverEvent } from './history.js';
import { dmsOf, planRun, type ChaosPlan, type PlannedFault, type PlanOptions } from './plan.js';
import { CHAOS_POSTGRES_URL, createChaosDatabase, type ChaosDatabase } from './postgres.js';
import type { PgDropMode } from './cluster-nodes.js';
import { CHAOS_NATS_URL, ClusterRun, DEFAULT_CHAOS_LEASE_MS } from './cluster-run.js';
import { percentiles } from './cluster-checker.js';
import { proxyGroup, type ProxyGroup } from './proxy-group.js';
import { Prng } from './prng.js';
import { startFaultProxy, type FaultOptions } from './proxy.js';
import { ReportBuilder, writeReport, type ChaosReport } from './report.js';
import { CHAT_MIX, DEFAULT_CHAT_SHARE, pickOperation, type ChatOperation } from './workload.js';
import { killServer, pauseServer, spawnServerProcess, stepClock, stopServer, type ServerChild } from './server-process.js';

export interface ChaosOptions extends Omit<PlanOptions, 'devicesPerUser' | 'cluster'> {
  devicesPerUser?: number;
  /** Where the report, the history and the run's data go. */
  outDir: string;
  /** Mean gap between two sends of one device; default: defaultSendEveryMs(devices). */
  sendEveryMs?: number;
  /** Per-frame proxy settings (delays); the counted faults come from the plan's rates. */
  faults?: Partial<FaultOptions>;
  /** How long the end of the run may wait for every unacked send to be acked. */
  settleTimeoutMs?: number;
  /** Run against PostgreSQL: true for the admin URL from the environment, or an admin URL. A fresh database is made and dropped. */
  postgres?: boolean | string;
  /**
   * Share of a device's turns (0–1) that are chat-state operations instead of a
   * message: edits, deletes, reactions, reads, full lists, forbidden tries (workload.ts).
   */
  chatShare?: number;
  /**
   * Several `serve --cluster` nodes on one fresh PostgreSQL database (admin URL as for
   * `postgres`) and NATS, one fault proxy each, devices spread over them.
   */
  cluster?: ClusterChaosOptions;
  /** The checker's floor; by default a quarter of the sends the run should make. */
  floor?: CheckOptions['floor'];
  log?: (line: string) => void;
}

export interface ClusterChaosOptions {
  nodes: number;
  /** default DEFAULT_CHAOS_LEASE_MS */
  leaseMs?: number;
  /** How a node's PostgreSQL packets are dropped: nftables in a network namespace per node, or the relay in user space. */
  pgDrop: PgDropMode;
  /** default SEQUENT_NATS_URL, else nats://127.0.0.1:4222 */
  natsUrl?: string;
  /** After the faults stop, every send must be acked within this (default 4 leases + 10 s). */
  liveBoundMs?: number;
  /** The program started as `serve --cluster` (default bin/sequent-server). */
  bin?: string;
}

export interface ChaosResult {
  report: ChaosReport;
  violations: Violation[];
  files: { summary: string; svg: string; json: string; history: string };
  summary: string;
}

/** Per-frame delays only: duplicates and cuts are counted faults from the plan, so they scale with the run. */
export const DEFAULT_FAULTS: FaultOptions = {
  toServerDelayMs: { min: 0, max: 25 },
  toClientDelayMs: { min: 0, max: 25 },
  duplicateToServer: 0,
  cutPerFrame: 0,
};

/** Answers to a membership change that retrying will not change. */
const FINAL_CODES = new Set(['forbidden', 'bad_request', 'not_found', 'conflict', 'invalid_argument']);

/**
 * The default mean gap between two sends of one device: 120 ms up to 20 devices
 * (the default run's 10 users × 2), longer beyond, so that the run as a whole
 * offers the same ~167 sends a second however many devices share them. Every
 * group message is pushed to every member device, so the work per send grows
 * with the devices too: 150 devices at 120 ms each offered 1250 sends a second,
 * three times what this machine got acked, and their backlog grew without end.
 */
export function defaultSendEveryMs(devices: number): number {
  return Math.round(120 * Math.max(1, devices / 20));
}

/**
 * In a run of more than 20 devices, a device holding this many unacked sends
 * skips its turn to send (counted in the report as `sendsSkipped`): when the
 * server or the machine cannot keep up, the backlog stays bounded instead of
 * growing for the rest of the run. Smaller runs keep every send: they never
 * outran the server here, and their bursts around a kill are what puts
 * messages between a failed membership change and its retry.
 */
export const MAX_DEVICE_BACKLOG = 16;

export function deviceBacklogCap(devices: number): number {
  return devices > 20 ? MAX_DEVICE_BACKLOG : Number.POSITIVE_INFINITY;
}

/** Chat-state operations that are entries of the log, sent and resent by the SDK's outbox. */
const THROUGH_OUTBOX = new Set<ChatOperation>(['edit', 'delete', 'react', 'forbidden']);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Which conversations a user may send to now: the groups' membership as the server's log last said it was. */
class Audience {
  private readonly members: Map<string, Set<string>>;

  constructor(private readonly plan: ChaosPlan) {
    this.members = new Map(plan.groups.map((g) => [g.conv, new Set(g.members)]));
  }

  set(conv: string, members: Iterable<string>): void {
    this.members.set(conv, new Set(members));
  }

  convsOf(user: string): string[] {
    const groups = [...this.members].filter(([, m]) => m.has(user)).map(([conv]) => conv);
    return [...groups, ...dmsOf(this.plan, user)];
  }
}

/**
 * Peak resident memory of this process, of the server, and of both together,
 * sampled once a second from the server's start to the end of the check (the
 * checker runs in this process after the server has stopped, and may be the peak).
 */
class MemoryWatch {
  peakRss = 0;
  peakServerRss = 0;
  /** The largest sum of this process and the server at one sample. */
  peakTotalRss = 0;
  /** The peak of this process while it checks the history. */
  peakCheckRss = 0;
  private serverGone = false;
  private checking = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly serverPids: () => number[]) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  peakHeap = 0;

  sample(): void {
    const own = process.memoryUsage.rss();
    this.peakRss = Math.max(this.peakRss, own);
    if (this.checking) this.peakCheckRss = Math.max(this.peakCheckRss, own);
    this.peakHeap = Math.max(this.peakHeap, process.memoryUsage().heapUsed);
    let server = 0;
    if (!this.serverGone) {
      // In a cluster run, the server is every node: the peak is of their sum.
      for (const pid of this.serverPids()) {
        try {
          const status = readFileSync(`/proc/${pid}/status`, 'utf8');
          server += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
        } catch {
          // not Linux, or the server is between a kill and its restart
        }
      }
      this.peakServerRss = Math.max(this.peakServerRss, server);
    }
    this.peakTotalRss = Math.max(this.peakTotalRss, own + server);
  }

  /** The server has stopped for good: its pid is no longer read (it may be reused). */
  serverStopped(): void {
    this.serverGone = true;
  }

  checkStarts(): void {
    this.checking = true;
    this.sample();
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const clusterOptions = options.cluster;
  const leaseMs = clusterOptions?.leaseMs ?? DEFAULT_CHAOS_LEASE_MS;
  const { cluster: _cluster, ...planOptions } = options;
  const plan = planRun({ ...planOptions, devicesPerUser: options.devicesPerUser ?? 2, ...(clusterOptions ? { cluster: { nodes: clusterOptions.nodes, leaseMs } } : {}) });
  const rng = new Prng(options.seed, 'run');
  const dataDir = join(options.outDir, 'server-data');
  const storesDir = join(options.outDir, 'client-stores');
  const clockFile = join(options.outDir, 'server-clock-offset');
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(storesDir, { recursive: true, force: true });
  mkdirSync(storesDir, { recursive: true });
  stepClock(undefined, clockFile, 0);

  const secret = randomBytes(24).toString('base64url');
  const tokens = new TokenAuthority(secret);
  const historyPath = join(options.outDir, 'history.jsonl');
  const file = new HistoryFile(historyPath);
  const history = new HistoryRecorder(undefined, file);
  const counters = { connections: 0, syncs: 0 };
  const sendEveryMs = options.sendEveryMs ?? defaultSendEveryMs(plan.devices.length);
  const chatShare = Math.min(1, Math.max(0, options.chatShare ?? DEFAULT_CHAT_SHARE));
  let finalViews = 0;
  const viewsSkipped: string[] = [];

  let database: ChaosDatabase | undefined;
  if (options.postgres && !clusterOptions) {
    database = await createChaosDatabase(typeof options.postgres === 'string' ? options.postgres : CHAOS_POSTGRES_URL);
    log(`PostgreSQL database ${database.name}`);
  }
  const spawn = (port?: number) =>
    spawnServerProcess({ dataDir, secret, clockFile, args: ['--metrics-port', '0'], ...(port === undefined ? {} : { port }), ...(database ? { postgresUrl: database.url } : {}) });

  let server: ServerChild | undefined;
  let cluster: ClusterRun | undefined;
  let proxy: ProxyGroup | undefined;
  let memory: MemoryWatch | undefined;
  const devices: ChaosDevice[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let dedupHits = 0;
  let sendsSkipped = 0;
  const backlogCap = deviceBacklogCap(plan.devices.length);
  /** Sends one device unless its backlog is full (then the turn is counted as skipped). */
  const sendFrom = (device: ChaosDevice, conv: string): void => {
    if (device.pending() >= backlogCap) sendsSkipped++;
    else device.send(conv);
  };
  try {
    let port = 0;
    if (clusterOptions) {
      cluster = await ClusterRun.start({
        nodes: clusterOptions.nodes,
        leaseMs,
        postgresAdminUrl: typeof options.postgres === 'string' ? options.postgres : CHAOS_POSTGRES_URL,
        natsUrl: clusterOptions.natsUrl ?? CHAOS_NATS_URL,
        pgDrop: clusterOptions.pgDrop,
        ...(clusterOptions.bin === undefined ? {} : { bin: clusterOptions.bin }),
        secret,
        dataDir,
        clockFile,
        seed: options.seed,
        faults: { ...DEFAULT_FAULTS, ...options.faults },
        convs: [...plan.groups.map((g) => g.conv), ...plan.dms],
        history,
        log,
      });
      history.record({ type: 'server-start' });
      proxy = cluster.proxies;
      const nodes = cluster.nodes.nodes;
      memory = new MemoryWatch(() => cluster!.pids());
      log(`nodes ${nodes.map((n) => `${n.name} pid ${n.pid()}`).join(', ')}; fault proxies at ${proxy.proxies.map((p) => p.url).join(', ')}`);
    } else {
      server = await spawn();
      history.record({ type: 'server-start' });
      port = server.port;
      memory = new MemoryWatch(() => [server!.pid]);
      proxy = proxyGroup([await startFaultProxy({ target: server.url, seed: options.seed, faults: { ...DEFAULT_FAULTS, ...options.faults } })]);
      log(`server pid ${server.pid} on port ${port}; fault proxy at ${proxy.proxies[0]!.url}`);
    }
    const theProxy = proxy;
    const current = (): ServerChild => server!;
    /** Where the harness reads the truth: the server, or a serving node, past the fault proxies. */
    const directUrl = (): string => (cluster ? cluster.directUrl() : current().url);

    for (const [i, d] of plan.devices.entries()) {
      const theCluster = cluster;
      devices.push(
        new ChaosDevice({
          user: d.user,
          label: d.device,
          storePath: join(storesDir, `${d.user}-${d.device}.json`),
          url: theCluster ? () => theCluster.deviceUrl(i) : () => theProxy.proxies[0]!.url,
          token: (user, device) => tokens.mint(user, device),
          history,
          counters,
        }),
      );
    }
    const deviceOf = (user: string, label: string) => devices[plan.devices.findIndex((d) => d.user === user && d.device === label)]!;
    const aliveOf = (user: string) => [deviceOf(user, 'd1'), ...devices.filter((d) => d.user === user)].find((d) => d.alive);
    // The server counts its dedup hits; read them before each kill (a kill loses them) and at the end.
    const collectDedupHits = async (only?: { metricsUrl(): string | undefined }) => {
      if (!cluster) dedupHits += await scrapeCounter(current().metricsUrl, 'sequent_dedup_hits_total');
      else for (const n of only ? [only] : cluster.nodes.nodes) dedupHits += await scrapeCounter(n.metricsUrl(), 'sequent_dedup_hits_total');
    };
    const later = (ms: number, run: () => Promise<void> | void) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        void Promise.resolve(run()).catch((error: unknown) => log(`scheduled step failed: ${String(error)}`));
      }, ms);
      timers.add(timer);
    };

    // What the server's log says each group's members are: the observer is a device of the owner, outside the history.
    const observed = new Map<string, { after: number; members: Set<string> }>();
    let observerReads = 0;
    const truthOf = async (conv: string, owner: string): Promise<Set<string> | undefined> => {
      const state = observed.get(conv) ?? { after: 0, members: new Set<string>() };
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          const session = await DirectSession.open(directUrl(), await tokens.mint(owner, 'chaos-observer'), 3000);
          try {
            // In a cluster these reads go to any node: recorded, so that a stale one is judged like a device's (sync-stale, head-regress, gap).
            const read = await session.readLog(conv, state.after, undefined, cluster ? { history, user: owner, device: 'chaos-observer', syncId: () => `observer-${++observerReads}` } : undefined);
            if ('error' in read) throw new Error(read.error);
            applySystemEntries(state.members, read.entries);
            state.after = Math.max(state.after, read.entries.at(-1)?.seq ?? state.after);
            observed.set(conv, state);
            return state.members;
          } finally {
            session.close();
          }
        } catch {
          await sleep(250);
        }
      }
      return undefined;
    };

    await Promise.all(devices.map((d) => d.start()));
    // Groups exist before the run; their owners' first devices create them (resending through faults).
    const audience = new Audience(plan);
    for (const group of plan.groups) {
      const owner = deviceOf(group.owner, 'd1');
      await retry(() => owner.client!.create(group.conv, group.members.filter((m) => m !== group.owner)), ['conflict'], log);
      const truth = await truthOf(group.conv, group.owner);
      if (truth) audience.set(group.conv, truth);
    }

    const runStart = Date.now();
    const sending = devices.map(async (device, i) => {
      const own = rng.fork(`sender-${i}`);
      while (Date.now() - runStart < options.durationMs) {
        await sleep(own.int(Math.round(sendEveryMs / 2), Math.round(sendEveryMs * 1.5)));
        const convs = audience.convsOf(device.user);
        if (convs.length === 0 || !device.alive) continue;
        const conv = own.pick(convs);
        if (chatShare > 0 && own.chance(chatShare)) {
          const operation = pickOperation(own);
          // Edits, deletes and reactions go through the outbox like messages, and count against the same backlog.
          if (THROUGH_OUTBOX.has(operation) && device.pending() >= backlogCap) {
            sendsSkipped++;
            continue;
          }
          if (device.act(conv, operation, own)) continue;
        }
        sendFrom(device, conv);
      }
    });

    // Server kills and pauses one at a time; membership changes one at a time (each waits for the truth).
    let serverOps: Promise<void> = Promise.resolve();
    let memberOps: Promise<void> = Promise.resolve();
    const faultRng = rng.fork('targets');
    /** A burst first, so that the kill lands while many sends are in flight; returns how many. */
    const burst = async (): Promise<number> => {
      for (const d of devices) {
        const convs = audience.convsOf(d.user);
        if (!d.alive || convs.length === 0) continue;
        for (let k = 0; k < 3; k++) sendFrom(d, faultRng.pick(convs));
      }
      await sleep(15);
      return devices.reduce((n, d) => n + d.pending(), 0);
    };
    const fire = async (fault: PlannedFault): Promise<void> => {
      const theCluster = cluster;
      if (theCluster) {
        switch (fault.kind) {
          case 'server-kill':
          case 'server-pause':
          case 'pg-drop':
            // One failed step must not stop the chain: the faults after it still fire, the run still ends.
            serverOps = serverOps
              .then(() =>
                theCluster.fire(fault, async (node) => {
                  const inFlight = await burst();
                  await collectDedupHits(node);
                  return `${inFlight} sends in flight`;
                }),
              )
              .catch((error: unknown) => log(`${fault.at} ms: ${fault.kind} failed: ${String(error)}`));
            return serverOps;
          case 'nats-cut':
            theCluster.natsCut(fault);
            return;
          case 'clock-step':
            history.record({ type: 'fault', kind: 'clock-step', detail: `offset ${fault.offsetMs} ms` });
            theCluster.stepClock(fault.offsetMs);
            return;
          default:
            break;
        }
      }
      switch (fault.kind) {
        case 'nats-cut':
        case 'pg-drop':
          // Planned only for a cluster.
          return;
        case 'server-kill':
          serverOps = serverOps.then(async () => {
            const inFlight = await burst();
            await collectDedupHits();
            history.record({ type: 'fault', kind: 'server-kill', detail: `${inFlight} sends in flight` });
            history.record({ type: 'server-kill' });
            log(`${fault.at} ms: SIGKILL server pid ${current().pid} with ${inFlight} sends in flight`);
            await killServer(current());
            await sleep(fault.downMs);
            server = await spawn(port);
            history.record({ type: 'server-start' });
          });
          return serverOps;
        case 'server-pause':
          serverOps = serverOps.then(async () => {
            history.record({ type: 'fault', kind: 'server-pause', detail: `${fault.ms} ms` });
            log(`${fault.at} ms: SIGSTOP server for ${fault.ms} ms`);
            await pauseServer(current(), fault.ms);
          });
          return serverOps;
        case 'clock-step':
          history.record({ type: 'fault', kind: 'clock-step', detail: `offset ${fault.offsetMs} ms` });
          stepClock(current(), clockFile, fault.offsetMs);
          return;
        case 'client-kill': {
          const device = deviceOf(fault.user, fault.device);
          if (!device.alive) return;
          log(`${fault.at} ms: kill client ${fault.user}/${fault.device}`);
          history.record({ type: 'fault', kind: 'client-kill', user: device.user, device: device.deviceId });
          device.crash();
          await sleep(fault.downMs);
          await device.start();
          return;
        }
        case 'membership':
          memberOps = memberOps.then(() => changeMembership(fault));
          return memberOps;
        default: {
          // While the server is down no connection is open: wait a little for one (bounded) rather than lose the fault.
          let open = theProxy.open();
          for (let i = 0; open.length === 0 && i < 30; i++) {
            await sleep(100);
            open = theProxy.open();
          }
          if (open.length === 0) return;
          const target = faultRng.pick(open);
          const injected =
            fault.kind === 'stall'
              ? { kind: 'stall' as const, ms: fault.ms }
              : fault.kind === 'half-open'
                ? { kind: 'stall' as const, ms: Number.POSITIVE_INFINITY }
                : fault.kind === 'lost-reply'
                  ? { kind: 'lost-reply' as const, match: (f: Record<string, unknown>) => f['t'] === 'send', cutAfterMs: fault.ms }
                  : { kind: fault.kind };
          if (theProxy.inject(target, injected)) history.record({ type: 'fault', kind: fault.kind, detail: `proxy connection ${target}` });
        }
      }
    };

    /** Applies a planned change, retrying while the answer is lost or "try again"; then asks the log what really happened. */
    const changeMembership = async (fault: Extract<PlannedFault, { kind: 'membership' }>): Promise<void> => {
      const change = fault.op === 'add' ? { add: [fault.user] } : { remove: [fault.user] };
      let loseReply = fault.loseReply;
      // Changes run one at a time; on a starved machine they fall behind, and must not hold the run's end.
      const over = () => Date.now() - runStart > options.durationMs;
      if (over()) {
        log(`${fault.at} ms: change of ${fault.conv} skipped, the run is over`);
        return;
      }
      for (let attempt = 1; attempt <= 8 && !over(); attempt++) {
        const owner = aliveOf(fault.by);
        if (!owner?.client) {
          await sleep(300);
          continue;
        }
        if (loseReply) {
          // The request reaches the server, its answer vanishes: the SDK sees "connection closed before the reply".
          loseReply = false;
          let armed = true;
          const match = (f: Record<string, unknown>): boolean => {
            if (!armed || f['t'] !== 'members' || f['conv'] !== fault.conv) return false;
            armed = false;
            return true;
          };
          for (const id of theProxy.open()) theProxy.inject(id, { kind: 'lost-reply', match, cutAfterMs: 200 });
          history.record({ type: 'fault', kind: 'lost-reply', detail: `members ${fault.conv}` });
        }
        log(`${fault.at} ms: ${fault.by} ${fault.op}s ${fault.user} in ${fault.conv} (try ${attempt})`);
        try {
          await owner.client.members(fault.conv, change);
          break;
        } catch (error) {
          const code = (error as { code?: string }).code ?? '';
          log(`membership change failed: ${String(error)}`);
          if (FINAL_CODES.has(code)) break;
          await sleep(300);
        }
      }
      const truth = await truthOf(fault.conv, fault.by);
      if (truth) audience.set(fault.conv, truth);
      else log(`could not re-read the members of ${fault.conv}`);
    };

    for (const fault of plan.faults) later(fault.at, () => fire(fault));
    await Promise.all(sending);
    // Bounded: every timer fires within the run, and each step has its own bounds.
    for (let i = 0; timers.size > 0 && i < 1200; i++) await sleep(50);
    await serverOps;
    await memberOps;

    // Faults stop; everything sent must now get through.
    proxy.setFaults({ toServerDelayMs: { min: 0, max: 0 }, toClientDelayMs: { min: 0, max: 0 }, duplicateToServer: 0, cutPerFrame: 0 });
    if (cluster) {
      await cluster.healed();
      cluster.stepClock(0);
      history.record({ type: 'faults-stop', boundMs: clusterOptions?.liveBoundMs ?? leaseMs * 4 + 10_000 });
    } else stepClock(current(), clockFile, 0);
    for (const device of devices) if (!device.alive) await device.start();
    const settleBy = Date.now() + (options.settleTimeoutMs ?? 30_000);
    while (devices.some((d) => d.pending() > 0) && Date.now() < settleBy) await sleep(100);
    // Every send not acked by now is listed with its reason: the checker accepts nothing else.
    let unsettled = 0;
    for (const device of devices) {
      for (const u of device.unsettled()) {
        unsettled++;
        history.record({ type: 'pending', user: device.user, device: device.deviceId, ...u });
      }
    }
    if (unsettled > 0) log(`${unsettled} sends not acked at the end (listed as pending)`);
    // Each device's folded view of each conversation its user is a member of at the end, through
    // its own SDK. A former member's device keeps what it was shown, while the server hides what
    // was deleted after the removal: no promise says those two agree. A conversation with a send
    // still on its way may change after a view was taken: not judged either.
    const moving = new Set(devices.flatMap((d) => d.unsettled().filter((u) => u.state === 'sending').map((u) => u.conv)));
    for (const device of devices) {
      for (const conv of audience.convsOf(device.user)) {
        if (moving.has(conv)) {
          viewsSkipped.push(`${device.user}/${device.deviceId} ${conv}`);
          continue;
        }
        const items = await device.finalView(conv);
        if (!items) continue;
        finalViews++;
        history.record({ type: 'final-view', user: device.user, device: device.deviceId, conv, items });
      }
      // Its SDK now holds the whole readable history: let it go before the next device loads its own.
      await device.stop();
    }
    if (viewsSkipped.length > 0) log(`${viewsSkipped.length} final views not taken: a send was still on its way`);
    await Promise.all(devices.map((d) => d.stop()));
    await collectDedupHits();

    // Every device reads its whole history directly from the server.
    for (const device of devices) await finalRead(directUrl(), tokens, device, [...plan.groups.map((g) => g.conv), ...dmsOf(plan, device.user)], history);
    if (cluster) log(`epochs of ${await cluster.recordEpochs()} entries read from the database`);
  } finally {
    for (const timer of timers) clearTimeout(timer);
    await Promise.all(devices.map((d) => d.stop().catch(() => {})));
    await proxy?.close();
    if (server) await stopServer(server);
    await cluster?.stop();
    memory?.serverStopped();
    file.close();
    await database?.drop().catch((error: unknown) => log(`could not drop ${database?.name}: ${String(error)}`));
  }

  // One pass over the file feeds both the checker and the report.
  const builder = new ReportBuilder();
  const polled: TakeoverEvent[] = [];
  const startFailures: string[] = [];
  const planned = (devices.length * options.durationMs) / sendEveryMs;
  const floor = options.floor ?? { acks: Math.max(1, Math.floor(planned / 4)), finalLogs: devices.length };
  memory?.checkStarts();
  let check: Awaited<ReturnType<typeof checkHistoryStream>>;
  try {
    check = await checkHistoryStream(() => readHistoryFile(historyPath), { floor }, (e) => {
      builder.add(e);
      if (e.type === 'takeover') polled.push(e);
      if (e.type === 'node-start-failed') startFailures.push(`${e.node} try ${e.attempt}: ${e.error}`);
    });
  } finally {
    memory?.stop();
  }
  const written = await writeReport(options.outDir, builder, {
    seed: options.seed,
    check,
    faultWindowMs: options.durationMs,
    counters: { dedupHits, connectionsCut: proxy?.cuts() ?? 0 },
    run: {
      store: cluster ? `cluster of ${clusterOptions?.nodes} nodes on postgres (lease ${leaseMs} ms, PostgreSQL drops by ${clusterOptions?.pgDrop})` : database ? 'postgres' : 'sqlite',
      // Two measures of a takeover: the first ack in a moved slot's conversation, and /cluster showing every slot held again.
      ...(cluster
        ? {
            takeoverToAckMs: msSummary(check.takeovers.flatMap((t) => (t.ms === undefined ? [] : [t.ms]))),
            takeoverWithoutAck: check.takeovers.filter((t) => t.ms === undefined).length,
            takeoverSlotsMs: msSummary(polled.filter((t) => t.by !== 'timeout').map((t) => t.ms)),
            takeoverSlotsTimedOut: polled.filter((t) => t.by === 'timeout').length,
            nodeStartFailures: startFailures.length === 0 ? 'none' : startFailures.join(' | '),
            takeoverSlotsBy: `others ${polled.filter((t) => t.by === 'others').length} · itself ${polled.filter((t) => t.by === 'itself').length}`,
          }
        : {}),
      events: history.count,
      historyMB: Math.round(file.bytes / 2 ** 20),
      peakRssMB: Math.round((memory?.peakRss ?? 0) / 2 ** 20),
      peakHeapMB: Math.round((memory?.peakHeap ?? 0) / 2 ** 20),
      peakServerRssMB: Math.round((memory?.peakServerRss ?? 0) / 2 ** 20),
      peakTotalRssMB: Math.round((memory?.peakTotalRss ?? 0) / 2 ** 20),
      sendEveryMs,
      sendsSkipped,
      chatShare,
      chatOps: (Object.keys(CHAT_MIX) as ChatOperation[]).map((op) => `${op} ${devices.reduce((n, d) => n + d.operations[op], 0)}`).join(' · '),
      refusedDiscarded: devices.reduce((n, d) => n + d.discarded, 0),
      finalViews,
      finalViewsSkipped: viewsSkipped.length,
      checkerPeakRssMB: Math.round((memory?.peakCheckRss ?? process.memoryUsage.rss()) / 2 ** 20),
    },
  });
  return {
    report: written.report,
    violations: check.violations,
    files: { summary: written.summaryPath, svg: written.svgPath, json: written.jsonPath, history: historyPath },
    summary: written.summary,
  };
}

/** "p50 … · p99 … · max … (n)" of a list of ms, or "none". */
function msSummary(values: number[]): string {
  const p = percentiles(values);
  return p ? `p50 ${Math.round(p.p50)} · p99 ${Math.round(p.p99)} · max ${Math.round(p.max)} (${p.n})` : 'none';
}

/** A device's final log of every conversation, or why not; retried while the server is unreachable. */
async function finalRead(url: string, tokens: TokenAuthority, device: ChaosDevice, convs: string[], history: HistoryRecorder): Promise<void> {
  const who = { user: device.user, device: device.deviceId };
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    let session: DirectSession;
    try {
      session = await DirectSession.open(url, await tokens.mint(device.user, device.deviceId));
    } catch (error) {
      lastError = String(error);
      await sleep(500);
      continue;
    }
    try {
      for (const conv of convs) {
        const read = await session.readLog(conv);
        // A refusal is recorded too: the checker decides whether this device should have had that log.
        if ('error' in read) history.record({ type: 'final-refused', ...who, conv, reason: read.error });
        else history.record({ type: 'final-log', ...who, conv, entries: read.entries, last: read.last });
      }
      return;
    } catch (error) {
      lastError = String(error);
    } finally {
      session.close();
    }
  }
  history.record({ type: 'final-refused', ...who, reason: lastError });
}

/** A counter's value from the server's /metrics; 0 when the server cannot be asked. */
async function scrapeCounter(metricsUrl: string | undefined, name: string): Promise<number> {
  try {
    if (metricsUrl === undefined) return 0;
    const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(1000) })).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) || 0 : 0;
  } catch {
    return 0;
  }
}

async function retry<T>(attempt: () => Promise<T>, acceptable: string[], log: (line: string) => void): Promise<T | undefined> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      const code = (error as { code?: string }).code ?? '';
      if (acceptable.includes(code)) return undefined;
      if (i >= 20) throw error;
      log(`retrying after ${code || String(error)}`);
      await sleep(200);
    }
  }
}
