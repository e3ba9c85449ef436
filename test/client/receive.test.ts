/**
 * The receive side against the scriptable fake server: pushes reordered,
 * duplicated or lost still come out once each, in seq order (ordered mode) or
 * at the index where they belong (immediate mode).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SequentClient } from '../../packages/client/src/client/client.js';
import type { MessageEvent } from '../../packages/client/src/client/events.js';
import type { Entry } from '../../packages/client/src/protocol/frames.js';
import { FakeServer, type FakeConnection } from './fake-server.js';
import { eventually, fakeClient, range, seqsOf } from './helpers.js';

const CONV = 'g:team';
let clients: SequentClient[] = [];

async function bobOn(fake: FakeServer, options: Parameters<typeof fakeClient>[3] = {}): Promise<{ bob: SequentClient; events: MessageEvent[]; connection: FakeConnection }> {
  const bob = fakeClient(fake, 'bob', 'laptop', options);
  clients.push(bob);
  const events: MessageEvent[] = [];
  bob.on('message', (event) => events.push(event));
  await bob.start();
  await bob.ready();
  return { bob, events, connection: fake.live('bob')[0] as FakeConnection };
}

/** Appends `count` messages from carol without pushing them; the test pushes them itself. */
function silentlyAppend(fake: FakeServer, count: number): Entry[] {
  return Array.from({ length: count }, (_, i) => fake.append(CONV, { from: 'carol', dev: 'c', body: i }, undefined, false));
}

afterEach(async () => {
  await Promise.all(clients.map((client) => client.stop()));
  clients = [];
});

describe('receiving, ordered mode', () => {
  it('delivers reordered pushes in seq order', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['bob', 'carol']);
    const { bob, events, connection } = await bobOn(fake, { gapWaitMs: 60_000 });
    const [two, three, four] = silentlyAppend(fake, 3) as [Entry, Entry, Entry];
    for (const entry of [four, two, three]) connection.deliver({ t: 'msg', ...entry });
    await eventually(() => expect(seqsOf(bob, CONV)).toEqual([1, 2, 3, 4]));
    expect(events.map((e) => [e.entry.seq, e.index])).toEqual([
      [1, 0],
      [2, 1],
      [3, 2],
      [4, 3],
    ]);
    expect(bob.cursor(CONV)).toBe(4);
  });

  it('delivers each seq once despite duplicated pushes and overlapping syncs', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['bob', 'carol']);
    fake.onOutgoing = (frame) => (frame.t === 'msg' ? 'duplicate' : 'send');
    const { bob, events } = await bobOn(fake);
    for (let i = 0; i < 5; i++) fake.append(CONV, { from: 'carol', dev: 'c', body: i }, undefined);
    await eventually(() => expect(seqsOf(bob, CONV)).toEqual(range(1, 6)));
    await bob.sync(CONV);
    expect(events.map((e) => e.entry.seq)).toEqual(range(1, 6));
  });

  it('holds a gap for gapWaitMs, then fills it with a sync', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['bob', 'carol']);
    const { bob, events, connection } = await bobOn(fake);
    const [, three] = silentlyAppend(fake, 2) as [Entry, Entry];
    connection.deliver({ t: 'msg', ...three }); // seq 2 is never pushed
    await eventually(() => expect(seqsOf(bob, CONV)).toEqual([1, 2, 3]));
    expect(events.map((e) => e.entry.seq)).toEqual([1, 2, 3]);
    expect(connection.received.filter((f) => f.t === 'sync').at(-1)).toMatchObject({ conv: CONV, after: 1 });
  });

  it('shows own messages after the last delivered entry and moves them into place when acked', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob', 'carol']);
    let holdAck: (() => void) | undefined;
    fake.onOutgoing = (frame, connection) => {
      if (frame.t !== 'ack') return 'send';
      holdAck = () => connection.deliver(frame);
      return 'drop';
    };
    const { bob } = await bobOn(fake, { ackTimeoutMs: 60_000 });
    const handle = bob.send(CONV, 'mine'); // takes seq 2
    await eventually(() => expect(holdAck).toBeDefined());
    fake.append(CONV, { from: 'carol', dev: 'c', body: 'after mine' }, undefined); // seq 3, pushed
    // Seq 3 has arrived (the list knows it) but waits behind the unacked seq 2.
    await eventually(() => expect(bob.conversations().find((c) => c.conv === CONV)?.last).toBe(3));
    expect(bob.view(CONV).map((item) => (item.kind === 'entry' ? item.entry.seq : `pending ${item.handle.cmid}`))).toEqual([
      1,
      `pending ${handle.cmid}`,
    ]);
    holdAck?.();
    await eventually(() => expect(bob.view(CONV).map((item) => (item.kind === 'entry' ? item.entry.seq : 'pending'))).toEqual([1, 2, 3]));
    expect(bob.entries(CONV)[1]).toMatchObject({ cmid: handle.cmid, from: 'bob', dev: 'laptop', body: 'mine' });
  });

  it('added to a group with history while online: delivers from the entry that added it, skipping unreadable history', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['carol']);
    fake.append(CONV, { from: 'carol', dev: 'c', body: 'before bob' }, undefined);
    const { bob, events } = await bobOn(fake);
    const added = fake.append(CONV, { kind: 'system', from: 'carol', dev: 'c', body: { op: 'members', add: ['bob'], remove: [] } }, undefined);
    fake.append(CONV, { from: 'carol', dev: 'c', body: 'for bob' }, undefined);
    await eventually(() => expect(seqsOf(bob, CONV)).toEqual([3, 4]));
    expect(events.map((e) => e.entry.seq)).toEqual([3, 4]);
    expect(bob.cursor(CONV)).toBe(4);
    expect(bob.conversations().find((c) => c.conv === CONV)).toMatchObject({ from: added.seq });
  });

  it('delivers membership entries in the same order as messages', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['bob', 'carol']);
    const { bob, events, connection } = await bobOn(fake, { gapWaitMs: 60_000 });
    const msg = fake.append(CONV, { from: 'carol', dev: 'c', body: 'hi' }, undefined, false);
    const system = fake.append(CONV, { kind: 'system', from: 'carol', dev: 'c', body: { op: 'members', add: ['dave'], remove: [] } }, undefined, false);
    connection.deliver({ t: 'msg', ...system });
    connection.deliver({ t: 'msg', ...msg });
    await eventually(() => expect(seqsOf(bob, CONV)).toEqual([1, 2, 3]));
    expect(events.map((e) => e.entry.kind)).toEqual(['system', 'msg', 'system']);
  });
});

describe('receiving, immediate mode', () => {
  it('delivers at once with the index where each entry belongs', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['bob', 'carol']);
    const { bob, events, connection } = await bobOn(fake, { delivery: 'immediate', gapWaitMs: 60_000 });
    const [two, three, four] = silentlyAppend(fake, 3) as [Entry, Entry, Entry];
    connection.deliver({ t: 'msg', ...four });
    await eventually(() => expect(events.map((e) => e.entry.seq)).toEqual([1, 4]));
    connection.deliver({ t: 'msg', ...two });
    connection.deliver({ t: 'msg', ...four });
    connection.deliver({ t: 'msg', ...three });
    await eventually(() => expect(seqsOf(bob, CONV)).toEqual([1, 2, 3, 4]));
    expect(events.map((e) => [e.entry.seq, e.index])).toEqual([
      [1, 0],
      [4, 1],
      [2, 1],
      [3, 2],
    ]);
    expect(bob.cursor(CONV)).toBe(4);
  });

  it('fills a gap that stays open with a sync', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['bob', 'carol']);
    const { bob, events, connection } = await bobOn(fake, { delivery: 'immediate' });
    const [, three] = silentlyAppend(fake, 2) as [Entry, Entry];
    connection.deliver({ t: 'msg', ...three });
    await eventually(() => expect(bob.cursor(CONV)).toBe(3));
    expect(events.map((e) => e.entry.seq)).toEqual([1, 3, 2]);
    expect(seqsOf(bob, CONV)).toEqual([1, 2, 3]);
  });
});
