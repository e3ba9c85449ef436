/**
 * A send the server refuses for good (real server, port 0): whenSent() rejects,
 * the conversation is visibly blocked, also after a restart, and discard()
 * unblocks it without losing or reordering the messages behind it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SequentClient } from '../../packages/client/src/client/client.js';
import { FileClientStore } from '../../packages/client/src/client/file-store.js';
import type { BlockedConversation } from '../../packages/client/src/client/outbox.js';
import { webSocketTransport } from '../../packages/client/src/client/transport.js';
import { startTestServer, type TestServer, type WireClient } from '../support/wire.js';
import { realClient } from './converge.js';

let server: TestServer;
let dir: string;
let bob: WireClient;
const clients: SequentClient[] = [];
const transport = webSocketTransport(WebSocket);

beforeAll(async () => {
  server = await startTestServer({ holdMs: 200 });
  dir = mkdtempSync(join(tmpdir(), 'sequent-discard-'));
  bob = await server.connect('bob', 'b1');
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.stop()));
});

async function alice(store: FileClientStore, options: Parameters<typeof realClient>[4] = {}): Promise<SequentClient> {
  const client = realClient(server, transport, 'alice', 'a1', { store, ...options });
  clients.push(client);
  await client.start();
  await client.ready(5000);
  return client;
}

/** The log's messages from alice, as [dseq, text]. */
async function aliceLog(conv: string): Promise<[number | undefined, unknown][]> {
  const { msgs } = await bob.syncAll(conv);
  return msgs.filter((m) => m.from === 'alice' && m.kind === 'msg').map((m) => [m.dseq, m.body]);
}

describe('a send refused for good', () => {
  it('rejects whenSent(), blocks its conversation across a restart, and discard(conv) unblocks it', async () => {
    await bob.request({ t: 'create', conv: 'g:closed', members: [] });
    const path = join(dir, 'closed.json');
    const first = await alice(new FileClientStore(path));
    const seen: BlockedConversation[] = [];
    first.on('blocked', (info) => seen.push(info));
    const refused = first.send('g:closed', 'let me in');
    const behind = first.send('g:closed', 'behind it');
    await expect(refused.whenSent()).rejects.toMatchObject({ code: 'forbidden' });
    await expect(behind.whenSent()).rejects.toMatchObject({ code: expect.stringMatching(/^(blocked|forbidden)$/) });
    expect(seen.map((b) => [b.conv, b.error.code, b.discardable])).toEqual([['g:closed', 'forbidden', true]]);
    await first.stop();

    // Restarted: still there, still blocked, reported at start.
    const second = realClient(server, transport, 'alice', 'a1', { store: new FileClientStore(path) });
    clients.push(second);
    const onStart: BlockedConversation[] = [];
    second.on('blocked', (info) => onStart.push(info));
    await second.start();
    expect(onStart.map((b) => b.conv)).toEqual(['g:closed']);
    expect(second.blocked()).toMatchObject([{ conv: 'g:closed', error: { code: 'forbidden' }, discardable: true }]);
    expect(second.blocked()[0]!.handles.map((h) => h.body)).toEqual(['let me in', 'behind it']);

    const dropped = await second.discard('g:closed');
    expect(dropped.map((h) => [h.body, h.state])).toEqual([['let me in', 'discarded'], ['behind it', 'discarded']]);
    expect(second.blocked()).toEqual([]);
    expect(second.pending('g:closed')).toEqual([]);
    await expect(dropped[0]!.whenSent()).rejects.toMatchObject({ code: 'discarded' });
    await second.stop();
    expect((await new FileClientStore(path).load()).outbox).toEqual([]);

    // Once a member, the conversation's next send takes dseq 1, the one the server expects.
    await bob.request({ t: 'members', conv: 'g:closed', add: ['alice'] });
    const third = await alice(new FileClientStore(path));
    const welcome = third.send('g:closed', 'finally');
    expect(welcome.dseq).toBe(1);
    await welcome.whenSent();
    expect(await aliceLog('g:closed')).toEqual([[1, 'finally']]);
  });

  it('handle.discard() drops only the refused message; the ones behind it take its dseq and are sent in order', async () => {
    await bob.request({ t: 'create', conv: 'g:open', members: ['alice'] });
    const client = await alice(new FileClientStore(join(dir, 'open.json')));
    await client.send('g:open', 'one').whenSent();
    // Over maxBody as the server counts it, but the SDK only knows after welcome: forge the refusal with a smaller limit.
    const limits = client as unknown as { maxBody: number };
    limits.maxBody = 10_000_000;
    const tooBig = client.send('g:open', 'x'.repeat(300_000));
    const two = client.send('g:open', 'two');
    const three = client.send('g:open', 'three');
    await expect(tooBig.whenSent()).rejects.toMatchObject({ code: expect.stringMatching(/^(too_large|bad_request)$/) });
    expect(client.blocked('g:open')[0]?.discardable).toBe(true);
    expect([tooBig.dseq, two.dseq, three.dseq]).toEqual([2, 3, 4]);

    await tooBig.discard();
    expect(tooBig.state).toBe('discarded');
    expect([two.dseq, three.dseq]).toEqual([2, 3]);
    await Promise.all([two.whenSent(), three.whenSent()]);
    expect(await aliceLog('g:open')).toEqual([[1, 'one'], [2, 'two'], [3, 'three']]);
    expect(client.view('g:open').filter((item) => item.kind === 'pending')).toEqual([]);
    const four = client.send('g:open', 'four');
    expect(four.dseq).toBe(4);
    await four.whenSent();
  });

  it('refuses to discard a send that failed on its deadline: the server may have it', async () => {
    await bob.request({ t: 'create', conv: 'g:slow', members: ['alice'] });
    const client = await alice(new FileClientStore(join(dir, 'slow.json')), { sendDeadlineMs: 1 });
    const late = client.send('g:slow', 'late');
    await expect(late.whenSent()).rejects.toMatchObject({ code: 'deadline' });
    expect(client.blocked('g:slow')[0]).toMatchObject({ discardable: false });
    await expect(late.discard()).rejects.toMatchObject({ code: 'cannot_discard' });
    await expect(client.discard('g:slow')).rejects.toMatchObject({ code: 'cannot_discard' });
    expect(client.pending('g:slow')).toEqual([late]);
  });
});
