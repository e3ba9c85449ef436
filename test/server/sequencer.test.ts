/**
 * When the sequencer hands entries to the store: at once when the store has
 * none, while one is in flight only once enough are queued (a store that
 * pipelines commits) or when the store answers.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Entry } from '../../packages/client/src/protocol/index.js';
import { ServerMetrics } from '../../packages/server/src/server/metrics.js';
import { ConversationOwner } from '../../packages/server/src/server/owner.js';
import { CommitFailed, Sequencer } from '../../packages/server/src/server/sequencer.js';
import type { CommitBatch } from '../../packages/server/src/store/index.js';
import { MemoryStore } from '../../packages/server/src/store/memory.js';

/** The reference store, holding each commit until the test releases it. */
class HeldStore extends MemoryStore {
  readonly sizes: number[] = [];
  private readonly held: (() => void)[] = [];

  constructor(pipelined: boolean) {
    super();
    this.pipelinesCommits = pipelined;
  }

  override readonly pipelinesCommits: boolean;

  override commit(batch: CommitBatch): Promise<void> {
    this.sizes.push(batch.entries.length);
    return new Promise<void>((resolve) => this.held.push(resolve)).then(() => super.commit(batch));
  }

  /** Lets the oldest held commit through and waits until it has been answered. */
  async releaseOne(): Promise<void> {
    this.held.shift()?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

async function setUp(pipelined: boolean) {
  const store = new HeldStore(pipelined);
  const conversations = new ConversationOwner(store);
  // A conversation not in the store yet: the first batch creates it. The sequencer leaves membership checks to its callers.
  const state = (await conversations.get('g:s'))!;
  let mid = 7_000_000_000_000_000n;
  const sequencer = new Sequencer(
    store,
    conversations,
    { now: () => 1_800_000_000_000, observe: () => {} },
    { next: () => String(++mid) },
    1000,
    new ServerMetrics(false),
    pino({ level: 'silent' }),
    () => {},
  );
  const settled: (Entry | CommitFailed)[] = [];
  let dseq = 0;
  const append = (count: number) => {
    for (let i = 0; i < count; i++) {
      dseq++;
      sequencer.appendThen(state, { kind: 'msg', from: 'ann', dev: 'd', body: dseq, cmid: `c${dseq}`, dseq }, undefined, (outcome) => settled.push(outcome));
    }
  };
  return { store, sequencer, settled, append };
}

describe('handing entries to the store', () => {
  it('a pipelining store gets a turn of entries behind an unanswered batch only once 32 are queued; fewer wait for the answer', async () => {
    const { store, sequencer, settled, append } = await setUp(true);
    append(1);
    await turn();
    expect(store.sizes).toEqual([1]);
    append(5);
    await turn();
    expect(store.sizes).toEqual([1]);
    append(30);
    await turn();
    expect(store.sizes).toEqual([1, 35]);
    append(3);
    await turn();
    expect(store.sizes).toEqual([1, 35]);
    await store.releaseOne();
    expect(store.sizes).toEqual([1, 35, 3]);
    await store.releaseOne();
    await store.releaseOne();
    await sequencer.idle();
    expect(settled.map((e) => (e instanceof CommitFailed ? e : e.seq))).toEqual(Array.from({ length: 39 }, (_, i) => i + 1));
    expect((await store.read('g:s', 0, 100, 100)).map((e) => e.dseq)).toEqual(Array.from({ length: 39 }, (_, i) => i + 1));
  });

  it('a store that does not pipeline gets one batch at a time, the next one growing meanwhile', async () => {
    const { store, sequencer, settled, append } = await setUp(false);
    append(1);
    await turn();
    append(40);
    await turn();
    append(2);
    await turn();
    expect(store.sizes).toEqual([1]);
    await store.releaseOne();
    expect(store.sizes).toEqual([1, 42]);
    await store.releaseOne();
    await sequencer.idle();
    expect(settled).toHaveLength(43);
  });
});
