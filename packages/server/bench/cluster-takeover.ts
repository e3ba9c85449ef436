/**
 * Takeover trials on a running cluster under a paced load: kill -9 one node,
 * time until a send into one of its conversations, transmitted after the kill,
 * is acked through another node (and, apart, until the survivors' /cluster
 * shows its slots held), keep the load on for the after-kill window, then
 * restart it under the same name and port and wait until it holds its slots
 * again. The victims take turns. Latency counts from when a send was due, so a
 * stall shows even when the other clients carry the rate.
 */
import { slotOf } from '../src/cluster/slots.js';
import type { AckRecord, ClusterClient } from './cluster-client.js';
import type { Deployment } from './cluster-deployment.js';
import { awaitSettled } from './cluster-nodes.js';

/** Starts of a killed node tried before the run gives up. */
const RESTART_ATTEMPTS = 3;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (n: number, places = 2) => Math.round(n * 10 ** places) / 10 ** places;

/** The value at quantile q of a sample (sorted here); NaN when empty. */
export function quantileOf(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Open loop: the n-th send is due at start + n / rate and goes to the next client with room in its window. */
class PacedLoad {
  readonly dueAt: number[] = [];
  readonly latency: number[] = [];
  readonly errors: string[] = [];
  private issued = 0;
  private next = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;

  constructor(
    private readonly clients: readonly ClusterClient[],
    private readonly rate: number,
    private readonly window: number,
    private readonly maxMessages: number,
  ) {}

  start(): void {
    this.startedAt = performance.now();
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Latencies of the sends due in [from, to). */
  latenciesDue(from: number, to: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.dueAt.length; i++) if (this.dueAt[i]! >= from && this.dueAt[i]! < to) out.push(this.latency[i]!);
    return out;
  }

  private tick(): void {
    if (this.stopped) return;
    const due = Math.min(this.maxMessages, Math.floor(((performance.now() - this.startedAt) / 1000) * this.rate) + 1);
    while (this.issued < due) {
      let chosen: ClusterClient | undefined;
      for (let k = 0; k < this.clients.length; k++) {
        const client = this.clients[(this.next + k) % this.clients.length]!;
        if (client.unacked < this.window) {
          chosen = client;
          this.next = (this.next + k + 1) % this.clients.length;
          break;
        }
      }
      if (!chosen) break; // every window is full: the backlog waits, and its latency shows it
      const dueAt = this.startedAt + (this.issued / this.rate) * 1000;
      this.issued++;
      chosen.send(
        () => {
          this.dueAt.push(dueAt);
          this.latency.push(performance.now() - dueAt);
        },
        (error) => {
          if (this.errors.length < 20) this.errors.push(error.message);
        },
      );
    }
    if (this.issued < this.maxMessages) this.timer = setTimeout(() => this.tick(), 1);
  }
}

export interface TakeoverTrial {
  victim: string;
  slots_held: number;
  /** Of the benchmark's conversations, how many were in the victim's slots. */
  convs: number;
  /** Kill → first ack of a send into one of them transmitted after the kill. */
  ack_ms: number | null;
  /** Kill → the survivors' /cluster shows every slot the victim held held by them. */
  slots_ms: number | null;
  /** Restart → listening, and → holding its slots again with the cluster settled. */
  start_ms: number;
  rejoin_ms: number | null;
  after_kill_p50_ms: number;
  after_kill_p99_ms: number;
  /** Sends resent after an `unavailable` from the kill to the restart. */
  resends: number;
  /** Starts of the restarted node that failed before one listened (each is a server problem to report). */
  restart_errors: string[];
}

export interface TakeoverResult {
  rate_msgs_per_s: number;
  steady: { messages: number; p50_ms: number; p99_ms: number };
  after_kill: { messages: number; p50_ms: number; p99_ms: number };
  /** Sends of the paced load still unacked when it had drained (bounded): each one a liveness failure. */
  unacked_at_end: number;
  trials: TakeoverTrial[];
  errors: string[];
}

export async function runTakeover(
  d: Deployment,
  options: { kills: number; windowMs: number; rate: number; window: number; leaseMs: number; timeoutMs: number },
  log: (line: string) => void,
): Promise<TakeoverResult> {
  const { nodes } = d;
  const convs = [...new Set(d.clients.map((c) => c.conv))];
  const trialBudgetMs = options.windowMs + options.timeoutMs;
  const load = new PacedLoad(d.clients, options.rate, options.window, Math.ceil(options.rate * ((options.kills + 1) * trialBudgetMs) / 1000));
  const trials: TakeoverTrial[] = [];
  const startedAt = performance.now();
  load.start();
  try {
    // The first second is the load getting under way; the rest of the window is steady state.
    await sleep(options.windowMs);
    const steadyWindow = [startedAt + 1000, startedAt + options.windowMs] as const;
    const windows: [number, number][] = [];
    for (let k = 0; k < options.kills; k++) {
      const victimIndex = k % nodes.length;
      const victim = nodes[victimIndex]!;
      const survivors = nodes.filter((n) => n !== victim);
      const before = await victim.view();
      if (!before) throw new Error(`takeover ${k + 1}: ${victim.spec.name} does not answer /cluster before the kill:\n${victim.tail()}`);
      const held = new Set(before.held);
      const victimConvs = new Set(convs.filter((c) => held.has(slotOf(c, before.slots))));
      let ackAt: number | undefined;
      let t0 = Number.POSITIVE_INFINITY;
      const watch = (ack: AckRecord) => {
        if (ackAt === undefined && ack.lastAt > t0 && victimConvs.has(ack.conv)) ackAt = ack.at;
      };
      d.ackListeners.add(watch);
      const resends0 = d.clients.reduce((sum, c) => sum + c.resends, 0);
      t0 = performance.now();
      await victim.kill();
      let slotsAt: number | undefined;
      const deadline = t0 + Math.max(10 * options.leaseMs, 10_000);
      while (performance.now() < deadline && (slotsAt === undefined || (ackAt === undefined && victimConvs.size > 0))) {
        if (slotsAt === undefined) {
          const views = await Promise.all(survivors.map((n) => n.view(500)));
          const now = new Set(views.flatMap((v) => v?.held ?? []));
          if ([...held].every((slot) => now.has(slot))) slotsAt = performance.now();
        }
        await sleep(10);
      }
      d.ackListeners.delete(watch);
      const windowEnd = t0 + options.windowMs;
      windows.push([t0, windowEnd]);
      if (performance.now() < windowEnd) await sleep(windowEnd - performance.now());
      const resends = d.clients.reduce((sum, c) => sum + c.resends, 0) - resends0;
      const r0 = performance.now();
      // A supervisor starts a failed node again; each failure is kept for the report.
      const restartErrors: string[] = [];
      for (;;) {
        try {
          await victim.restart();
          break;
        } catch (error) {
          restartErrors.push((error as Error).message.split('\n')[0]!);
          log(`takeover ${k + 1}: restart of ${victim.spec.name} failed: ${(error as Error).message}`);
          if (restartErrors.length >= RESTART_ATTEMPTS) throw error;
        }
      }
      const startMs = performance.now() - r0;
      let rejoinMs: number | null = null;
      try {
        // Settled means it holds what rendezvous gives it: the slots it held before the kill.
        await awaitSettled(nodes, Math.max(30 * options.leaseMs, 60_000));
        rejoinMs = performance.now() - r0;
      } catch (error) {
        log(`takeover ${k + 1}: ${(error as Error).message}`);
      }
      // Its clients go back to it, so that every kill finds the clients spread as at the start.
      d.clients.forEach((client, i) => {
        if (d.homes[i] === victimIndex && client.url !== victim.url) client.move();
      });
      const trial: TakeoverTrial = {
        victim: victim.spec.name,
        slots_held: held.size,
        convs: victimConvs.size,
        ack_ms: ackAt === undefined ? null : round(ackAt - t0, 1),
        slots_ms: slotsAt === undefined ? null : round(slotsAt - t0, 1),
        start_ms: round(startMs, 1),
        rejoin_ms: rejoinMs === null ? null : round(rejoinMs, 1),
        after_kill_p50_ms: Number.NaN,
        after_kill_p99_ms: Number.NaN,
        resends,
        restart_errors: restartErrors,
      };
      trials.push(trial);
      log(
        `takeover ${k + 1}/${options.kills}: kill -9 ${trial.victim} (${trial.slots_held} slots, ${trial.convs} of the conversations): ` +
          `acked again via another node after ${trial.ack_ms ?? 'never'} ms, slots held by the survivors after ${trial.slots_ms ?? 'never'} ms, ${trial.resends} resends in the window; ` +
          `restarted in ${trial.start_ms} ms, its slots back after ${trial.rejoin_ms ?? 'never'} ms`,
      );
      // Let the moved clients and slots settle before the next kill.
      await sleep(Math.max(2000, options.leaseMs));
    }
    load.stop();
    // The windows are read once every send is acked: a send stuck past its window still counts in it, at its full latency.
    const drainUntil = performance.now() + options.timeoutMs;
    while (d.clients.some((c) => c.unacked > 0) && performance.now() < drainUntil) await sleep(50);
    const unacked = d.clients.reduce((sum, c) => sum + c.unacked, 0);
    const steady = load.latenciesDue(...steadyWindow);
    const afterKill: number[] = [];
    windows.forEach(([from, to], k) => {
      const lat = load.latenciesDue(from, to);
      for (const latency of lat) afterKill.push(latency); // a spread of this many arguments overflows the stack
      trials[k]!.after_kill_p50_ms = round(quantileOf(lat, 0.5));
      trials[k]!.after_kill_p99_ms = round(quantileOf(lat, 0.99));
      log(`takeover ${k + 1}: in the ${options.windowMs / 1000} s after the kill p50 ${trials[k]!.after_kill_p50_ms} ms, p99 ${trials[k]!.after_kill_p99_ms} ms over ${lat.length} acks`);
    });
    log(`takeover: steady at ${options.rate} msgs/s: p50 ${round(quantileOf(steady, 0.5))} ms, p99 ${round(quantileOf(steady, 0.99))} ms over ${steady.length} acks; ${unacked} sends unacked at the end`);
    return {
      rate_msgs_per_s: options.rate,
      steady: { messages: steady.length, p50_ms: round(quantileOf(steady, 0.5)), p99_ms: round(quantileOf(steady, 0.99)) },
      after_kill: { messages: afterKill.length, p50_ms: round(quantileOf(afterKill, 0.5)), p99_ms: round(quantileOf(afterKill, 0.99)) },
      unacked_at_end: unacked,
      trials,
      errors: load.errors,
    };
  } finally {
    load.stop();
  }
}
