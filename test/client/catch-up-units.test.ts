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
