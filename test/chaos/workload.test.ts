/** The chat-state workload's draws: seeded and by weight, and the bounded targets a device acts on. */
import { describe, expect, it } from 'vitest';
import { Prng } from '../../packages/server/src/chaos/prng.js';
import { CHAT_MIX, pickOperation, Targets, type ChatOperation } from '../../packages/server/src/chaos/workload.js';

describe('pickOperation', () => {
  it('draws the same operations from the same seed, each about as often as its weight says', () => {
    const draw = (seed: number) => Array.from({ length: 10_000 }, (_, i) => pickOperation(new Prng(seed, `t${i}`)));
    expect(draw(7)).toEqual(draw(7));
    const counts = new Map<ChatOperation, number>();
    for (const op of draw(7)) counts.set(op, (counts.get(op) ?? 0) + 1);
    const total = Object.values(CHAT_MIX).reduce((a, b) => a + b, 0);
    for (const [op, weight] of Object.entries(CHAT_MIX) as [ChatOperation, number][]) {
      expect(counts.get(op) ?? 0, op).toBeGreaterThan(((10_000 * weight) / total) * 0.8);
      expect(counts.get(op) ?? 0, op).toBeLessThan(((10_000 * weight) / total) * 1.2);
    }
  });
});

describe('Targets', () => {
  it("keeps the newest own and others' messages, at most `keep` of each, and drops the ones it saw deleted", () => {
    const targets = new Targets(3);
    const rng = new Prng(1);
    for (let seq = 1; seq <= 10; seq++) targets.saw({ seq, kind: 'msg', from: seq % 2 === 0 ? 'alice' : 'bob' }, 'alice');
    targets.saw({ seq: 11, kind: 'delete', from: 'alice', ref: 10 }, 'alice');
    targets.saw({ seq: 12, kind: 'react', from: 'bob', ref: 4 }, 'alice');
    // a deleted message seen again (a resent push) stays out
    targets.saw({ seq: 10, kind: 'msg', from: 'alice' }, 'alice');
    const own = new Set(Array.from({ length: 200 }, () => targets.ownOne(rng)));
    const others = new Set(Array.from({ length: 200 }, () => targets.otherOne(rng)));
    expect([...own].sort((a, b) => a! - b!)).toEqual([6, 8]);
    expect([...others].sort((a, b) => a! - b!)).toEqual([5, 7, 9]);
    expect(new Targets().ownOne(rng)).toBeUndefined();
  });
});
