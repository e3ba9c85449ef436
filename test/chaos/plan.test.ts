/** The chaos run's fault schedule comes from the seed alone. */
import { describe, expect, it } from 'vitest';
import { planRun, type PlanOptions } from '../../src/chaos/plan.js';

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
      expect(kinds).toEqual(new Set(['server-kill', 'client-kill', 'membership']));
      const times = plan.faults.map((f) => f.at);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(Math.min(...times)).toBeGreaterThan(0);
      expect(Math.max(...times)).toBeLessThan(options.durationMs);
    }
  });

  it('changes membership consistently: never removes the owner, adds only outsiders, removes only members', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const plan = planRun({ ...options, seed, membershipEveryMs: 500 });
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
});
