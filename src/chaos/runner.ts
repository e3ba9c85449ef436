/**
 * `sequent chaos`: the real server as a child process behind a fault proxy,
 * SDK clients on file stores sending into groups and DMs, membership changes,
 * server SIGKILLs and client crashes on a seeded schedule — then every device
 * reads its whole history and the checker judges the recorded run.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { Entry } from '../protocol/frames.js';
import { TokenAuthority } from '../server/auth.js';
import { checkHistory, type Violation } from './checker.js';
import { ChaosDevice } from './device.js';
import { HistoryRecorder, toHistoryEntry, toJsonLines, type History, type HistoryEntry } from './history.js';
import { dmsOf, planRun, type ChaosPlan, type PlanOptions } from './plan.js';
import { Prng } from './prng.js';
import { startFaultProxy, type FaultOptions } from './proxy.js';
import { writeReport, type ChaosReport } from './report.js';
import { killServer, spawnServerProcess, stopServer, type ServerChild } from './server-process.js';

export interface ChaosOptions extends Omit<PlanOptions, 'devicesPerUser'> {
  devicesPerUser?: number;
  /** Where the report, the history and the run's data go. */
  outDir: string;
  /** Mean gap between two sends of one device. */
  sendEveryMs?: number;
  faults?: Partial<FaultOptions>;
  /** How long the end of the run may wait for every unacked send to be acked. */
  settleTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface ChaosResult {
  report: ChaosReport;
  violations: Violation[];
  files: { summary: string; svg: string; json: string; history: string };
  summary: string;
}

export const DEFAULT_FAULTS: FaultOptions = {
  toServerDelayMs: { min: 0, max: 25 },
  toClientDelayMs: { min: 0, max: 25 },
  duplicateToServer: 0.03,
  cutPerFrame: 0.002,
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Which conversations a user may send to now, by the plan's membership as it is being applied. */
class Audience {
  private readonly members: Map<string, Set<string>>;

  constructor(private readonly plan: ChaosPlan) {
    this.members = new Map(plan.groups.map((g) => [g.conv, new Set(g.members)]));
  }

  apply(conv: string, op: 'add' | 'remove', user: string): void {
    if (op === 'add') this.members.get(conv)?.add(user);
    else this.members.get(conv)?.delete(user);
  }

  convsOf(user: string): string[] {
    const groups = [...this.members].filter(([, m]) => m.has(user)).map(([conv]) => conv);
    return [...groups, ...dmsOf(this.plan, user)];
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const plan = planRun({ ...options, devicesPerUser: options.devicesPerUser ?? 2 });
  const rng = new Prng(options.seed, 'run');
  const dataDir = join(options.outDir, 'server-data');
  const storesDir = join(options.outDir, 'client-stores');
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(storesDir, { recursive: true, force: true });
  mkdirSync(storesDir, { recursive: true });

  const secret = randomBytes(24).toString('base64url');
  const tokens = new TokenAuthority(secret);
  const history = new HistoryRecorder();
  const counters = { connections: 0, syncs: 0 };

  let server: ServerChild = await spawnServerProcess({ dataDir, secret });
  history.record({ type: 'server-start' });
  const port = server.port;
  const proxy = await startFaultProxy({ target: server.url, seed: options.seed, faults: { ...DEFAULT_FAULTS, ...options.faults } });
  log(`server pid ${server.pid} on port ${port}; fault proxy at ${proxy.url}`);

  const devices = plan.devices.map(
    (d) =>
      new ChaosDevice({
        user: d.user,
        label: d.device,
        storePath: join(storesDir, `${d.user}-${d.device}.json`),
        url: () => proxy.url,
        token: (user, device) => tokens.mint(user, device),
        history,
        counters,
      }),
  );
  const deviceOf = (user: string, label: string) => devices[plan.devices.findIndex((d) => d.user === user && d.device === label)]!;
  let serverKills = 0;
  // The server counts its dedup hits; read them before each kill (a kill loses them) and at the end.
  let dedupHits = 0;
  const collectDedupHits = async () => {
    dedupHits += await scrapeCounter(server.httpUrl, 'sequent_dedup_hits_total');
  };
  let clientRestarts = 0;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, run: () => Promise<void> | void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      void Promise.resolve(run()).catch((error: unknown) => log(`scheduled step failed: ${String(error)}`));
    }, ms);
    timers.add(timer);
  };

  try {
    await Promise.all(devices.map((d) => d.start()));
    // Groups exist before the run; their owners' first devices create them (resending through faults).
    for (const group of plan.groups) {
      const owner = deviceOf(group.owner, 'd1');
      await retry(() => owner.client!.create(group.conv, group.members.filter((m) => m !== group.owner)), ['conflict'], log);
    }

    const audience = new Audience(plan);
    const runStart = Date.now();
    const sending = devices.map(async (device, i) => {
      const own = rng.fork(`sender-${i}`);
      const every = options.sendEveryMs ?? 120;
      while (Date.now() - runStart < options.durationMs) {
        await sleep(own.int(Math.round(every / 2), Math.round(every * 1.5)));
        const convs = audience.convsOf(device.user);
        if (convs.length > 0 && device.alive) device.send(own.pick(convs));
      }
    });

    for (const fault of plan.faults) {
      later(fault.at, async () => {
        if (fault.kind === 'server-kill') {
          history.record({ type: 'server-kill' });
          serverKills++;
          await collectDedupHits();
          log(`${fault.at} ms: SIGKILL server pid ${server.pid}`);
          await killServer(server);
          await sleep(fault.downMs);
          server = await spawnServerProcess({ dataDir, secret, port });
          history.record({ type: 'server-start' });
        } else if (fault.kind === 'client-kill') {
          const device = deviceOf(fault.user, fault.device);
          if (!device.alive) return;
          log(`${fault.at} ms: kill client ${fault.user}/${fault.device}`);
          device.crash();
          await sleep(fault.downMs);
          await device.start();
          clientRestarts++;
        } else {
          const owner = [deviceOf(fault.by, 'd1'), ...devices.filter((d) => d.user === fault.by)].find((d) => d.alive);
          if (!owner) return;
          audience.apply(fault.conv, fault.op, fault.user);
          log(`${fault.at} ms: ${fault.by} ${fault.op}s ${fault.user} in ${fault.conv}`);
          const change = fault.op === 'add' ? { add: [fault.user] } : { remove: [fault.user] };
          await owner.client?.members(fault.conv, change).catch((error: unknown) => log(`membership change failed: ${String(error)}`));
        }
      });
    }
    await Promise.all(sending);
    while (timers.size > 0) await sleep(50);

    // Faults stop; everything sent must now get through.
    proxy.setFaults({ toServerDelayMs: { min: 0, max: 0 }, toClientDelayMs: { min: 0, max: 0 }, duplicateToServer: 0, cutPerFrame: 0 });
    for (const device of devices) if (!device.alive) await device.start();
    const settleBy = Date.now() + (options.settleTimeoutMs ?? 30_000);
    while (devices.some((d) => d.pending() > 0) && Date.now() < settleBy) await sleep(100);
    const unsettled = devices.reduce((n, d) => n + d.pending(), 0);
    if (unsettled > 0) log(`${unsettled} sends still unacked after the settle timeout`);
    await Promise.all(devices.map((d) => d.stop()));
    await collectDedupHits();

    // Every device reads its whole history directly from the server.
    for (const device of devices) {
      const user = device.user;
      const convs = [...plan.groups.map((g) => g.conv), ...dmsOf(plan, user)];
      const logs = await readAll(server.url, await tokens.mint(user, device.deviceId), convs);
      for (const [conv, { entries, last }] of logs) history.record({ type: 'final-log', user, device: device.deviceId, conv, entries, last });
    }
  } finally {
    for (const timer of timers) clearTimeout(timer);
    await Promise.all(devices.map((d) => d.stop().catch(() => {})));
    await proxy.close();
    await stopServer(server);
  }

  const events = history.events;
  const check = checkHistory(events);
  const historyPath = join(options.outDir, 'history.jsonl');
  writeFileSync(historyPath, toJsonLines(events));
  const written = await writeReport(options.outDir, events, {
    seed: options.seed,
    check,
    counters: {
      serverKills,
      clientRestarts,
      dedupHits,
      connectionsCut: proxy.stats.cutByFault + proxy.stats.cutByCall,
      gapsFilled: gapsFilled(events),
    },
  });
  return {
    report: written.report,
    violations: check.violations,
    files: { summary: written.summaryPath, svg: written.svgPath, json: written.jsonPath, history: historyPath },
    summary: written.summary,
  };
}

/** A counter's value from the server's /metrics; 0 when the server cannot be asked. */
async function scrapeCounter(httpUrl: string, name: string): Promise<number> {
  try {
    const text = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(1000) })).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) || 0 : 0;
  } catch {
    return 0;
  }
}

/** Entries a device learned from a sync that no push had brought it (its own acked sends aside). */
function gapsFilled(events: History): number {
  const seen = new Set<string>();
  let filled = 0;
  for (const event of events) {
    const key = (device: string, conv: string, seq: number) => `${device}\u0000${conv}\u0000${seq}`;
    if (event.type === 'push') seen.add(key(event.device, event.conv, event.entry.seq));
    else if (event.type === 'ack') seen.add(key(event.device, event.conv, event.seq));
    else if (event.type === 'sync-result') {
      for (const entry of event.entries) {
        const k = key(event.device, event.conv, entry.seq);
        if (!seen.has(k)) filled++;
        seen.add(k);
      }
    }
  }
  return filled;
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

/** Pages `sync` over one direct connection; conversations the user may not read are left out. */
async function readAll(url: string, token: string, convs: string[]): Promise<Map<string, { entries: HistoryEntry[]; last: number }>> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  let nextId = 1;
  const waiting = new Map<number, (frame: Record<string, unknown>) => void>();
  socket.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as Record<string, unknown>;
    const resolve = typeof frame['id'] === 'number' ? waiting.get(frame['id']) : undefined;
    if (resolve) {
      waiting.delete(frame['id'] as number);
      resolve(frame);
    }
  });
  const ask = (frame: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      socket.send(JSON.stringify({ ...frame, id }));
    });
  const out = new Map<string, { entries: HistoryEntry[]; last: number }>();
  try {
    const welcome = await ask({ t: 'hello', proto: 1, token });
    if (welcome['t'] !== 'welcome') throw new Error(`final read refused: ${JSON.stringify(welcome)}`);
    for (const conv of convs) {
      const entries: HistoryEntry[] = [];
      let after = 0;
      let last = 0;
      for (;;) {
        const batch = await ask({ t: 'sync', conv, after, limit: 1000 });
        if (batch['t'] !== 'batch') break;
        const msgs = batch['msgs'] as Entry[];
        entries.push(...msgs.map((m) => toHistoryEntry(m)));
        last = Number(batch['last']);
        const newest = msgs.at(-1)?.seq ?? after;
        if (msgs.length === 0 || newest >= last) {
          out.set(conv, { entries, last });
          break;
        }
        after = newest;
      }
    }
  } finally {
    socket.close();
  }
  return out;
}
