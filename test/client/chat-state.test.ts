/**
 * The chat state through the SDK, against the scriptable fake server: edits,
 * deletes and reactions as sends, read positions (coalesced, forward only,
 * shared by a user's devices), unread counts kept live, reconnect catch-up
 * from one `convs since`, typing and "seen by".
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SequentClient } from '../../packages/client/src/client/client.js';
import { MemoryClientStore } from '../../packages/client/src/client/store.js';
import type { ReadEvent, TypingEvent } from '../../packages/client/src/client/events.js';
import { FakeServer, type FakeConnection } from './fake-server.js';
import { eventually, fakeClient } from './helpers.js';

const CONV = 'g:team';
let clients: SequentClient[] = [];

afterEach(async () => {
  await Promise.all(clients.map((client) => client.stop()));
  clients = [];
});

async function online(fake: FakeServer, user: string, device: string, options: Parameters<typeof fakeClient>[3] = {}): Promise<SequentClient> {
  const client = fakeClient(fake, user, device, options);
  clients.push(client);
  await client.start();
  await client.ready();
  return client;
}

function row(client: SequentClient, conv = CONV): { read: number; unread: number } | undefined {
  const info = client.conversations().find((c) => c.conv === conv);
  return info && { read: info.read, unread: info.unread };
}

describe('edits, deletes and reactions', () => {
  it('go out as sends with kind and ref, and every member sees them folded', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    const alice = await online(fake, 'alice', 'phone');
    const bob = await online(fake, 'bob', 'laptop');
    const { seq } = await alice.send(CONV, { text: 'hi' }).whenSent();
    const second = await alice.send(CONV, { text: 'typo' }).whenSent();
    const edit = alice.edit(CONV, seq, { text: 'hi all' });
    const thumbs = bob.react(CONV, seq, '+1');
    const heart = bob.react(CONV, seq, 'heart');
    await Promise.all([edit.whenSent(), thumbs.whenSent(), heart.whenSent()]);
    await bob.react(CONV, seq, 'heart', false).whenSent();
    await alice.delete(CONV, second.seq).whenSent();
    const sends = fake.framesOf('send').filter((f) => f.kind !== undefined);
    expect(sends.map((f) => `${f.kind} ${f.ref}`).sort()).toEqual([`delete ${second.seq}`, `edit ${seq}`, `react ${seq}`, `react ${seq}`, `react ${seq}`]);
    expect(edit.kind).toBe('edit');
    expect(edit.ref).toBe(seq);
    for (const client of [alice, bob]) {
      await eventually(() => expect(client.cursor(CONV)).toBe(fake.log(CONV).length));
      expect(client.messages(CONV).map((m) => [m.seq, m.body, m.edited, m.deleted, m.reactions])).toEqual([
        [1, { op: 'create', members: ['alice', 'bob'] }, undefined, undefined, []],
        [seq, { text: 'hi all' }, edit.seq, undefined, [{ key: '+1', users: ['bob'] }]],
        [second.seq, null, undefined, fake.log(CONV).length, []],
      ]);
    }
  });

  it("a refused edit (someone else's message) fails like a refused send and blocks its conversation until discarded", async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    const alice = await online(fake, 'alice', 'phone');
    const bob = await online(fake, 'bob', 'laptop');
    const { seq } = await alice.send(CONV, 'mine').whenSent();
    const edit = bob.edit(CONV, seq, 'not yours');
    await expect(edit.whenSent()).rejects.toMatchObject({ code: 'forbidden' });
    expect(bob.blocked(CONV)).toMatchObject([{ discardable: true }]);
    await edit.discard();
    await bob.send(CONV, 'after').whenSent();
    await eventually(() => expect(alice.messages(CONV).map((m) => m.body)).toEqual([expect.anything(), 'mine', 'after']));
  });

  it('checks seqs and reaction keys before anything is queued', async () => {
    const fake = new FakeServer();
    const alice = await online(fake, 'alice', 'phone');
    expect(() => alice.edit(CONV, 0, 'x')).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(() => alice.react(CONV, 1, '')).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(() => alice.react(CONV, 1, 'k'.repeat(33))).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    expect(alice.pending()).toEqual([]);
  });
});

describe('read positions and unread counts', () => {
  it('count messages by others, follow markRead, deletes and own sends, and total over conversations', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['bob', 'alice']); // bob created it: his read position is at 1, alice's at 0
    fake.createGroup('g:other', ['alice', 'carol']);
    for (const text of ['a', 'b', 'c']) fake.append(CONV, { from: 'bob', dev: 'b', body: text }, undefined);
    fake.append('g:other', { from: 'carol', dev: 'c', body: 'x' }, undefined);
    const alice = await online(fake, 'alice', 'phone');
    expect(row(alice)).toEqual({ read: 0, unread: 3 });
    expect(alice.totalUnread()).toBe(4);
    fake.append(CONV, { from: 'bob', dev: 'b', body: 'd' }, undefined);
    await eventually(() => expect(row(alice)).toEqual({ read: 0, unread: 4 }));
    alice.markRead(CONV, 3);
    expect(row(alice)).toEqual({ read: 3, unread: 2 });
    fake.append(CONV, { from: 'bob', dev: 'b', kind: 'delete', ref: 5, body: null }, undefined);
    await eventually(() => expect(row(alice)).toEqual({ read: 3, unread: 1 }));
    await alice.send(CONV, 'reply').whenSent();
    expect(row(alice)).toEqual({ read: fake.log(CONV).length, unread: 0 });
    expect(alice.totalUnread()).toBe(1);
    expect(fake.framesOf('read').map((f) => f.seq)).toEqual([3]);
    expect(fake.unread(CONV, 'alice')).toBe(0);
  });

  it('markRead is forward only and coalesced: one request in flight, the newest value next', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['bob', 'alice']); // bob created it: his read position is at 1, alice's at 0
    for (let i = 0; i < 20; i++) fake.append(CONV, { from: 'bob', dev: 'b', body: i }, undefined);
    const alice = await online(fake, 'alice', 'phone');
    for (let seq = 1; seq <= 21; seq++) alice.markRead(CONV, seq);
    alice.markRead(CONV, 5);
    alice.markRead(CONV, 99); // clamped to the newest known entry
    await eventually(() => expect(fake.chat.read('alice', CONV).own).toBe(21));
    expect(fake.framesOf('read').map((f) => f.seq)).toEqual([1, 21]);
    expect(row(alice)).toEqual({ read: 21, unread: 0 });
  });

  it("another device's read moves this one's position and count; a read beyond what it holds asks the server", async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    const phone = await online(fake, 'alice', 'phone');
    const laptop = await online(fake, 'alice', 'laptop');
    const events: ReadEvent[] = [];
    phone.on('read', (event) => events.push(event));
    for (let i = 0; i < 4; i++) fake.append(CONV, { from: 'bob', dev: 'b', body: i }, undefined);
    await eventually(() => expect(row(phone)?.unread).toBe(4));
    laptop.markRead(CONV, 3);
    await eventually(() => expect(row(phone)).toEqual({ read: 3, unread: 2 }));
    expect(events).toContainEqual({ conv: CONV, user: 'alice', seq: 3, own: true });
    // A restarted device holds none of the entries (only cursors and the list): after a read
    // elsewhere it cannot count what is left, so it asks the server for the row.
    const store = new MemoryClientStore();
    await (await online(fake, 'alice', 'tablet', { store })).stop();
    const tablet = await online(fake, 'alice', 'tablet', { store });
    expect(row(tablet)).toEqual({ read: 3, unread: 2 });
    const convsBefore = fake.framesOf('convs').length;
    fake.moveRead(CONV, 'alice', 4, false, undefined);
    await eventually(() => expect(row(tablet)).toEqual({ read: 4, unread: 1 }));
    await eventually(() => expect(fake.framesOf('convs').length).toBe(convsBefore + 1));
    expect(row(tablet)).toEqual({ read: 4, unread: 1 });
  });

  it('a markRead made offline goes out on the next connection', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    fake.append(CONV, { from: 'bob', dev: 'b', body: 'x' }, undefined);
    const alice = await online(fake, 'alice', 'phone');
    fake.refuse = true;
    fake.live('alice')[0]?.cut();
    await eventually(() => expect(alice.state).toBe('waiting'));
    alice.markRead(CONV, 2);
    expect(row(alice)).toEqual({ read: 2, unread: 0 });
    fake.refuse = false;
    await eventually(() => expect(fake.chat.read('alice', CONV).own).toBe(2));
  });

  it('seenBy follows info() and read pushes; private reads reach only the own devices', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob', 'carol']);
    fake.append(CONV, { from: 'alice', dev: 'a', body: 'hello' }, undefined);
    const alice = await online(fake, 'alice', 'phone');
    const bob = await online(fake, 'bob', 'laptop');
    const carol = await online(fake, 'carol', 'tablet');
    expect(await alice.info(CONV)).toEqual({ conv: CONV, members: ['alice', 'bob', 'carol'], last: 2, read: { alice: 2, bob: 0, carol: 0 } });
    expect(alice.seenBy(CONV, 2)).toEqual([]);
    bob.markRead(CONV, 2);
    await eventually(() => expect(alice.seenBy(CONV, 2)).toEqual(['bob']));
    carol.markRead(CONV, 2, { private: true });
    await eventually(() => expect(fake.chat.read('carol', CONV)).toEqual({ own: 2, public: 0 }));
    expect(fake.framesOf('read').at(-1)).toMatchObject({ private: true });
    expect(alice.seenBy(CONV, 2)).toEqual(['bob']);
    expect((await alice.info(CONV)).read).toEqual({ alice: 2, bob: 2, carol: 0 });
  });

  it("seenBy: a member's own later entry is its read position; a member added after a message never saw it", async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob', 'carol']);
    const alice = await online(fake, 'alice', 'phone');
    await alice.info(CONV);
    const hello = fake.append(CONV, { from: 'alice', dev: 'a', body: 'hello' }, undefined);
    expect(alice.seenBy(CONV, hello.seq)).toEqual([]);
    // bob answers: the server moves his position with no read push; his entry is the notice.
    const reply = fake.append(CONV, { from: 'bob', dev: 'b', body: 'hi' }, undefined);
    await eventually(() => expect(alice.messages(CONV).map((m) => m.seq)).toContain(reply.seq));
    expect(alice.seenBy(CONV, hello.seq)).toEqual(['bob']);
    // dave is added after hello: the server starts him just before his add, which says nothing about hello.
    const add = fake.append(CONV, { kind: 'system', from: 'carol', dev: 'c', body: { op: 'members', add: ['dave'], remove: [] } }, undefined);
    await eventually(() => expect(alice.cursor(CONV)).toBe(add.seq));
    expect((await alice.info(CONV)).read).toMatchObject({ dave: add.seq - 1, carol: add.seq });
    expect(alice.seenBy(CONV, hello.seq)).toEqual(['bob', 'carol']);
    expect(alice.seenBy(CONV, add.seq - 1)).toEqual(['bob', 'carol']); // dave's position is add − 1, yet he never saw it
    const later = fake.append(CONV, { from: 'alice', dev: 'a', body: 'welcome' }, undefined);
    fake.moveRead(CONV, 'dave', later.seq, false, undefined);
    await eventually(() => expect(alice.seenBy(CONV, later.seq)).toEqual(['dave']));
    expect(alice.seenBy(CONV, hello.seq)).toEqual(['bob', 'carol']);
  });
});

describe('reconnect catch-up', () => {
  it('asks convs since the saved version and syncs only what changed', async () => {
    const fake = new FakeServer();
    const convs = Array.from({ length: 12 }, (_, i) => `g:c${i}`);
    for (const conv of convs) {
      fake.createGroup(conv, ['alice', 'bob']);
      fake.append(conv, { from: 'bob', dev: 'b', body: 'x' }, undefined);
    }
    const store = new MemoryClientStore();
    const first = await online(fake, 'alice', 'phone', { store });
    await first.stop();
    const saved = fake.chat.version('alice');
    fake.append('g:c3', { from: 'bob', dev: 'b', body: 'while away' }, undefined);
    fake.append('g:c7', { from: 'bob', dev: 'b', kind: 'react', ref: 2, body: { key: '+1', on: true } }, undefined);
    const connectionsBefore = fake.connections.length;
    const second = await online(fake, 'alice', 'phone', { store });
    const frames = fake.connections.slice(connectionsBefore).flatMap((c: FakeConnection) => c.received);
    expect(frames.filter((f) => f.t === 'convs')).toEqual([{ t: 'convs', id: expect.any(Number), since: saved, limit: 500 }]);
    expect(frames.filter((f) => f.t === 'sync').map((f) => f.conv).sort()).toEqual(['g:c3', 'g:c7']);
    // The list came back from the store: every conversation, with its count.
    expect(second.conversations()).toHaveLength(12);
    expect(second.totalUnread()).toBe(13);
    expect(second.messages('g:c7').at(-1)).toBeUndefined(); // the reacted-to message itself is in earlier history
    const page = await second.history('g:c7');
    expect(page.more).toBe(false);
    expect(second.messages('g:c7').at(-1)).toMatchObject({ seq: 2, reactions: [{ key: '+1', users: ['bob'] }] });
  });

  it('pages through convs since while the server says more', async () => {
    const fake = new FakeServer();
    const store = new MemoryClientStore();
    fake.createGroup('g:start', ['alice']);
    const first = await online(fake, 'alice', 'phone', { store });
    await first.stop();
    for (let i = 0; i < 1200; i++) fake.createGroup(`g:n${i}`, ['alice']);
    const second = await online(fake, 'alice', 'phone', { store });
    expect(second.conversations()).toHaveLength(1201);
    expect(fake.framesOf('convs').slice(1).map((f) => f.since !== undefined)).toEqual([true, true, true]);
  });
});

describe('typing', () => {
  it('is throttled per conversation and shows as an event on the other members', async () => {
    let now = 1_000_000;
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    const alice = await online(fake, 'alice', 'phone', { now: () => now });
    const bob = await online(fake, 'bob', 'laptop', { now: () => now });
    const seen: TypingEvent[] = [];
    bob.on('typing', (event) => seen.push(event));
    alice.typing(CONV);
    alice.typing(CONV);
    now += 2000;
    alice.typing(CONV);
    now += 1500;
    alice.typing(CONV);
    await eventually(() => expect(seen).toHaveLength(2));
    expect(fake.framesOf('typing')).toHaveLength(2);
    expect(seen.map((event) => event.user)).toEqual(['alice', 'alice']);
    expect(seen[0]?.until).toBeGreaterThanOrEqual(1_000_000 + 5000);
  });
});

describe('unknown frames and kinds', () => {
  it('are ignored: no error, no message on screen, no unread', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    const alice = await online(fake, 'alice', 'phone');
    const errors: unknown[] = [];
    alice.on('error', (error) => errors.push(error));
    fake.live('alice')[0]?.deliver({ t: 'presence', user: 'bob', online: true });
    fake.append(CONV, { from: 'bob', dev: 'b', kind: 'poll' as never, body: { q: '?' } }, undefined);
    await eventually(() => expect(alice.cursor(CONV)).toBe(2));
    expect(alice.messages(CONV).map((m) => m.seq)).toEqual([1]);
    expect(row(alice)?.unread).toBe(0);
    expect(errors).toEqual([]);
  });
});
