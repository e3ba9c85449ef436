/**
 * The fault schedule of a chaos run, drawn from the seed alone: who the users
 * and devices are, which groups exist, and when each fault fires: server kills,
 * pauses and clock steps, client kills, membership changes, and faults aimed at
 * one connection. Rates are per minute, so faults scale with the run's length. The same seed and options give
 * the same plan; what the network then does with timing is recorded, not planned.
 */
import { dmConvId, parseConvId } from 'sequent-client/protocol';
import { Prng } from './prng.js';

/** Faults per minute of the run, so that a longer run meets proportionally more of them. */
export interface FaultRates {
  /** SIGKILL of the server (restarted on the same data) */
  serverKill: number;
  /** SIGSTOP of the server for a while, then SIGCONT */
  serverPause: number;
  /** the server's wall clock stepped to a new offset (back or forth) */
  clockStep: number;
  /** a device's app dies and restarts from its store */
  clientKill: number;
  /** a group owner adds or removes a member */
  membership: number;
  /** one connection dropped abruptly */
  cut: number;
  /** one connection's frames vanish for a while, no close (a silent drop) */
  stall: number;
  /** one connection's frames vanish until the client gives up on it */
  halfOpen: number;
  /** a send reaches the server, its answer vanishes, the connection drops */
  lostReply: number;
  /** one client frame delivered twice */
  dupToServer: number;
  /** one server frame delivered twice */
  dupToClient: number;
  /** one server frame held back behind the next */
  reorderToClient: number;
  /** cluster runs only: one node's NATS connections cut (a third of the time every node's: NATS restarted) */
  natsCut: number;
  /** cluster runs only: one node's PostgreSQL packets dropped for longer than the lease */
  pgDrop: number;
}

export const DEFAULT_RATES: Readonly<FaultRates> = Object.freeze({
  serverKill: 6,
  serverPause: 2,
  clockStep: 4,
  clientKill: 6,
  membership: 8,
  cut: 20,
  stall: 6,
  halfOpen: 2,
  lostReply: 6,
  dupToServer: 60,
  dupToClient: 60,
  reorderToClient: 60,
  natsCut: 3,
  pgDrop: 2,
});

/**
 * A cluster run: faults on nodes name the node (an index), and a pause or a
 * PostgreSQL drop lasts 1.5–3 leases, so that another node must take over.
 */
export interface ClusterPlanOptions {
  nodes: number;
  leaseMs: number;
}

export interface PlanOptions {
  durationMs: number;
  users: number;
  groups: number;
  devicesPerUser: number;
  seed: number;
  /** Per minute; missing ones take DEFAULT_RATES. */
  rates?: Partial<FaultRates>;
  /** Share of membership changes whose answer is lost (the request reaches the server). */
  lostMembershipReply?: number;
  /** Several nodes: node faults name their node, and NATS cuts and PostgreSQL drops are planned too. */
  cluster?: ClusterPlanOptions;
}

export interface DevicePlan {
  user: string;
  device: string;
}

export interface GroupPlan {
  conv: string;
  owner: string;
  members: string[];
}

/** A fault aimed at one connection, which the runner picks among those open when it fires. */
export type ConnectionFaultKind = 'cut' | 'stall' | 'half-open' | 'lost-reply' | 'dup-to-server' | 'dup-to-client' | 'reorder-to-client';

export type PlannedFault =
  | { at: number; kind: 'server-kill'; downMs: number; node?: number }
  | { at: number; kind: 'server-pause'; ms: number; node?: number }
  | { at: number; kind: 'nats-cut'; node: number | 'all' }
  | { at: number; kind: 'pg-drop'; ms: number; node: number }
  | { at: number; kind: 'clock-step'; offsetMs: number }
  | { at: number; kind: 'client-kill'; user: string; device: string; downMs: number }
  | { at: number; kind: 'membership'; conv: string; by: string; op: 'add' | 'remove'; user: string; loseReply: boolean }
  | { at: number; kind: ConnectionFaultKind; ms: number };

export interface ChaosPlan {
  seed: number;
  durationMs: number;
  users: string[];
  devices: DevicePlan[];
  groups: GroupPlan[];
  /** Conversations each user starts in: its groups and a DM with a few others. */
  dms: string[];
  faults: PlannedFault[];
}

/** The plan's DMs that `user` is one of the two users of. */
export function dmsOf(plan: ChaosPlan, user: string): string[] {
  return plan.dms.filter((dm) => {
    const ref = parseConvId(dm);
    return ref?.kind === 'dm' && ref.users.includes(user);
  });
}

/** Times of a Poisson-like process at `perMinute` over the run, kept away from its start and end. */
function times(rng: Prng, durationMs: number, perMinute: number, min: number): number[] {
  const out: number[] = [];
  const margin = Math.min(2000, durationMs / 10);
  if (perMinute > 0) {
    const everyMs = 60_000 / perMinute;
    let at = margin + Math.round(everyMs * rng.next());
    // Bounded: at most one fault per ms of the run.
    while (at <= durationMs - margin && out.length < durationMs) {
      out.push(at);
      at += Math.max(1, Math.round(everyMs * (0.5 + rng.next())));
    }
  }
  while (out.length < min) out.push(Math.round(margin + rng.next() * (durationMs - 2 * margin)));
  return out.sort((a, b) => a - b);
}

export function planRun(options: PlanOptions): ChaosPlan {
  const root = new Prng(options.seed, 'plan');
  const users = Array.from({ length: options.users }, (_, i) => `u${i + 1}`);
  const devices = users.flatMap((user) => Array.from({ length: options.devicesPerUser }, (_, d) => ({ user, device: `d${d + 1}` })));

  const groupRng = root.fork('groups');
  const groups: GroupPlan[] = Array.from({ length: options.groups }, (_, g) => {
    const owner = groupRng.pick(users);
    const members = users.filter((u) => u === owner || groupRng.chance(0.6));
    return { conv: `g:chaos-${g + 1}`, owner, members };
  });

  const dmRng = root.fork('dms');
  const dms = new Set<string>();
  for (const user of users) {
    const others = users.filter((u) => u !== user);
    for (let i = 0; i < Math.min(2, others.length); i++) dms.add(dmConvId(user, dmRng.pick(others)));
  }

  const rates: FaultRates = { ...DEFAULT_RATES, ...options.rates };
  const faults: PlannedFault[] = [];
  const killRng = root.fork('server-kills');
  const cluster = options.cluster;
  // Drawn only in a cluster run, so that a single server's schedule stays what its seed always gave.
  const nodeOf = (rng: Prng) => (cluster ? { node: rng.int(0, cluster.nodes - 1) } : {});
  const beyondLease = (rng: Prng) => (cluster ? rng.int(Math.round(cluster.leaseMs * 1.5), cluster.leaseMs * 3) : 0);
  for (const at of times(killRng, options.durationMs, rates.serverKill, rates.serverKill > 0 ? 1 : 0)) {
    faults.push({ at, kind: 'server-kill', downMs: killRng.int(100, 1000), ...nodeOf(killRng) });
  }
  const pauseRng = root.fork('server-pauses');
  for (const at of times(pauseRng, options.durationMs, rates.serverPause, 0)) {
    faults.push(cluster ? { at, kind: 'server-pause', ms: beyondLease(pauseRng), ...nodeOf(pauseRng) } : { at, kind: 'server-pause', ms: pauseRng.int(300, 3000) });
  }
  if (cluster) {
    const natsRng = root.fork('nats-cuts');
    for (const at of times(natsRng, options.durationMs, rates.natsCut, rates.natsCut > 0 ? 1 : 0)) {
      faults.push({ at, kind: 'nats-cut', node: natsRng.chance(1 / 3) ? 'all' : natsRng.int(0, cluster.nodes - 1) });
    }
    const pgRng = root.fork('pg-drops');
    for (const at of times(pgRng, options.durationMs, rates.pgDrop, rates.pgDrop > 0 ? 1 : 0)) {
      faults.push({ at, kind: 'pg-drop', ms: beyondLease(pgRng), node: pgRng.int(0, cluster.nodes - 1) });
    }
  }
  const clockRng = root.fork('clock-steps');
  for (const at of times(clockRng, options.durationMs, rates.clockStep, 0)) faults.push({ at, kind: 'clock-step', offsetMs: clockRng.int(-30_000, 30_000) });
  const clientRng = root.fork('client-kills');
  for (const at of times(clientRng, options.durationMs, rates.clientKill, rates.clientKill > 0 ? 1 : 0)) {
    const victim = clientRng.pick(devices);
    faults.push({ at, kind: 'client-kill', user: victim.user, device: victim.device, downMs: clientRng.int(200, 1500) });
  }
  const connectionFaults: [ConnectionFaultKind, number, [number, number]][] = [
    ['cut', rates.cut, [0, 0]],
    ['stall', rates.stall, [500, 4000]],
    ['half-open', rates.halfOpen, [0, 0]],
    ['lost-reply', rates.lostReply, [200, 200]],
    ['dup-to-server', rates.dupToServer, [0, 0]],
    ['dup-to-client', rates.dupToClient, [0, 0]],
    ['reorder-to-client', rates.reorderToClient, [0, 0]],
  ];
  for (const [kind, rate, [lo, hi]] of connectionFaults) {
    const rng = root.fork(`conn-${kind}`);
    for (const at of times(rng, options.durationMs, rate, 0)) faults.push({ at, kind, ms: rng.int(lo, hi) });
  }
  const memberRng = root.fork('membership');
  const current = new Map(groups.map((g) => [g.conv, new Set(g.members)]));
  for (const at of times(memberRng, options.durationMs, rates.membership, groups.length > 0 && rates.membership > 0 ? 1 : 0)) {
    const group = memberRng.pick(groups);
    const members = current.get(group.conv)!;
    const outsiders = users.filter((u) => !members.has(u));
    const removable = [...members].filter((u) => u !== group.owner);
    const remove = removable.length > 0 && (outsiders.length === 0 || memberRng.chance(0.5));
    const loseReply = memberRng.chance(options.lostMembershipReply ?? 0.25);
    if (remove) {
      const user = memberRng.pick(removable);
      members.delete(user);
      faults.push({ at, kind: 'membership', conv: group.conv, by: group.owner, op: 'remove', user, loseReply });
    } else if (outsiders.length > 0) {
      const user = memberRng.pick(outsiders);
      members.add(user);
      faults.push({ at, kind: 'membership', conv: group.conv, by: group.owner, op: 'add', user, loseReply });
    }
  }
  faults.sort((a, b) => a.at - b.at);
  return { seed: options.seed, durationMs: options.durationMs, users, devices, groups, dms: [...dms].sort(), faults };
}
