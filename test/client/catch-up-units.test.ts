/** The catch-up's parts on their own: the syncer's paging (the next page asked ahead) and the chat-state writer's pacing. */
import { describe, expect, it } from 'vitest';
import { ChatWriter } from '../../packages/client/src/client/chat-writer.js';
import { SequentClientError } from '../../packages/client/src/client/errors.js';
import { resolveClientOptions } from '../../packages/client/src/client/options.js';
import { MemoryClientStore, type ChatState } from '../../packages/client/src/client/store.js';
import { Syncer, type SyncerHooks } from '../../packages/client/src/client/syncer.js';
import type { Entry, ServerFrame, SyncFrame } from '../../packages/client/src/protocol/frames.js';

const entry = (seq: number): Omit<Entry, 'conv'> & { conv?: string } => ({ seq, kind: 'msg', mid: String(seq), ts: seq, from: 'u', dev: 'd', body: seq });

/** A conversation of `last` entries served in pages; every ask and every delivery is logged in order. */
function pagedLog(last: number, fail?: { after: number; error: SequentClientError }) {
  const log: string[] = [];
  const accepted: Entry[] = [];
  let cursor = 0;
  const hooks: SyncerHooks = {
    ask: async (frame) => {
      const sync = frame as Omit<SyncFrame, 'id'>;
      const after = sync.after ?? 0;
      log.push(`ask ${after}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (fail && after === fail.after) throw fail.error;
      const msgs = [];
      for (let seq = after + 1; seq <= Math.min(last, after + (sync.limit ?? 100)); seq++) msgs.push(entry(seq));
      return { t: 'batch', id: 1, conv: sync.conv, msgs, last } as ServerFrame;
    },
    cursorOf: () => cursor,
    skipTo: () => undefined,
    accept: (e) => {
      log.push(`take ${e.seq}`);
      accepted.push(e);
      cursor = e.seq;
    },
    summaries: () => undefined,
    version: () => undefined,
    versioned: () => undefined,
    behind: () => ['g:a'],
    error: () => undefined,
  };
  return { log, accepted, hooks };
}

describe('syncer paging', () => {
  const options = resolveClientOptions({ url: 'ws://h/v1/ws', token: 't', syncPageSize: 3 });

  it('asks for the next page before delivering the one that came, and stops at last', async () => {
    const { log, accepted, hooks } = pagedLog(7);
    await new Syncer(options, hooks).syncConv('g:a');
    expect(accepted.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(accepted.every((e) => e.conv === 'g:a')).toBe(true);
    expect(log).toEqual(['ask 0', 'ask 3', 'take 1', 'take 2', 'take 3', 'ask 6', 'take 4', 'take 5', 'take 6', 'take 7']);
  });

  it('delivers the page it has when the page asked ahead fails, then reports the failure', async () => {
    const { accepted, hooks } = pagedLog(7, { after: 3, error: new SequentClientError('connection_lost', 'gone') });
    await expect(new Syncer(options, hooks).syncConv('g:a')).rejects.toMatchObject({ code: 'connection_lost' });
    expect(accepted.map((e) => e.seq)).toEqual([1, 2, 3]);
  });
});

/**
 * Several conversations served in pages, replies coming back in an order of the
 * server's choosing (a delay per ask); what the device takes in and where each
 * cursor stands is kept, and how many asks wait on the server at once.
 */
function pagedConvs(lasts: Record<string, number>, options: { delay: (conv: string, after: number) => number; drop?: { conv: string; after: number }; maxWaiting?: number }) {
  const log: string[] = [];
  const taken = new Map<string, number[]>();
  const cursors = new Map<string, number>(Object.keys(lasts).map((conv) => [conv, 0]));
  let waiting = 0;
  let mostWaiting = 0;
  let dropped = false;
  let refused = 0;
  const hooks: SyncerHooks = {
    ask: async (frame) => {
      if (frame.t === 'convs') return { t: 'convs', id: 1, convs: [] } as ServerFrame;
      const sync = frame as Omit<SyncFrame, 'id'>;
      const after = sync.after ?? 0;
      const last = lasts[sync.conv]!;
      log.push(`ask ${sync.conv} ${after}`);
      if (options.maxWaiting !== undefined && waiting >= options.maxWaiting) {
        // As the server's maxPendingReads refuses a read over the limit.
        refused++;
        return { t: 'error', id: 1, code: 'rate_limited', message: 'too many reads waiting' } as ServerFrame;
      }
      waiting++;
      mostWaiting = Math.max(mostWaiting, waiting);
      try {
        await new Promise((resolve) => setTimeout(resolve, options.delay(sync.conv, after)));
        if (options.drop && !dropped && sync.conv === options.drop.conv && after === options.drop.after) {
          dropped = true;
          throw new SequentClientError('connection_lost', 'gone');
        }
      } finally {
        waiting--;
      }
      const msgs = [];
      for (let seq = after + 1; seq <= Math.min(last, after + (sync.limit ?? 100)); seq++) msgs.push({ ...entry(seq), conv: sync.conv });
      return { t: 'batch', id: 1, conv: sync.conv, msgs, last } as ServerFrame;
    },
    cursorOf: (conv) => cursors.get(conv) ?? 0,
    skipTo: () => undefined,
    accept: (e) => {
      log.push(`take ${e.conv} ${e.seq}`);
      const list = taken.get(e.conv) ?? [];
      list.push(e.seq);
      taken.set(e.conv, list);
      // As the receive side does: only the next seq moves the cursor.
      if (e.seq === (cursors.get(e.conv) ?? 0) + 1) cursors.set(e.conv, e.seq);
    },
    summaries: () => undefined,
    version: () => undefined,
    versioned: () => undefined,
    behind: () => Object.keys(lasts).filter((conv) => (cursors.get(conv) ?? 0) < lasts[conv]!),
    error: () => undefined,
  };
  return { log, taken, cursors, hooks, mostWaiting: () => mostWaiting, refused: () => refused };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('syncer catch-up over several conversations', () => {
  const options = resolveClientOptions({ url: 'ws://h/v1/ws', token: 't', syncPageSize: 3, syncConcurrency: 2 });
  const lasts = { 'g:a': 7, 'g:b': 2, 'g:c': 9, 'g:d': 4, 'g:e': 6 };

  it('takes in every entry once and in order per conversation, with replies coming back out of order', async () => {
    // Later asks of some conversations answered sooner than earlier asks of others.
    const delays: Record<string, number> = { 'g:a': 4, 'g:b': 1, 'g:c': 3, 'g:d': 1, 'g:e': 2 };
    const { taken, cursors, hooks, mostWaiting } = pagedConvs(lasts, { delay: (conv, after) => delays[conv]! + (after % 2) });
    await new Syncer(options, hooks).catchUp();
    for (const [conv, last] of Object.entries(lasts)) {
      expect(taken.get(conv)).toEqual(range(1, last));
      expect(cursors.get(conv)).toBe(last);
    }
    // One page asked at a time per slot: what waits on the server stays within syncConcurrency.
    expect(mostWaiting()).toBeLessThanOrEqual(2);
  });

  it("asks for the next conversation's first page before taking in the last page of the one before", async () => {
    const { log, hooks } = pagedConvs({ 'g:a': 2, 'g:b': 2 }, { delay: () => 1 });
    await new Syncer(resolveClientOptions({ url: 'ws://h/v1/ws', token: 't', syncPageSize: 3, syncConcurrency: 1 }), hooks).catchUp();
    expect(log).toEqual(['ask g:a 0', 'ask g:b 0', 'take g:a 1', 'take g:a 2', 'take g:b 1', 'take g:b 2']);
  });

  it('asks a page refused as rate_limited again, so that every conversation is caught up with more in parallel than the server allows', async () => {
    const errors: SequentClientError[] = [];
    const { taken, cursors, hooks, refused } = pagedConvs(lasts, { delay: () => 2, maxWaiting: 1 });
    hooks.error = (error) => errors.push(error);
    await new Syncer(resolveClientOptions({ url: 'ws://h/v1/ws', token: 't', syncPageSize: 3, syncConcurrency: 4 }), hooks).catchUp();
    expect(refused()).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    for (const [conv, last] of Object.entries(lasts)) {
      expect(taken.get(conv)).toEqual(range(1, last));
      expect(cursors.get(conv)).toBe(last);
    }
  });

  it('stops starting conversations when the connection drops mid-catch-up, and the next catch-up resumes at the cursors', async () => {
    const { taken, cursors, hooks, log } = pagedConvs(lasts, { delay: (conv) => (conv === 'g:a' ? 3 : 1), drop: { conv: 'g:c', after: 3 } });
    const syncer = new Syncer(options, hooks);
    await expect(syncer.catchUp()).rejects.toMatchObject({ code: 'connection_lost' });
    // g:c had its first page when the connection dropped; nothing after the drop was asked of the conversations not yet started.
    expect(cursors.get('g:c')).toBe(3);
    const before = log.length;
    await syncer.catchUp();
    // Resumed at each cursor: g:c from 3, conversations done before the drop not asked again.
    expect(log.slice(before)).toContain('ask g:c 3');
    expect(log.slice(before).some((line) => line === 'ask g:b 0')).toBe(false);
    for (const [conv, last] of Object.entries(lasts)) {
      expect(taken.get(conv)).toEqual(range(1, last));
      expect(cursors.get(conv)).toBe(last);
    }
  });
});

describe('a server behind this device', () => {
  const options = resolveClientOptions({ url: 'ws://h/v1/ws', token: 't', syncPageSize: 3 });

  it('is reported once per conversation and position when a sync reply or a convs row ends below the cursor', async () => {
    const errors: SequentClientError[] = [];
    let serverLast = 3;
    const hooks: SyncerHooks = {
      ask: async (frame) => {
        if (frame.t === 'convs') return { t: 'convs', id: 1, convs: [{ conv: 'g:a', last: serverLast, ts: 1, from: 1 }] } as ServerFrame;
        return { t: 'batch', id: 1, conv: 'g:a', msgs: [], last: serverLast } as ServerFrame;
      },
      cursorOf: () => 5,
      skipTo: () => undefined,
      accept: () => undefined,
      summaries: () => undefined,
      version: () => undefined,
      versioned: () => undefined,
      behind: () => [],
      error: (error) => errors.push(error),
    };
    const syncer = new Syncer(options, hooks);
    await syncer.syncConv('g:a');
    await syncer.readList();
    await syncer.syncConv('g:a');
    expect(errors.map((e) => e.code)).toEqual(['server_behind']);
    expect(errors[0]!.message).toMatch(/g:a ends at seq 3, but this device already holds it up to 5/);
    serverLast = 4;
    await syncer.readList();
    expect(errors).toHaveLength(2);
    // Caught up again: nothing to say.
    serverLast = 9;
    await syncer.syncConv('g:a');
    expect(errors).toHaveLength(2);
  });
});

describe('chat-state writer', () => {
  const state = (version: number): ChatState => ({ version, convs: [] });

  it('writes a lone change at once, a burst at most once per interval with the newest state, and drains without waiting', async () => {
    const store = new MemoryClientStore();
    const written: number[] = [];
    store.saveChat = async (chat) => {
      written.push(chat.version ?? 0);
    };
    let version = 0;
    const writer = new ChatWriter(store, () => state(version), () => undefined, 60_000);
    version = 1;
    writer.save();
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(written).toEqual([1]);
    // Within the interval: held back, however many changes come.
    for (version = 2; version <= 5; version++) writer.save();
    version = 5;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(written).toEqual([1]);
    // The interval is a minute: a drain that waited for it would outlast the test.
    await writer.drain();
    expect(written).toEqual([1, 5]);
  });

  it('writes the burst once the interval has passed', async () => {
    const store = new MemoryClientStore();
    const written: number[] = [];
    store.saveChat = async (chat) => {
      written.push(chat.version ?? 0);
    };
    let version = 1;
    const writer = new ChatWriter(store, () => state(version), () => undefined, 20);
    writer.save();
    await new Promise((resolve) => setTimeout(resolve, 5));
    version = 2;
    writer.save();
    version = 3;
    writer.save();
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(written).toEqual([1, 3]);
  });
});
