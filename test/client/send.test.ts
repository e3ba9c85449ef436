/**
 * The send side against the scriptable fake server: every fault ends with each
 * message in the log exactly once, in send order, and its handle `sent` with
 * the seq the server gave it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SequentClient } from '../../packages/client/src/client/client.js';
import type { SendHandle, SendState } from '../../packages/client/src/client/send-handle.js';
import type { BlockedConversation } from '../../packages/client/src/client/outbox.js';
import { MemoryClientStore, type OutboxEntry } from '../../packages/client/src/client/store.js';
import { tapTransport } from '../../packages/client/src/client/transport.js';
import { FakeServer } from './fake-server.js';
import { eventually, fakeClient } from './helpers.js';

const CONV = 'g:team';
let clients: SequentClient[] = [];

async function started(fake: FakeServer, options: Parameters<typeof fakeClient>[3] = {}): Promise<SequentClient> {
  const client = fakeClient(fake, 'alice', 'phone', options);
  clients.push(client);
  await client.start();
  await client.ready();
  return client;
}

function teamServer(): FakeServer {
  const fake = new FakeServer();
  fake.createGroup(CONV, ['alice', 'bob']);
  return fake;
}

/** The cmids of the log's messages, in seq order. */
function loggedCmids(fake: FakeServer, conv = CONV): string[] {
  return fake.log(conv).flatMap((entry) => (entry.cmid === undefined ? [] : [entry.cmid]));
}

afterEach(async () => {
  await Promise.all(clients.map((client) => client.stop()));
  clients = [];
});

describe('sending', () => {
  it('goes sending → sent with the seq, mid and ts of the ack', async () => {
    const fake = teamServer();
    const client = await started(fake);
    const transitions: [SendState | undefined, SendState][] = [];
    client.on('send', (event) => transitions.push([event.previous, event.state]));
    const handle = client.send(CONV, { text: 'hi' });
    expect(handle.state).toBe('sending');
    const info = await handle.whenSent();
    const entry = fake.log(CONV)[1];
    expect(entry).toMatchObject({ seq: 2, cmid: handle.cmid, dseq: 1, body: { text: 'hi' }, from: 'alice', dev: 'phone' });
    expect(info).toEqual({ seq: 2, mid: entry?.mid, ts: entry?.ts });
    expect([handle.state, handle.seq, handle.mid, handle.ts]).toEqual(['sent', 2, entry?.mid, entry?.ts]);
    expect(transitions).toEqual([
      [undefined, 'sending'],
      ['sending', 'sent'],
    ]);
    expect(client.pending()).toEqual([]);
  });

  it('stores the outbox entry before its send frame goes out', async () => {
    const fake = teamServer();
    const order: string[] = [];
    const store = new MemoryClientStore();
    const enqueue = store.enqueue.bind(store);
    store.enqueue = async (entry: OutboxEntry) => {
      await enqueue(entry);
      order.push(`stored ${entry.cmid}`);
    };
    const transport = tapTransport(fake.transport, {
      sent: (_connection, text) => {
        const frame = JSON.parse(text) as { t: string; cmid?: string };
        if (frame.t === 'send') order.push(`frame ${frame.cmid as string}`);
      },
    });
    // Writes wait until the connection is up, so a frame could only follow its write if the SDK waits for it.
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const gated = store.enqueue.bind(store);
    store.enqueue = async (entry: OutboxEntry) => {
      await gate;
      await gated(entry);
    };
    const client = fakeClient(fake, 'alice', 'phone', { store, transport });
    clients.push(client);
    await client.start();
    const handles = [client.send(CONV, 1), client.send(CONV, 2), client.send('dm:alice:bob', 3)];
    await client.ready();
    open();
    await Promise.all(handles.map((h) => h.whenSent()));
    for (const handle of handles) {
      const stored = order.indexOf(`stored ${handle.cmid}`);
      expect(stored).toBeGreaterThanOrEqual(0);
      expect(order.indexOf(`frame ${handle.cmid}`)).toBeGreaterThan(stored);
    }
    // Acked: the entries leave the store (after the ack, asynchronously).
    await eventually(async () => expect((await store.load()).outbox).toEqual([]));
  });

  it('resends a dropped send with the same cmid and dseq after the ack timeout', async () => {
    const fake = teamServer();
    let dropped = 0;
    fake.onFrame = (frame) => (frame.t === 'send' && dropped++ === 0 ? 'drop' : 'handle');
    const client = await started(fake);
    const handle = client.send(CONV, 'once');
    await handle.whenSent();
    const frames = fake.framesOf('send');
    expect(frames.map((f) => [f.cmid, f.dseq])).toEqual([
      [handle.cmid, 1],
      [handle.cmid, 1],
    ]);
    expect(loggedCmids(fake)).toEqual([handle.cmid]);
    expect(handle.tries).toBe(2);
  });

  it('settles once when the ack is late and the resend is answered by the dedup', async () => {
    const fake = teamServer();
    let delayed = false;
    fake.onOutgoing = (frame) => {
      if (frame.t !== 'ack' || delayed) return 'send';
      delayed = true;
      return { delay: 150 };
    };
    const client = await started(fake);
    const sentEvents: number[] = [];
    client.on('send', (event) => {
      if (event.state === 'sent') sentEvents.push(event.handle.seq as number);
    });
    const handle = client.send(CONV, 'late');
    await handle.whenSent();
    await eventually(() => expect(fake.connections[0]?.sent.filter((f) => f.t === 'ack')).toHaveLength(fake.framesOf('send').length));
    expect(fake.framesOf('send').length).toBeGreaterThanOrEqual(2);
    expect(loggedCmids(fake)).toEqual([handle.cmid]);
    expect(sentEvents).toEqual([2]);
    expect(client.entries(CONV).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('settles once on duplicated acks', async () => {
    const fake = teamServer();
    fake.onOutgoing = (frame) => (frame.t === 'ack' ? 'duplicate' : 'send');
    const client = await started(fake);
    let sent = 0;
    client.on('send', (event) => {
      if (event.state === 'sent') sent++;
    });
    let messages = 0;
    client.on('message', () => messages++);
    await Promise.all([client.send(CONV, 'a'), client.send(CONV, 'b')].map((h) => h.whenSent()));
    await client.sync(CONV);
    expect(sent).toBe(2);
    expect(messages).toBe(2);
    expect(client.entries(CONV).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('survives a cut after the server stored the message but before the ack: one entry, same seq', async () => {
    const fake = teamServer();
    let cuts = 0;
    fake.onFrame = (frame) => (frame.t === 'send' && cuts++ === 0 ? 'handle-then-cut' : 'handle');
    const client = await started(fake);
    const handle = client.send(CONV, 'mid-send');
    const info = await handle.whenSent();
    expect(fake.connections.length).toBe(2);
    expect(loggedCmids(fake)).toEqual([handle.cmid]);
    expect(info.seq).toBe(2);
    expect(fake.connections[1]?.received.some((f) => f.t === 'send' && f.cmid === handle.cmid)).toBe(true);
  });

  it('settles from the log when every ack is lost: the catch-up sync finds its own message', async () => {
    const fake = teamServer();
    fake.onOutgoing = (frame) => (frame.t === 'ack' ? 'drop' : 'send');
    let cut = false;
    fake.onFrame = (frame) => {
      if (frame.t !== 'send' || cut) return 'handle';
      cut = true;
      return 'handle-then-cut';
    };
    const client = await started(fake, { ackTimeoutMs: 60_000 });
    const handle = client.send(CONV, 'ack lost');
    const info = await handle.whenSent();
    expect(info.seq).toBe(2);
    expect(loggedCmids(fake)).toEqual([handle.cmid]);
    expect(fake.connections[1]?.received.some((f) => f.t === 'sync')).toBe(true);
  });

  it('answers out_of_order by resending from the expected dseq, keeping the order', async () => {
    const fake = teamServer();
    let first = true;
    fake.onFrame = (frame) => {
      if (frame.t === 'send' && frame.dseq === 1 && first) {
        first = false;
        return 'drop';
      }
      return 'handle';
    };
    // A long ack timeout: only the server's out_of_order can bring the first message back.
    const client = await started(fake, { ackTimeoutMs: 60_000 });
    const handles = [client.send(CONV, 'one'), client.send(CONV, 'two'), client.send(CONV, 'three')];
    await Promise.all(handles.map((h) => h.whenSent()));
    expect(fake.connections[0]?.sent.some((f) => f.t === 'error' && f.code === 'out_of_order' && f.expected === 1)).toBe(true);
    expect(loggedCmids(fake)).toEqual(handles.map((h) => h.cmid));
    expect(fake.log(CONV).slice(1).map((e) => e.dseq)).toEqual([1, 2, 3]);
  });

  it('keeps the send order of each conversation through random drops', async () => {
    const fake = teamServer();
    let count = 0;
    fake.onFrame = (frame) => (frame.t === 'send' && count++ % 3 === 1 ? 'drop' : 'handle');
    const client = await started(fake);
    const handles: SendHandle[] = [];
    for (let i = 0; i < 20; i++) handles.push(client.send(i % 2 ? CONV : 'dm:alice:bob', i));
    await Promise.all(handles.map((h) => h.whenSent()));
    for (const conv of [CONV, 'dm:alice:bob']) {
      const mine = handles.filter((h) => h.conv === conv);
      expect(loggedCmids(fake, conv)).toEqual(mine.map((h) => h.cmid));
      expect(mine.map((h) => h.dseq)).toEqual(mine.map((_, i) => i + 1));
      expect(mine.map((h) => h.seq)).toEqual(fake.log(conv).filter((e) => e.cmid).map((e) => e.seq));
    }
  });

  it('fails at the deadline, blocks the later sends of the conversation, and retry() sends them in order', async () => {
    const fake = teamServer();
    let dropping = true;
    fake.onFrame = (frame) => (frame.t === 'send' && dropping ? 'drop' : 'handle');
    const client = await started(fake, { sendDeadlineMs: 150 });
    const first = client.send(CONV, 'first');
    const second = client.send(CONV, 'second');
    await eventually(() => expect([first.state, second.state]).toEqual(['failed', 'failed']));
    expect(first.error?.code).toBe('deadline');
    expect(second.error?.code).toBe('blocked');
    dropping = false;
    second.retry();
    await Promise.all([first.whenSent(), second.whenSent()]);
    expect(loggedCmids(fake)).toEqual([first.cmid, second.cmid]);
  });

  it('resumes failed sends of the conversation when a new one is sent there', async () => {
    const fake = teamServer();
    let dropping = true;
    fake.onFrame = (frame) => (frame.t === 'send' && dropping ? 'drop' : 'handle');
    const client = await started(fake, { sendDeadlineMs: 100 });
    const failed = client.send(CONV, 'failed first');
    await eventually(() => expect(failed.state).toBe('failed'));
    dropping = false;
    const next = client.send(CONV, 'next');
    expect(failed.state).toBe('sending');
    await Promise.all([failed.whenSent(), next.whenSent()]);
    expect(loggedCmids(fake)).toEqual([failed.cmid, next.cmid]);
    // The failed one went out again before the new one: the server never had to say out_of_order.
    expect(fake.connections[0]?.sent.filter((f) => f.t === 'error')).toEqual([]);
  });

  it('fails on a refusal the server will repeat (forbidden), and the later sends with it', async () => {
    const fake = teamServer();
    const client = await started(fake);
    const refused = client.send('g:other', 'not a member');
    const behind = client.send('g:other', 'behind it');
    await eventually(() => expect([refused.state, behind.state]).toEqual(['failed', 'failed']));
    expect(refused.error?.code).toBe('forbidden');
    expect(['blocked', 'forbidden']).toContain(behind.error?.code);
  });

  it("reports the conversation blocked once a send that failed behind another becomes the oldest", async () => {
    const fake = teamServer();
    const hello = fake.append(CONV, { from: 'bob', dev: 'b', body: 'hello' }, undefined);
    // The first send's ack comes late; the edit behind it is refused (not alice's message) before that.
    fake.onOutgoing = (frame) => (frame.t === 'ack' && frame.dseq === 1 ? { delay: 150 } : 'send');
    const client = await started(fake);
    const blocked: BlockedConversation[] = [];
    client.on('blocked', (info) => blocked.push(info));
    const first = client.send(CONV, 'first');
    const edit = client.edit(CONV, hello.seq, 'not mine');
    await eventually(() => expect(edit.state).toBe('failed'));
    expect(first.state).toBe('sending');
    expect(blocked).toEqual([]);
    await first.whenSent();
    await eventually(() => expect(blocked.map((b) => [b.conv, b.error.code, b.handles.length])).toEqual([[CONV, 'forbidden', 1]]));
    expect(client.blocked(CONV)).toHaveLength(1);
  });

  it('fills ctx.seen with the highest delivered seq unless given, and copies the body at send time', async () => {
    const fake = teamServer();
    fake.append(CONV, { from: 'bob', dev: 'b', body: 'hello' }, undefined);
    const client = await started(fake);
    expect(client.entries(CONV).map((e) => e.seq)).toEqual([1, 2]);
    const body = { text: 'original' };
    const auto = client.send(CONV, body);
    body.text = 'changed';
    const explicit = client.send(CONV, 'x', { seen: 1 });
    await Promise.all([auto.whenSent(), explicit.whenSent()]);
    expect(fake.log(CONV)[2]).toMatchObject({ ctx: { seen: 2 }, body: { text: 'original' } });
    expect(fake.log(CONV)[3]).toMatchObject({ ctx: { seen: 1 } });
  });

  it('refuses what the server would refuse before using a dseq', async () => {
    const fake = teamServer();
    const client = await started(fake);
    expect(() => client.send('team', 'x')).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(() => client.send(CONV, undefined)).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(() => client.send(CONV, 'x'.repeat(70_000))).toThrow(expect.objectContaining({ code: 'too_large' }));
    const handle = client.send(CONV, 'fits');
    expect(handle.dseq).toBe(1);
    await handle.whenSent();
  });
});
