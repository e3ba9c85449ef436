/**
 * The conversation owner's state, which only its own methods change: what
 * `assign` applies at an entry's seq, how the head follows commits, and when a
 * state may leave memory.
 */
import { describe, expect, it } from 'vitest';
import { ConversationOwner } from '../../packages/server/src/server/owner.js';
import { MemoryStore } from '../../packages/server/src/store/memory.js';

const draft = (from: string, extra: object = {}) => ({ kind: 'system' as const, from, dev: 'd', body: {}, ...extra });

describe('ConversationOwner', () => {
  it('assign gives gapless seqs and a ts that never goes below the newest, and applies membership at the entry’s seq', async () => {
    const owner = new ConversationOwner(new MemoryStore());
    const state = (await owner.get('g:o'))!;
    expect(state.exists).toBe(false);

    const create = state.assign(draft('ann', { add: ['ann', 'bob'] }), '1', 1000);
    expect(create.entry).toMatchObject({ conv: 'g:o', seq: 1, ts: 1000, mid: '1', from: 'ann' });
    expect(create.newConv).toBe('group');
    expect(create.memberships).toEqual([
      { op: 'add', conv: 'g:o', user: 'ann', seq: 1 },
      { op: 'add', conv: 'g:o', user: 'bob', seq: 1 },
    ]);
    expect(state.exists).toBe(true);
    expect(state.isMember('bob')).toBe(true);

    // A clock behind the newest ts: the entry takes the newest ts.
    const remove = state.assign(draft('ann', { remove: ['bob'] }), '2', 900);
    expect(remove.entry).toMatchObject({ seq: 2, ts: 1000 });
    expect(remove.newConv).toBeUndefined();
    // A removed member still gets the entry that removes it.
    expect([...remove.audience].sort()).toEqual(['ann', 'bob']);
    expect(state.isMember('bob')).toBe(false);
    expect(state.memberList).toEqual(['ann']);
    expect(state.last).toBe(2);
    // Nothing is durable yet: reads stop at the committed seq.
    expect(state.committed).toBe(0);
    expect(state.readableRange('ann')).toEqual({ from: 1, until: 0 });
    // The sender's read position moves with the commit, not before: a crash could still undo it.
    expect(state.readOf('ann').read).toBe(0);
    state.durable(1, 'ann');
    state.durable(2, 'ann');
    expect(state.readOf('ann').read).toBe(2);
  });

  it('follows commits in seq order, remembers deletes before they are durable, and is idle only with nothing in flight', async () => {
    const owner = new ConversationOwner(new MemoryStore());
    const state = (await owner.get('dm:ann:bob'))!;
    expect(state.exists).toBe(true);
    const first = state.assign({ kind: 'msg', from: 'ann', dev: 'd', body: 'hi' }, '1', 5);
    expect(first.memberships.map((m) => m.user)).toEqual(['ann', 'bob']);
    state.assign({ kind: 'delete', from: 'ann', dev: 'd', body: null, ref: 1 }, '2', 5);
    expect(state.deletedAt(1)).toBe(2);
    expect(state.idle).toBe(false);
    state.durable(1, 'ann');
    expect(state.committed).toBe(1);
    expect(state.idle).toBe(false);
    state.dropped();
    expect(state.idle).toBe(true);
    expect(state.lane('ann', 'd')).toBe(state.lane('ann', 'd'));
    expect([...state.lanes()]).toHaveLength(1);
  });

  it('after a failed commit the stale state is marked, and the next touch loads a fresh one on strict dedup', async () => {
    const owner = new ConversationOwner(new MemoryStore());
    const state = (await owner.get('g:f'))!;
    expect(state.strictDedup).toBe(false);
    owner.invalidate(state);
    expect(state.broken).toBe(true);
    const fresh = (await owner.get('g:f'))!;
    expect(fresh).not.toBe(state);
    expect(fresh.broken).toBe(false);
    expect(fresh.strictDedup).toBe(true);
  });
});
