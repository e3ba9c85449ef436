/**
 * A node that takes slots pushes the newest entry of each recently active
 * conversation in them once more (their old owner may have died between a
 * commit and its pushes): only those slots, only recent conversations, to
 * their current members, once per batch of slots.
 */
import { describe, expect, it } from 'vitest';
import type { Entry } from '../../packages/client/src/protocol/index.js';
import { slotOf } from '../../packages/server/src/cluster/slots.js';
import { TakeoverHeads } from '../../packages/server/src/cluster/takeover-heads.js';
import type { Delivery } from '../../packages/server/src/server/delivery.js';
import { ConversationOwner } from '../../packages/server/src/server/owner.js';
import type { Committed } from '../../packages/server/src/server/sequencer.js';
import { MemoryStore } from '../../packages/server/src/store/memory.js';

const SLOTS = 64;
const NOW = 1_000_000_000;

async function groupWith(store: MemoryStore, conv: string, members: string[], entries: number, ts: number): Promise<void> {
  const log: Entry[] = [{ conv, seq: 1, kind: 'system', mid: `${conv}-1`, ts, from: members[0]!, dev: 'd', body: { op: 'create', members } }];
  for (let seq = 2; seq <= entries; seq++) log.push({ conv, seq, kind: 'msg', mid: `${conv}-${seq}`, ts, from: members[0]!, dev: 'd', body: seq });
  await store.commit({ newConvs: [{ conv, kind: 'group' }], entries: log, memberships: members.map((user) => ({ op: 'add' as const, conv, user, seq: 1 })) });
}

/** Group names until one lands in each wanted slot relation. */
function convIn(slot: number | 'other', taken: number, prefix: string): string {
  for (let i = 0; ; i++) {
    const conv = `g:${prefix}${i}`;
    const s = slotOf(conv, SLOTS);
    if (slot === 'other' ? s !== taken : s === slot) return conv;
  }
}

describe('pushing the heads of slots taken over', () => {
  it('pushes the last entry of each recently active conversation of the taken slots to its members, and nothing else', async () => {
    const store = new MemoryStore();
    await store.init();
    const taken = slotOf('g:recent0', SLOTS);
    const recent = convIn(taken, taken, 'recent');
    const stale = convIn(taken, taken, 'stale');
    const elsewhere = convIn('other', taken, 'elsewhere');
    await groupWith(store, recent, ['ann', 'bo'], 5, NOW - 1000);
    await groupWith(store, stale, ['ann', 'cy'], 3, NOW - 3_600_000);
    await groupWith(store, elsewhere, ['ann', 'di'], 4, NOW - 1000);
    const owner = new ConversationOwner(store, 1000, () => undefined, { fenceOf: (conv) => ({ slot: slotOf(conv, SLOTS), epoch: 3 }) });
    const pushed: Committed[] = [];
    const delivery: Delivery = { entries: (batch) => pushed.push(...batch), read: () => undefined, typing: () => undefined };
    const heads = new TakeoverHeads({ store, owner, delivery, slots: SLOTS, windowMs: 60_000, limit: 100, batchMs: 10, onError: (e) => { throw e; }, now: () => NOW });
    heads.acquired(taken);
    heads.acquired(taken);
    await new Promise((r) => setTimeout(r, 100));
    expect(pushed.map((c) => [c.entry.conv, c.entry.seq])).toEqual([[recent, 5]]);
    expect([...pushed[0]!.audience].sort()).toEqual(['ann', 'bo']);
    expect(pushed[0]!.originId).toBeUndefined();
    await heads.stop();
    heads.acquired(taken);
    await new Promise((r) => setTimeout(r, 50));
    expect(pushed).toHaveLength(1);
  });
});
