/** The chaos run's fault schedule comes from the seed alone. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_RATES, planRun, type PlanOptions } from '../../packages/server/src/chaos/plan.js';
import { defaultSendEveryMs } from '../../packages/server/src/chaos/runner.js';

const options: PlanOptions = { durationMs: 30_000, users: 6, groups: 3, devicesPerUser: 2, seed: 42 };

describe('planRun', () => {
  it('gives the same plan for the same seed and a different one for another seed', () => {
    expect(planRun(options)).toEqual(planRun({ ...options }));
    expect(planRun({ ...options, seed: 43 }).faults).not.toEqual(planRun(options).faults);
  });

  it('schedules at least one server kill, one client kill and one membership change, inside the run, in time order', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const plan = planRun({ ...options, seed });
      const kinds = new Set(plan.faults.map((f) => f.kind));
      for (const kind of ['server-kill', 'client-kill', 'membership', 'cut', 'dup-to-client', 'reorder-to-client']) expect(kinds).toContain(kind);
      const times = plan.faults.map((f) => f.at);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(Math.min(...times)).toBeGreaterThan(0);
      expect(Math.max(...times)).toBeLessThan(options.durationMs);
    }
  });

  it('changes membership consistently: never removes the owner, adds only outsiders, removes only members', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const plan = planRun({ ...options, seed, rates: { membership: 120 } });
      const members = new Map(plan.groups.map((g) => [g.conv, new Set(g.members)]));
      for (const fault of plan.faults) {
        if (fault.kind !== 'membership') continue;
        const group = plan.groups.find((g) => g.conv === fault.conv)!;
        const current = members.get(fault.conv)!;
        expect(fault.by).toBe(group.owner);
        if (fault.op === 'add') {
          expect(current.has(fault.user)).toBe(false);
          current.add(fault.user);
        } else {
          expect(fault.user).not.toBe(group.owner);
          expect(current.has(fault.user)).toBe(true);
          current.delete(fault.user);
        }
      }
    }
  });

  it('makes every device of every user, groups that include their owner, and DMs between two distinct users', () => {
    const plan = planRun(options);
    expect(plan.devices).toHaveLength(12);
    for (const g of plan.groups) expect(g.members).toContain(g.owner);
    for (const dm of plan.dms) {
      const [, a, b] = dm.split(':');
      expect(a! < b!).toBe(true);
    }
  });

  it('scales faults with the run: the same rate per minute for 30 s and for 10 min', () => {
    const perMinute = (durationMs: number, kind: string, rates = {}) => {
      let total = 0;
      for (let seed = 1; seed <= 10; seed++) total += planRun({ ...options, durationMs, seed, rates }).faults.filter((f) => f.kind === kind).length;
      return total / 10 / (durationMs / 60_000);
    };
    for (const durationMs of [30_000, 600_000]) {
      // the margins at both ends take up to 4 s of the run
      expect(perMinute(durationMs, 'server-kill')).toBeGreaterThan(DEFAULT_RATES.serverKill * 0.6);
      expect(perMinute(durationMs, 'server-kill')).toBeLessThan(DEFAULT_RATES.serverKill * 1.3);
      expect(perMinute(durationMs, 'cut', { cut: 30 })).toBeGreaterThan(30 * 0.6);
      expect(perMinute(durationMs, 'cut', { cut: 30 })).toBeLessThan(30 * 1.3);
    }
    expect(planRun({ ...options, rates: { stall: 0 } }).faults.some((f) => f.kind === 'stall')).toBe(false);
  });
});

describe('defaultSendEveryMs', () => {
  it('is 120 ms up to 20 devices, and beyond keeps the whole run at the same offered sends a second', () => {
    for (const devices of [1, 4, 20]) expect(defaultSendEveryMs(devices)).toBe(120);
    const offered = (devices: number) => (devices * 1000) / defaultSendEveryMs(devices);
    for (const devices of [21, 60, 150, 1000]) {
      expect(defaultSendEveryMs(devices)).toBeGreaterThan(120);
      expect(Math.abs(offered(devices) - offered(20)) / offered(20)).toBeLessThan(0.01);
    }
    expect(defaultSendEveryMs(150)).toBe(900);
  });

  it('in a cluster run: node faults name a node, pauses and PostgreSQL drops outlast the lease, NATS cuts and drops are planned', () => {
    const cluster = { nodes: 3, leaseMs: 1000 };
    for (let seed = 1; seed <= 30; seed++) {
      const plan = planRun({ ...options, seed, cluster, rates: { serverPause: 6 } });
      expect(planRun({ ...options, seed, cluster, rates: { serverPause: 6 } })).toEqual(plan);
      const kinds = new Set(plan.faults.map((f) => f.kind));
      for (const kind of ['server-kill', 'nats-cut', 'pg-drop']) expect(kinds).toContain(kind);
      for (const f of plan.faults) {
        if (f.kind === 'server-kill' || f.kind === 'server-pause' || f.kind === 'pg-drop') {
          expect(f.node).toBeGreaterThanOrEqual(0);
          expect(f.node).toBeLessThan(3);
        }
        if (f.kind === 'server-pause' || f.kind === 'pg-drop') {
          expect(f.ms).toBeGreaterThanOrEqual(1500);
          expect(f.ms).toBeLessThanOrEqual(3000);
        }
        if (f.kind === 'nats-cut') expect(f.node === 'all' || (f.node >= 0 && f.node < 3)).toBe(true);
      }
    }
  });

  it('keeps a single server\'s schedule as its seed gave it: no node, no NATS cut, no PostgreSQL drop', () => {
    const plan = planRun(options);
    expect(plan.faults.some((f) => f.kind === 'nats-cut' || f.kind === 'pg-drop')).toBe(false);
    expect(plan.faults.some((f) => 'node' in f)).toBe(false);
    const clustered = planRun({ ...options, cluster: { nodes: 3, leaseMs: 1000 } });
    // The other kinds draw from their own streams: unchanged by the cluster's extra draws.
    const of = (p: typeof plan, kind: string) => p.faults.filter((f) => f.kind === kind).map((f) => f.at);
    for (const kind of ['client-kill', 'membership', 'cut', 'stall', 'dup-to-client']) expect(of(clustered, kind)).toEqual(of(plan, kind));
  });
});
