/**
 * A retried membership change or create that arrives while the first attempt is
 * still committing: the owner's memory already shows the change (it is as of the
 * head), so the retry looks like "nothing to change" / "already exists". It must
 * not be answered until that commit is durable — and must not be answered `ok`
 * or `conflict` at all if that commit fails (the chaos run's lost removal).
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AckFrame, ErrorCode } from '../../packages/client/src/protocol/index.js';
import { Groups } from '../../packages/server/src/server/groups.js';
import { ServerMetrics } from '../../packages/server/src/server/metrics.js';
import type { Origin } from '../../packages/server/src/server/origin.js';
import { ConversationOwner } from '../../packages/server/src/server/owner.js';
import { Sequencer } from '../../packages/server/src/server/sequencer.js';
import type { CommitBatch } from '../../packages/server/src/store/index.js';
import { MemoryStore } from '../../packages/server/src/store/memory.js';

/** Commits pass, except while held: then each waits for the test to let it through or fail it. */
class GatedStore extends MemoryStore {
  holding = false;
  private readonly held: { go: () => void; fail: () => void }[] = [];

  override commit(batch: CommitBatch): Promise<void> {
    if (!this.holding) return super.commit(batch);
    return new Promise<void>((resolve, reject) => this.held.push({ go: resolve, fail: () => reject(new Error('disk full')) })).then(() => super.commit(batch));
  }

  get waiting(): number {
    return this.held.length;
  }

  pass(): void {
    this.held.shift()?.go();
  }

  fail(): void {
    this.held.shift()?.fail();
  }
}

type Answer = { t: 'ok'; seq: number } | { t: 'error'; code: ErrorCode };

function origin(user: string): Origin & { answers: Answer[] } {
  const answers: Answer[] = [];
  return {
    user,
    device: 'd',
    connection: 1,
    answers,
    ack: (_frame: AckFrame) => undefined,
    ok: (_id, _conv, seq) => answers.push({ t: 'ok', seq }),
    error: (_id, code) => answers.push({ t: 'error', code }),
  };
}

const turns = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

async function setUp() {
  const store = new GatedStore();
  const owner = new ConversationOwner(store);
  let mid = 1_000_000n;
  const sequencer = new Sequencer(store, owner, { now: () => 1_800_000_000_000, observe: () => {} }, { next: () => String(++mid) }, 100, new ServerMetrics(false), pino({ level: 'silent' }), () => {});
  return { store, groups: new Groups(owner, sequencer) };
}

describe('a retry judged on a head still committing', () => {
  it('a no-op removal retried while the removal commits is answered with its seq once durable, and unavailable if the commit fails', async () => {
    const { store, groups } = await setUp();
    const ann = origin('ann');
    await groups.create(ann, { t: 'create', id: 1, conv: 'g:r', members: ['bob', 'cy'] });
    expect(ann.answers).toEqual([{ t: 'ok', seq: 1 }]);

    store.holding = true;
    const first = groups.members(ann, { t: 'members', id: 2, conv: 'g:r', remove: ['bob'] });
    await turns();
    expect(store.waiting).toBe(1);
    const retry = groups.members(ann, { t: 'members', id: 3, conv: 'g:r', remove: ['bob'] });
    await turns();
    expect(ann.answers).toHaveLength(1); // neither answered while the removal is not durable
    store.fail();
    await Promise.all([first, retry]);
    expect(ann.answers.slice(1)).toEqual([
      { t: 'error', code: 'unavailable' },
      { t: 'error', code: 'unavailable' },
    ]);

    // Reloaded from the store: bob is still a member. This time the commit goes through.
    const again = groups.members(ann, { t: 'members', id: 4, conv: 'g:r', remove: ['cy'] });
    await turns();
    const retried = groups.members(ann, { t: 'members', id: 5, conv: 'g:r', remove: ['cy'] });
    await turns();
    expect(ann.answers).toHaveLength(3);
    store.pass();
    await Promise.all([again, retried]);
    expect(ann.answers.slice(3)).toEqual([
      { t: 'ok', seq: 2 },
      { t: 'ok', seq: 2 },
    ]);
    expect((await store.getMemberships('g:r')).filter((m) => m.toSeq !== null).map((m) => m.user)).toEqual(['cy']);
  });

  it('a create retried while the first commits is "already exists" only once it is durable, and unavailable if it fails', async () => {
    const { store, groups } = await setUp();
    const ann = origin('ann');
    store.holding = true;
    const first = groups.create(ann, { t: 'create', id: 1, conv: 'g:c', members: ['bob'] });
    await turns();
    const retry = groups.create(ann, { t: 'create', id: 2, conv: 'g:c', members: ['bob'] });
    await turns();
    expect(ann.answers).toEqual([]);
    store.fail();
    await Promise.all([first, retry]);
    expect(ann.answers).toEqual([
      { t: 'error', code: 'unavailable' },
      { t: 'error', code: 'unavailable' },
    ]);
    expect(await store.getConv('g:c')).toBeNull();
  });
});
