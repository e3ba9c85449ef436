/**
 * An app killed mid-send (the SDK instance dropped without stop()) and started
 * again on the same ClientStore: unacked sends go out again with the same cmid
 * and dseq, nothing acked is sent twice, counters continue, and receiving
 * resumes at the stored cursor.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { SequentClient } from '../../packages/client/src/client/client.js';
import type { ClientOptions } from '../../packages/client/src/client/options.js';
import { FileClientStore } from '../../packages/client/src/client/file-store.js';
import { IndexedDbClientStore } from '../../packages/client/src/client/indexeddb-store.js';
import { MemoryClientStore, type ClientStore } from '../../packages/client/src/client/store.js';
import { FakeServer } from './fake-server.js';
import { eventually, fakeClient, range, seqsOf } from './helpers.js';
import { killable } from '../../packages/server/src/chaos/killable.js';

const CONV = 'g:team';
let clients: SequentClient[] = [];

afterEach(async () => {
  await Promise.all(clients.map((client) => client.stop()));
  clients = [];
});

/** Alice's phone on `store`, behind a transport and store the test can kill as an app kill would, started and ready. */
async function startKillable(fake: FakeServer, store: ClientStore, options: Partial<ClientOptions> = {}) {
  const first = killable(fake.transport, store);
  const app = fakeClient(fake, 'alice', 'phone', { ...options, transport: first.transport, store: first.store });
  clients.push(app);
  await app.start();
  await app.ready();
  return { app, kill: first.kill };
}

describe('resume after an app kill', () => {
  it('resends the unacked sends with the same cmid and dseq, and no acked one', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    const store = new MemoryClientStore();
    const { app, kill } = await startKillable(fake, store);
    const acked = app.send(CONV, 'acked before the kill');
    await acked.whenSent();
    await eventually(async () => expect((await store.load()).outbox).toEqual([]));
    // From here on the server stores sends but every ack is lost: the kill comes mid-send.
    fake.onOutgoing = (frame) => (frame.t === 'ack' ? 'drop' : 'send');
    const lost = [app.send(CONV, 'stored, ack lost'), app.send(CONV, 'stored, ack lost too')];
    await eventually(() => expect(fake.log(CONV).length).toBe(4));
    fake.onFrame = (frame) => (frame.t === 'send' ? 'drop' : 'handle');
    const unsent = app.send(CONV, 'never reached the server');
    await eventually(async () => expect((await store.load()).outbox.map((e) => e.cmid)).toContain(unsent.cmid));
    kill();
    fake.live('alice')[0]?.cut();
    fake.onOutgoing = undefined;
    fake.onFrame = undefined;

    const restarted = fakeClient(fake, 'alice', 'phone', { store });
    clients.push(restarted);
    await restarted.start();
    const pending = restarted.pending(CONV);
    expect(pending.map((h) => [h.cmid, h.dseq, h.state])).toEqual([
      [lost[0]?.cmid, 2, 'sending'],
      [lost[1]?.cmid, 3, 'sending'],
      [unsent.cmid, 4, 'sending'],
    ]);
    await Promise.all(pending.map((h) => h.whenSent()));
    await restarted.ready();
    const next = restarted.send(CONV, 'after the restart');
    expect(next.dseq).toBe(5);
    await next.whenSent();
    const logged = fake.log(CONV).slice(1);
    expect(logged.map((e) => e.cmid)).toEqual([acked.cmid, lost[0]?.cmid, lost[1]?.cmid, unsent.cmid, next.cmid]);
    expect(logged.map((e) => e.dseq)).toEqual([1, 2, 3, 4, 5]);
    const resent = fake.connections[1]?.received.filter((f) => f.t === 'send').map((f) => f.cmid);
    expect(resent).not.toContain(acked.cmid);
    expect(pending.map((h) => h.seq)).toEqual([3, 4, 5]);
  });

  it('resumes receiving at the stored cursor: nothing delivered twice, nothing skipped', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    for (let i = 0; i < 4; i++) fake.append(CONV, { from: 'bob', dev: 'b', body: i }, undefined);
    const store = new MemoryClientStore();
    const { app, kill } = await startKillable(fake, store);
    await eventually(async () => expect((await store.load()).convs.find((c) => c.conv === CONV)?.cursor).toBe(5));
    kill();
    fake.live('alice')[0]?.cut();
    for (let i = 0; i < 3; i++) fake.append(CONV, { from: 'bob', dev: 'b', body: `while dead ${i}` }, undefined);

    const restarted = fakeClient(fake, 'alice', 'phone', { store });
    clients.push(restarted);
    const delivered: number[] = [];
    restarted.on('message', (event) => delivered.push(event.entry.seq));
    await restarted.start();
    await restarted.ready();
    expect(delivered).toEqual(range(6, 8));
    expect(seqsOf(restarted, CONV)).toEqual(range(6, 8));
    expect(fake.connections.at(-1)?.received.find((f) => f.t === 'sync')).toMatchObject({ after: 5 });
  });

  it('keeps failed sends failed across a restart until retried', async () => {
    const fake = new FakeServer();
    fake.createGroup(CONV, ['alice', 'bob']);
    fake.onFrame = (frame) => (frame.t === 'send' ? 'drop' : 'handle');
    const store = new MemoryClientStore();
    const app = fakeClient(fake, 'alice', 'phone', { store, sendDeadlineMs: 50 });
    clients.push(app);
    await app.start();
    await app.ready();
    const handle = app.send(CONV, 'will fail');
    await eventually(async () => expect((await store.load()).outbox[0]?.failed?.code).toBe('deadline'));
    await app.stop();
    fake.onFrame = undefined;
    const restarted = fakeClient(fake, 'alice', 'phone', { store });
    clients.push(restarted);
    await restarted.start();
    await restarted.ready();
    const [restored] = restarted.pending(CONV);
    expect([restored?.cmid, restored?.state, restored?.error?.code]).toEqual([handle.cmid, 'failed', 'deadline']);
    expect(fake.log(CONV).length).toBe(1);
    restored?.retry();
    await restored?.whenSent();
    expect(fake.log(CONV).map((e) => e.cmid)).toEqual([undefined, handle.cmid]);
  });
});

const dir = mkdtempSync(join(tmpdir(), 'sequent-client-resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Each persistent adapter: the store of the first run, and the one a restarted app would open. */
const adapters: { name: string; pair(): [ClientStore, () => ClientStore] }[] = [
  {
    name: 'file',
    pair: () => {
      const path = join(dir, `${Math.random()}`, 'client.json');
      return [new FileClientStore(path, { noSync: true }), () => new FileClientStore(path, { noSync: true })];
    },
  },
  {
    name: 'IndexedDB',
    pair: () => {
      const indexedDB = new IDBFactory();
      return [new IndexedDbClientStore({ indexedDB }), () => new IndexedDbClientStore({ indexedDB })];
    },
  },
];

describe('resume on each persistent store', () => {
  for (const adapter of adapters) {
    it(`${adapter.name}: sends unacked at the kill are stored once each, in order, after the restart`, async () => {
      const fake = new FakeServer();
      fake.createGroup(CONV, ['alice', 'bob']);
      fake.onOutgoing = (frame) => (frame.t === 'ack' ? 'drop' : 'send');
      const [store, reopen] = adapter.pair();
      const { app, kill } = await startKillable(fake, store, { ackTimeoutMs: 60_000 });
      const sent = [app.send(CONV, 'a'), app.send(CONV, 'b'), app.send('dm:alice:bob', 'c')];
      await eventually(() => expect(fake.log(CONV).length + fake.log('dm:alice:bob').length).toBe(4));
      kill();
      await store.close();
      fake.onOutgoing = undefined;

      const restarted = fakeClient(fake, 'alice', 'phone', { store: reopen() });
      clients.push(restarted);
      await restarted.start();
      expect(restarted.pending().map((h) => h.cmid).sort()).toEqual(sent.map((h) => h.cmid).sort());
      await Promise.all(restarted.pending().map((h) => h.whenSent()));
      expect(fake.log(CONV).map((e) => e.cmid)).toEqual([undefined, sent[0]?.cmid, sent[1]?.cmid]);
      expect(fake.log('dm:alice:bob').map((e) => e.cmid)).toEqual([sent[2]?.cmid]);
      expect(restarted.send(CONV, 'd').dseq).toBe(3);
    });
  }
});
