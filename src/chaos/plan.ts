/**
 * The fault schedule of a chaos run, drawn from the seed alone: who the users
 * and devices are, which groups exist, and when the server is killed, when a
 * client is killed, and when membership changes. The same seed and options give
 * the same plan; what the network then does with timing is recorded, not planned.
 */
import { dmConvId, parseConvId } from '../protocol/ids.js';
import { Prng } from './prng.js';

export interface PlanOptions {
  durationMs: number;
  users: number;
  groups: number;
  devicesPerUser: number;
  seed: number;
  /** Mean time between server SIGKILLs (default: a fifth of the run, at least one kill). */
  serverKillEveryMs?: number;
  /** Mean time between client kills. */
  clientKillEveryMs?: number;
  /** Mean time between membership changes. */
  membershipEveryMs?: number;
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

export type PlannedFault =
  | { at: number; kind: 'server-kill'; downMs: number }
  | { at: number; kind: 'client-kill'; user: string; device: string; downMs: number }
  | { at: number; kind: 'membership'; conv: string; by: string; op: 'add' | 'remove'; user: string };

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

/** Times of a Poisson-like process over the run, kept away from its start and end. */
function times(rng: Prng, durationMs: number, everyMs: number, min: number): number[] {
  const out: number[] = [];
  const margin = Math.min(2000, durationMs / 10);
  let at = margin;
  for (;;) {
    at += Math.round(everyMs * (0.5 + rng.next()));
    if (at > durationMs - margin) break;
    out.push(at);
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

  const faults: PlannedFault[] = [];
  const killRng = root.fork('server-kills');
  for (const at of times(killRng, options.durationMs, options.serverKillEveryMs ?? options.durationMs / 5, 1)) {
    faults.push({ at, kind: 'server-kill', downMs: killRng.int(100, 1000) });
  }
  const clientRng = root.fork('client-kills');
  for (const at of times(clientRng, options.durationMs, options.clientKillEveryMs ?? options.durationMs / 6, 1)) {
    const victim = clientRng.pick(devices);
    faults.push({ at, kind: 'client-kill', user: victim.user, device: victim.device, downMs: clientRng.int(200, 1500) });
  }
  const memberRng = root.fork('membership');
  const current = new Map(groups.map((g) => [g.conv, new Set(g.members)]));
  for (const at of times(memberRng, options.durationMs, options.membershipEveryMs ?? options.durationMs / 8, groups.length > 0 ? 1 : 0)) {
    const group = memberRng.pick(groups);
    const members = current.get(group.conv)!;
    const outsiders = users.filter((u) => !members.has(u));
    const removable = [...members].filter((u) => u !== group.owner);
    const remove = removable.length > 0 && (outsiders.length === 0 || memberRng.chance(0.5));
    if (remove) {
      const user = memberRng.pick(removable);
      members.delete(user);
      faults.push({ at, kind: 'membership', conv: group.conv, by: group.owner, op: 'remove', user });
    } else if (outsiders.length > 0) {
      const user = memberRng.pick(outsiders);
      members.add(user);
      faults.push({ at, kind: 'membership', conv: group.conv, by: group.owner, op: 'add', user });
    }
  }
  faults.sort((a, b) => a.at - b.at);
  return { seed: options.seed, durationMs: options.durationMs, users, devices, groups, dms: [...dms].sort(), faults };
}
