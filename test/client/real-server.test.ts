/**
 * The SDK against the real server (embedded SQLite, port 0): two clients in a
 * group converge to identical, gapless, duplicate-free views, and an app killed
 * mid-send and started again on the same file store neither loses nor
 * duplicates a message.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SequentClient } from '../../packages/client/src/client/client.js';
import { FileClientStore } from '../../packages/client/src/client/file-store.js';
import type { SendHandle } from '../../packages/client/src/client/send-handle.js';
import { MemoryClientStore } from '../../packages/client/src/client/store.js';
import { webSocketTransport, type WebSocketConstructor } from '../../packages/client/src/client/transport.js';
import { startTestServer, type TestServer } from '../support/wire.js';
import { expectConverged, realClient } from './converge.js';
import { eventually } from './helpers.js';
import { killable } from '../../packages/server/src/chaos/killable.js';

let server: TestServer;
let dir: string;
const clients: SequentClient[] = [];
const transport = webSocketTransport(WebSocket as unknown as WebSocketConstructor);

beforeAll(async () => {
  server = await startTestServer({ holdMs: 300 });
  dir = mkdtempSync(join(tmpdir(), 'sequent-client-real-'));
});

afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.stop()));
});

describe('SDK against the real server', () => {
  it('two clients sending at once into a group converge to the same gapless, duplicate-free view', async () => {
    const alice = realClient(server, transport, 'alice', 'a-phone');
    const bob = realClient(server, transport, 'bob', 'b-phone', { delivery: 'immediate' });
    clients.push(alice, bob);
    await Promise.all([alice.start(), bob.start()]);
    await Promise.all([alice.ready(), bob.ready()]);
    await alice.create('g:converge', ['bob']);
    await eventually(() => expect(bob.cursor('g:converge')).toBe(1));
    const handles: SendHandle[] = [];
    for (let i = 0; i < 40; i++) {
      handles.push(alice.send('g:converge', { n: i, from: 'alice' }));
      handles.push(bob.send('g:converge', { n: i, from: 'bob' }));
    }
    await Promise.all(handles.map((h) => h.whenSent()));
    await expectConverged([alice, bob], 'g:converge', handles, 81);
  });

  it('an app killed mid-send and started again on its file store neither loses nor duplicates', async () => {
    const path = join(dir, 'alice-kill', 'client.json');
    const conv = 'g:killed';
    const owner = realClient(server, transport, 'bob', 'b-kill');
    clients.push(owner);
    await owner.start();
    await owner.create(conv, ['alice']);

    // First run: acks never arrive, and only the first 6 sends reach the server.
    let outbound = 0;
    const firstStore = new FileClientStore(path, { noSync: true });
    const app = killable(transport, firstStore, {
      dropInbound: (text) => text.includes('"t":"ack"'),
      dropOutbound: (text) => text.includes('"t":"send"') && ++outbound > 6,
    });
    const first = realClient(server, app.transport, 'alice', 'a-kill', { store: app.store });
    clients.push(first);
    await first.start();
    await first.ready();
    const sent = Array.from({ length: 10 }, (_, i) => first.send(conv, { n: i }));
    await eventually(async () => {
      expect((await firstStore.load()).outbox).toHaveLength(10);
      expect(owner.entries(conv).filter((e) => e.kind === 'msg')).toHaveLength(6);
    });
    app.kill();
    await firstStore.close(); // a write in flight at the kill lands (or not) before the next run reads
    expect(sent.every((h) => h.state === 'sending')).toBe(true);

    // Second run on the same file.
    const second = realClient(server, transport, 'alice', 'a-kill', { store: new FileClientStore(path, { noSync: true }) });
    clients.push(second);
    await second.start();
    expect(second.pending(conv).map((h) => [h.cmid, h.dseq])).toEqual(sent.map((h) => [h.cmid, h.dseq]));
    await Promise.all(second.pending(conv).map((h) => h.whenSent()));
    await second.ready();
    const resumed = second.pending(conv);
    expect(resumed).toEqual([]);
    await eventually(() => expect(owner.cursor(conv)).toBe(11));
    const log = owner.entries(conv).filter((e) => e.kind === 'msg');
    expect(log.map((e) => e.cmid)).toEqual(sent.map((h) => h.cmid));
    expect(log.map((e) => e.dseq)).toEqual(sent.map((h) => h.dseq));
    expect(log.map((e) => e.body)).toEqual(sent.map((_, i) => ({ n: i })));
    // Seen from alice's side too: each of her messages once, in place.
    await eventually(() => expect(second.cursor(conv)).toBe(11));
    expect(second.entries(conv).filter((e) => e.kind === 'msg').map((e) => e.cmid)).toEqual(sent.map((h) => h.cmid));
    await second.stop();
    expect((await new FileClientStore(path).load()).outbox).toEqual([]);
  });

  it('a removed member keeps what it could read and gets nothing after its removal', async () => {
    const owner = realClient(server, transport, 'carol', 'c1');
    const removed = realClient(server, transport, 'dave', 'd1', { store: new MemoryClientStore() });
    clients.push(owner, removed);
    await Promise.all([owner.start(), removed.start()]);
    await owner.create('g:removal', ['dave']);
    await owner.send('g:removal', 'before').whenSent();
    const { seq } = await owner.members('g:removal', { remove: ['dave'] });
    await owner.send('g:removal', 'after').whenSent();
    await eventually(() => expect(removed.cursor('g:removal')).toBe(seq));
    await removed.sync('g:removal');
    expect(removed.entries('g:removal').map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(removed.conversations().find((c) => c.conv === 'g:removal')).toMatchObject({ until: seq });
  });
});
