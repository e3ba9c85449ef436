/**
 * Store faults: a failed commit writes nothing, answers `unavailable`, and the
 * resend lands gaplessly; an unexpected failure is `internal` and the server
 * keeps serving. The store is the real in-memory reference with faults injected.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory.js';
import type { CommitBatch, ConvListing } from '../../src/store/index.js';
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

  override async listConvs(user: string): Promise<ConvListing[]> {
    if (this.failListing) throw new Error('index corrupted');
    return super.listConvs(user);
  }
}

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
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
