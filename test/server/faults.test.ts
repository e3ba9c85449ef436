/**
 * Store faults: a failed commit writes nothing, answers `unavailable`, and the
 * resend lands gaplessly; an unexpected failure is `internal` and the server
 * keeps serving. The store is the real in-memory reference with faults injected.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../packages/server/src/store/memory.js';
import type { CommitBatch, ConvsQuery, ConvsSnapshot } from '../../packages/server/src/store/index.js';
import { startTestServer, type TestServer } from '../support/wire.js';

class FaultyStore extends MemoryStore {
  failCommits = 0;
  failListing = false;

  override async commit(batch: CommitBatch): Promise<void> {
    if (this.failCommits > 0) {
      this.failCommits--;
      throw new Error('disk full');
    }
    return super.commit(batch);
  }

  override async convsSnapshot(user: string, query: ConvsQuery): Promise<ConvsSnapshot> {
    if (this.failListing) throw new Error('index corrupted');
    return super.convsSnapshot(user, query);
  }
}

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
});

class FlakyMids {
  private n = 0n;
  failing = false;
  next(): string {
    if (this.failing) throw new Error('worker lease lost');
    return String(7_000_000_000_000_000n + ++this.n);
  }
}

describe('id faults', () => {
  it('answers unavailable when no mid can be had, changes nothing, and serves the resend once ids return', async () => {
    const mids = new FlakyMids();
    let now = 1_800_000_000_000;
    const clock = { now: () => now++, observe: () => {} };
    t = await startTestServer({ store: new MemoryStore(), ids: { clock, mids, close: async () => {} } });
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:m', members: [] });
    expect(await alice.request({ t: 'send', conv: 'g:m', cmid: 'a', dseq: 1, body: 1 })).toMatchObject({ t: 'ack', seq: 2 });
    mids.failing = true;
    expect(await alice.request({ t: 'send', conv: 'g:m', cmid: 'b', dseq: 2, body: 2 })).toMatchObject({ t: 'error', code: 'unavailable' });
    expect(await alice.request({ t: 'members', conv: 'g:m', add: ['bob'] })).toMatchObject({ t: 'error', code: 'unavailable' });
    mids.failing = false;
    expect(await alice.request({ t: 'send', conv: 'g:m', cmid: 'b', dseq: 2, body: 2 })).toMatchObject({ t: 'ack', seq: 3, dseq: 2 });
    const { msgs } = await alice.syncAll('g:m');
    expect(msgs.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(msgs.map((m) => m.ts)).toEqual([...msgs.map((m) => m.ts)].sort((x, y) => x - y));
  });
});

describe('store faults', () => {
  it('answers unavailable for a failed commit, and the resend takes the same seq without a gap', async () => {
    const store = new FaultyStore();
    t = await startTestServer({ store });
    const alice = await t.connect('alice');
    const bob = await t.connect('bob');
    await alice.request({ t: 'create', conv: 'g:f', members: ['bob'] });
    store.failCommits = 1;
    const failed = await alice.request({ t: 'send', conv: 'g:f', cmid: 'c1', dseq: 1, body: 'x' });
    expect(failed).toMatchObject({ t: 'error', code: 'unavailable' });
    const resent = await alice.request({ t: 'send', conv: 'g:f', cmid: 'c1', dseq: 1, body: 'x' });
    expect(resent).toMatchObject({ t: 'ack', seq: 2 });
    expect(await alice.request({ t: 'send', conv: 'g:f', cmid: 'c2', dseq: 2, body: 'y' })).toMatchObject({ t: 'ack', seq: 3 });
    const { msgs } = await bob.syncAll('g:f');
    expect(msgs.map((m) => [m.seq, m.cmid])).toEqual([[1, undefined], [2, 'c1'], [3, 'c2']]);
    // bob was never pushed the seq that failed to commit, only the durable ones, in order
    await bob.waitForPushes(3);
    expect(bob.pushes.map((p) => [p.seq, p.cmid])).toEqual([[1, undefined], [2, 'c1'], [3, 'c2']]);
  });

  it('answers internal for an unexpected failure and keeps serving', async () => {
    const store = new FaultyStore();
    t = await startTestServer({ store });
    const alice = await t.connect('alice');
    store.failListing = true;
    expect(await alice.request({ t: 'convs' })).toMatchObject({ t: 'error', code: 'internal' });
    store.failListing = false;
    expect(await alice.request({ t: 'convs' })).toMatchObject({ t: 'convs' });
  });
});
