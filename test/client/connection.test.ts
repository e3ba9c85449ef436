/**
 * The connection's state machine against the scriptable fake server: every
 * transition reported, reconnect after closes and dead paths, and on every
 * (re)connect: convs, then a paged sync of each conversation that is behind.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { SequentClient } from '../../packages/client/src/client/client.js';
import type { ClientState, StateChange } from '../../packages/client/src/client/connection.js';
import type { ConversationInfo } from '../../packages/client/src/client/conversations.js';
import type { SequentClientError } from '../../packages/client/src/client/errors.js';
import { MemoryClientStore } from '../../packages/client/src/client/store.js';
import { FakeServer } from './fake-server.js';
import { eventually, fakeClient, range, seqsOf } from './helpers.js';

let clients: SequentClient[] = [];

function tracked(client: SequentClient): { states: ClientState[]; changes: StateChange[]; errors: SequentClientError[] } {
  clients.push(client);
  const states: ClientState[] = [];
  const changes: StateChange[] = [];
  const errors: SequentClientError[] = [];
  client.on('state', (change) => {
    states.push(change.to);
    changes.push(change);
  });
  client.on('error', (error) => errors.push(error));
  return { states, changes, errors };
}

afterEach(async () => {
  await Promise.all(clients.map((client) => client.stop()));
  clients = [];
});

describe('connection', () => {
  it('reports every transition from idle to ready, and to stopped', async () => {
    const fake = new FakeServer();
    const client = fakeClient(fake, 'alice', 'phone');
    const { changes } = tracked(client);
    expect(client.state).toBe('idle');
    await client.start();
    await client.ready();
    await client.stop();
    expect(changes.map((c) => [c.from, c.to])).toEqual([
      ['idle', 'connecting'],
      ['connecting', 'authenticating'],
      ['authenticating', 'syncing'],
      ['syncing', 'ready'],
      ['ready', 'stopped'],
    ]);
    expect(fake.connections[0]?.open).toBe(false);
  });

  for (const code of [4429, 1001]) {
    it(`reconnects after a close with ${code} and catches up what it missed`, async () => {
      const fake = new FakeServer();
      fake.createGroup('g:team', ['alice', 'bob']);
      const client = fakeClient(fake, 'alice', 'phone');
      const { changes } = tracked(client);
      await client.start();
      await client.ready();
      fake.live('alice')[0]?.close(code, 'test');
      // Written while alice is away: only the catch-up can bring these.
      for (let i = 0; i < 3; i++) fake.append('g:team', { from: 'bob', dev: 'b', body: i }, undefined);
      await eventually(() => expect(seqsOf(client, 'g:team')).toEqual(range(1, 4)));
      expect(changes.find((c) => c.to === 'waiting')).toMatchObject({ from: 'ready', code });
      expect(changes.map((c) => c.to).slice(-5)).toEqual(['waiting', 'connecting', 'authenticating', 'syncing', 'ready']);
      expect(fake.connections[1]?.received.map((f) => f.t)).toEqual(['hello', 'convs', 'sync']);
    });
  }

  it('on connect sends convs, then syncs page by page only the conversations that are behind', async () => {
    const fake = new FakeServer();
    fake.createGroup('g:behind', ['alice', 'bob']);
    fake.createGroup('g:current', ['alice', 'bob']);
    for (let i = 0; i < 6; i++) fake.append('g:behind', { from: 'bob', dev: 'b', body: i }, undefined);
    const store = new MemoryClientStore();
    await store.setCursor('g:current', 1);
    await store.setCursor('g:behind', 2);
    const client = fakeClient(fake, 'alice', 'phone', { store, syncPageSize: 2 });
    tracked(client);
    await client.start();
    await client.ready();
    const frames = fake.connections[0]?.received ?? [];
    expect(frames.map((f) => f.t)).toEqual(['hello', 'convs', 'sync', 'sync', 'sync']);
    expect(frames.filter((f) => f.t === 'sync').map((f) => [f.conv, f.after, f.limit])).toEqual([
      ['g:behind', 2, 2],
      ['g:behind', 4, 2],
      ['g:behind', 6, 2],
    ]);
    expect(seqsOf(client, 'g:behind')).toEqual([3, 4, 5, 6, 7]);
    expect(seqsOf(client, 'g:current')).toEqual([]);
    expect(client.cursor('g:behind')).toBe(7);
    await eventually(async () => expect((await store.load()).convs.find((c) => c.conv === 'g:behind')?.cursor).toBe(7));
  });

  it('starts a conversation it joined late at its first readable seq, and stops at its removal', async () => {
    const fake = new FakeServer();
    fake.createGroup('g:late', ['bob']);
    fake.append('g:late', { from: 'bob', dev: 'b', body: 'before alice' }, undefined);
    fake.append('g:late', { kind: 'system', from: 'bob', dev: 'b', body: { op: 'members', add: ['alice'], remove: [] } }, undefined);
    fake.append('g:late', { from: 'bob', dev: 'b', body: 'for alice' }, undefined);
    fake.append('g:late', { kind: 'system', from: 'bob', dev: 'b', body: { op: 'members', add: [], remove: ['alice'] } }, undefined);
    fake.append('g:late', { from: 'bob', dev: 'b', body: 'after alice' }, undefined);
    const client = fakeClient(fake, 'alice', 'phone');
    tracked(client);
    await client.start();
    await client.ready();
    expect(seqsOf(client, 'g:late')).toEqual([3, 4, 5]);
    expect(client.cursor('g:late')).toBe(5);
    expect(client.conversations()).toEqual([expect.objectContaining({ conv: 'g:late', from: 3, until: 5, last: 6 })]);
  });

  it('drops a silent connection after a heartbeat goes unanswered, and reconnects', async () => {
    const fake = new FakeServer();
    const client = fakeClient(fake, 'alice', 'phone', { pingIntervalMs: 20, pingTimeoutMs: 20 });
    const { changes } = tracked(client);
    await client.start();
    await client.ready();
    const first = fake.connections[0];
    if (!first) throw new Error('no connection');
    first.blackhole = true;
    await eventually(() => expect(fake.connections.length).toBe(2));
    await client.ready();
    expect(changes.find((c) => c.to === 'waiting')?.reason).toBe('heartbeat timeout');
    expect(first.received.some((f) => f.t === 'ping')).toBe(true);
    expect(first.open).toBe(false);
  });

  it('gives up on an attempt that does not open within connectTimeoutMs, and tries again', async () => {
    const fake = new FakeServer();
    let attempts = 0;
    const client = fakeClient(fake, 'alice', 'phone', {
      connectTimeoutMs: 30,
      transport: {
        // The first two attempts hang: never open, never close.
        open: (url) =>
          ++attempts <= 2 ? { send() {}, close() {}, onopen: null, onmessage: null, onclose: null, onerror: null } : fake.transport.open(url),
      },
    });
    const { changes } = tracked(client);
    await client.start();
    await client.ready();
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(changes.filter((c) => c.to === 'waiting').map((c) => c.reason).slice(0, 2)).toEqual(['connect timeout', 'connect timeout']);
  });

  it('keeps retrying while the server refuses connections', async () => {
    const fake = new FakeServer();
    fake.refuse = true;
    const client = fakeClient(fake, 'alice', 'phone');
    const { states } = tracked(client);
    await client.start();
    await eventually(() => expect(states.filter((s) => s === 'waiting').length).toBeGreaterThanOrEqual(3));
    fake.refuse = false;
    await client.ready();
    expect(fake.connections.length).toBe(1);
  });

  it('stops on a refused fixed token, and asks getToken again when it has one', async () => {
    const fake = new FakeServer();
    const fixed = fakeClient(fake, 'alice', 'phone', { token: 'not-a-token' });
    const { errors } = tracked(fixed);
    await fixed.start();
    await expect(fixed.ready()).rejects.toMatchObject({ code: 'stopped' });
    expect(errors.map((e) => e.code)).toContain('unauthorized');

    const devices: string[] = [];
    const refreshing = fakeClient(fake, 'bob', 'laptop', {
      token: undefined,
      getToken: (device) => {
        devices.push(device);
        return devices.length === 1 ? 'expired' : `bob/${device}`;
      },
    });
    tracked(refreshing);
    const device = await refreshing.deviceId();
    await refreshing.start();
    await refreshing.ready();
    expect(devices).toEqual([device, device]);
  });

  it('stops when the server does not speak its protocol version (4426)', async () => {
    const fake = new FakeServer();
    fake.proto = 2;
    const client = fakeClient(fake, 'alice', 'phone');
    const { errors, changes } = tracked(client);
    await client.start();
    await expect(client.ready()).rejects.toMatchObject({ code: 'stopped' });
    expect(errors.map((e) => e.code)).toEqual(['bad_request', 'unsupported_proto']);
    expect(changes.at(-1)).toMatchObject({ to: 'stopped' });
    expect(fake.connections.length).toBe(1);
  });

  it('keeps the device id of its store, and refuses a token for another device', async () => {
    const fake = new FakeServer();
    const store = new MemoryClientStore();
    const first = fakeClient(fake, 'alice', 'phone', { store, token: undefined, getToken: (device) => `alice/${device}` });
    tracked(first);
    const device = await first.deviceId();
    expect(device).toMatch(/^[A-Za-z0-9]{20}$/);
    await first.start();
    await first.ready();
    await first.stop();
    const again = fakeClient(fake, 'alice', 'phone', { store, token: undefined, getToken: (d) => `alice/${d}` });
    tracked(again);
    expect(await again.deviceId()).toBe(device);
    expect((await store.load()).identity).toEqual({ user: 'alice', device });
    const other = fakeClient(fake, 'alice', 'tablet', { store });
    const { errors } = tracked(other);
    await other.start();
    await expect(other.ready()).rejects.toMatchObject({ code: 'stopped' });
    expect(errors.map((e) => e.code)).toEqual(['identity_mismatch']);
  });
});

describe('conversation list', () => {
  it('orders by recent activity, from convs and then from pushes and own sends', async () => {
    const fake = new FakeServer();
    fake.createGroup('g:a', ['alice', 'bob']);
    fake.createGroup('g:b', ['alice', 'bob']);
    fake.createGroup('g:c', ['alice', 'bob']);
    const client = fakeClient(fake, 'alice', 'phone');
    tracked(client);
    const lists: ConversationInfo[][] = [];
    client.on('conversations', (list) => lists.push(list));
    await client.start();
    await client.ready();
    expect(client.conversations().map((c) => c.conv)).toEqual(['g:c', 'g:b', 'g:a']);
    fake.append('g:a', { from: 'bob', dev: 'b', body: 'news' }, undefined);
    await eventually(() => expect(client.conversations().map((c) => c.conv)).toEqual(['g:a', 'g:c', 'g:b']));
    await client.send('g:b', 'mine').whenSent();
    await eventually(() => expect(lists.at(-1)?.map((c) => c.conv)).toEqual(['g:b', 'g:a', 'g:c']));
    expect(lists.at(-1)?.find((c) => c.conv === 'g:b')).toMatchObject({ last: 2, cursor: 2 });
  });
});
