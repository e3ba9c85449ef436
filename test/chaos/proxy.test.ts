/** The fault proxy in front of a real server: pass-through, duplicates, ordered delays, cuts, determinism. */
import { afterEach, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { startFaultProxy, type FaultOptions, type FaultProxy } from '../../packages/server/src/chaos/proxy.js';
import { startTestServer, WireClient, type Reply, type TestServer } from '../support/wire.js';

let server: TestServer | undefined;
const proxies: FaultProxy[] = [];
const clients: WireClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const proxy of proxies.splice(0)) await proxy.close();
  await server?.stop();
  server = undefined;
});

async function setup(seed = 1, faults: Partial<FaultOptions> = {}): Promise<{ s: TestServer; proxy: FaultProxy }> {
  server ??= await startTestServer();
  const proxy = await startFaultProxy({ target: server.server.url, seed, faults });
  proxies.push(proxy);
  return { s: server, proxy };
}

async function connect(s: TestServer, proxy: FaultProxy, user: string, device = 'd1'): Promise<WireClient> {
  const client = await WireClient.open(proxy.url);
  clients.push(client);
  const welcome = await client.hello(await s.server.mintToken(user, device));
  expect(welcome.t).toBe('welcome');
  return client;
}

/** Every frame a socket receives, in arrival order. */
function recordFrames(client: WireClient): Reply[] {
  const frames: Reply[] = [];
  client.socket.on('message', (data) => frames.push(JSON.parse(data.toString()) as Reply));
  return frames;
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('fault proxy', () => {
  it('passes frames both ways and keeps the target path', async () => {
    const { s, proxy } = await setup();
    expect(new URL(proxy.url).pathname).toBe('/v1/ws');
    const alice = await connect(s, proxy, 'alice');
    const bob = await connect(s, proxy, 'bob');
    expect(await alice.request({ t: 'create', conv: 'g:team', members: ['bob'] })).toMatchObject({ t: 'ok', seq: 1 });
    const ack = await alice.request({ t: 'send', conv: 'g:team', cmid: 'c1', dseq: 1, body: { text: 'hi' } });
    expect(ack).toMatchObject({ t: 'ack', seq: 2, cmid: 'c1' });
    const pushes = await bob.waitForPushes(2);
    expect(pushes.map((p) => p.seq)).toEqual([1, 2]);
    expect(pushes[1]).toMatchObject({ body: { text: 'hi' }, mid: ack['mid'] });
    expect(proxy.stats.connections).toBe(2);
    expect(proxy.stats.toServer).toBe(4); // two hellos, create, send
    expect(proxy.stats.toClient).toBeGreaterThanOrEqual(6); // two welcomes, ok, ack, two pushes to bob
  });

  it('passes the server close code through', async () => {
    const { proxy } = await setup();
    const client = await WireClient.open(proxy.url);
    clients.push(client);
    client.sendRaw(JSON.stringify({ t: 'convs', id: 1 }));
    expect((await client.closed).code).toBe(4401);
  });

  it('refuses the handshake as the server does (404 on another path) and when the server is down', async () => {
    const { proxy } = await setup();
    const wrongPath = proxy.url.replace('/v1/ws', '/nope');
    await expect(WireClient.open(wrongPath)).rejects.toThrow(/404/);
    await server?.stop();
    server = undefined;
    await expect(WireClient.open(proxy.url)).rejects.toThrow(/502/);
    expect(proxy.stats.refused).toBe(2);
  });

  it('duplicates client frames; the server answers a duplicated send with the same ack and stores it once', async () => {
    const { s, proxy } = await setup(7);
    const alice = await connect(s, proxy, 'alice');
    const frames = recordFrames(alice);
    proxy.setFaults({ duplicateToServer: 1 });
    const ack = await alice.request({ t: 'send', conv: 'dm:alice:bob', cmid: 'm1', dseq: 1, body: 'x' });
    await until(() => frames.filter((f) => f.t === 'ack').length === 2, 'the second ack');
    const acks = frames.filter((f) => f.t === 'ack');
    expect(acks[1]).toEqual(acks[0]);
    expect(acks[0]).toEqual(ack);
    proxy.setFaults({ duplicateToServer: 0 });
    const { msgs } = await alice.syncAll('dm:alice:bob');
    expect(msgs.map((m) => m.cmid)).toEqual(['m1']);
    expect(proxy.stats.duplicated).toBe(1);
  });

  it('keeps frame order within each direction of a connection under random delays', async () => {
    const { s, proxy } = await setup(3, { toServerDelayMs: { min: 0, max: 25 }, toClientDelayMs: { min: 0, max: 25 } });
    const alice = await connect(s, proxy, 'alice');
    const bob = await connect(s, proxy, 'bob');
    const frames = recordFrames(alice);
    // The server answers pings in the order it reads them: pong order is the order both ways.
    const count = 60;
    for (let i = 0; i < count; i++) alice.socket.send(JSON.stringify({ t: 'ping', id: 1000 + i }));
    await until(() => frames.length === count, 'all pongs');
    expect(frames.map((f) => (f as { id?: number }).id)).toEqual(Array.from({ length: count }, (_, i) => 1000 + i));
    // Pushes to bob keep seq order too.
    const sends = Array.from({ length: 20 }, (_, i) =>
      alice.request({ t: 'send', conv: 'dm:alice:bob', cmid: `c${i + 1}`, dseq: i + 1, body: i }),
    );
    const acks = await Promise.all(sends);
    expect(acks.map((a) => a['seq'])).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const pushes = await bob.waitForPushes(20);
    expect(pushes.map((p) => p.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(proxy.stats.delayed).toBeGreaterThan(0);
  });

  it('cutAll drops every connection abruptly and keeps serving new ones', async () => {
    const { s, proxy } = await setup();
    const alice = await connect(s, proxy, 'alice');
    const bob = await connect(s, proxy, 'bob');
    proxy.cutAll();
    const [a, b] = await Promise.all([alice.closed, bob.closed]);
    expect(a.code).toBe(1006); // no close frame
    expect(b.code).toBe(1006);
    expect(proxy.stats.cutByCall).toBe(2);
    const again = await connect(s, proxy, 'alice');
    expect(await again.request({ t: 'convs' })).toMatchObject({ t: 'convs' });
  });

  it('makes the same duplicate and delay decisions for the same seed, and different ones for another seed', async () => {
    // Pipelined pings are answered in order: a duplicated ping gets two pongs, so the pong
    // list is a fingerprint of the duplicate decisions (delays must not change it).
    const run = async (seed: number): Promise<string> => {
      const { s, proxy } = await setup(seed);
      const client = await connect(s, proxy, 'alice');
      const frames = recordFrames(client);
      proxy.setFaults({ duplicateToServer: 0.3, toServerDelayMs: { min: 0, max: 3 }, toClientDelayMs: { min: 0, max: 3 } });
      for (let i = 1; i <= 100; i++) client.socket.send(JSON.stringify({ t: 'ping', id: 100 + i }));
      // A duplicate of the last ping is answered before this request's pong.
      await until(() => frames.filter((f) => (f as { id?: number }).id === 200).length > 0, 'the last pong');
      await client.request({ t: 'ping' });
      await proxy.close();
      return frames
        .filter((f) => f.t === 'pong' && ((f as { id?: number }).id ?? 0) >= 100)
        .map((f) => (f as { id?: number }).id)
        .join(',');
    };
    const first = await run(42);
    expect(await run(42)).toBe(first);
    expect(first.split(',').length).toBeGreaterThan(100); // some were duplicated
    expect(await run(43)).not.toBe(first);
  });

  it('cuts at the same frame for the same seed', async () => {
    // One ping at a time: frames alternate ping, pong, so the cut lands at the same place each run.
    const run = async (seed: number): Promise<number> => {
      const { s, proxy } = await setup(seed);
      const client = await connect(s, proxy, 'alice');
      const frames = recordFrames(client);
      proxy.setFaults({ cutPerFrame: 0.03 });
      let closed = false;
      void client.closed.then(() => (closed = true));
      for (let i = 1; i <= 200 && !closed; i++) {
        client.socket.send(JSON.stringify({ t: 'ping', id: 100 + i }));
        await until(() => closed || frames.length === i, `pong ${i}`);
      }
      expect(closed).toBe(true);
      expect(proxy.stats.cutByFault).toBe(1);
      await proxy.close();
      return frames.length;
    };
    const first = await run(5);
    expect(await run(5)).toBe(first);
    const others = [await run(6), await run(7)];
    expect(others.some((n) => n !== first)).toBe(true);
  });

  it('passes the query string and headers through to the target', async () => {
    const seen: { url?: string; auth?: string; protocol?: string } = {};
    const target = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    target.on('connection', (ws, req) => {
      seen.url = req.url;
      seen.auth = req.headers.authorization;
      seen.protocol = ws.protocol;
      ws.on('message', (data) => ws.send(data));
    });
    try {
      await new Promise((resolve) => target.once('listening', resolve));
      const port = (target.address() as AddressInfo).port;
      const proxy = await startFaultProxy({ target: `ws://127.0.0.1:${port}/v1/ws?tenant=t1`, seed: 1 });
      proxies.push(proxy);
      expect(proxy.url).toBe(`ws://127.0.0.1:${proxy.port}/v1/ws?tenant=t1`);
      const ws = new WebSocket(proxy.url, ['sequent.v1'], { headers: { authorization: 'Bearer abc' } });
      const echoed = await new Promise<string>((resolve, reject) => {
        ws.once('open', () => ws.send('hello'));
        ws.once('message', (data) => resolve(data.toString()));
        ws.once('error', reject);
      });
      ws.close();
      expect(echoed).toBe('hello');
      expect(seen).toEqual({ url: '/v1/ws?tenant=t1', auth: 'Bearer abc', protocol: 'sequent.v1' });
    } finally {
      await new Promise((resolve) => target.close(resolve));
    }
  });
});

describe('fault proxy: faults aimed at one connection', () => {
  it('duplicates and reorders server frames, marked as its own doing', async () => {
    const { s, proxy } = await setup();
    const alice = await connect(s, proxy, 'alice');
    const bob = await connect(s, proxy, 'bob');
    const frames = recordFrames(bob);
    expect(await alice.request({ t: 'create', conv: 'g:mark', members: ['bob'] })).toMatchObject({ t: 'ok' });
    await until(() => frames.length >= 1, 'the create push');
    const bobConn = proxy.open()[1]!;
    expect(proxy.inject(bobConn, { kind: 'dup-to-client' })).toBe(true);
    await alice.request({ t: 'send', conv: 'g:mark', cmid: 'c1', dseq: 1, body: 1 });
    await until(() => frames.length >= 3, 'the pushed copy');
    expect(frames.slice(1, 3).map((f) => [f['seq'], f['_chaos']])).toEqual([[2, undefined], [2, 'dup']]);
    expect(proxy.inject(bobConn, { kind: 'reorder-to-client' })).toBe(true);
    await alice.request({ t: 'send', conv: 'g:mark', cmid: 'c2', dseq: 2, body: 2 });
    await alice.request({ t: 'send', conv: 'g:mark', cmid: 'c3', dseq: 3, body: 3 });
    await until(() => frames.length >= 5, 'two more pushes');
    expect(frames.slice(3, 5).map((f) => [f['seq'], f['_chaos']])).toEqual([[4, undefined], [3, 'reorder']]);
  });

  it('forgets a connection once both sides closed (a long run reconnects thousands of times)', async () => {
    const { s, proxy } = await setup();
    const alice = await connect(s, proxy, 'alice');
    expect(proxy.open()).toHaveLength(1);
    alice.close();
    await until(() => proxy.open().length === 0, 'the link to be forgotten');
    expect(proxy.inject(1, { kind: 'cut' })).toBe(false);
  });

  it('stalls a connection: frames vanish without a close, then flow again', async () => {
    const { s, proxy } = await setup();
    const alice = await connect(s, proxy, 'alice');
    const frames = recordFrames(alice);
    expect(proxy.inject(proxy.open()[0]!, { kind: 'stall', ms: 300 })).toBe(true);
    alice.sendRaw(JSON.stringify({ t: 'create', id: 50, conv: 'g:stall', members: [] }));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(frames).toEqual([]);
    expect(proxy.stats.dropped).toBe(1);
    // Still open: a resend on the same connection gets through.
    expect(await alice.request({ t: 'create', conv: 'g:stall', members: [] })).toMatchObject({ t: 'ok', seq: 1 });
  });

  it('loses a reply: the request reaches the server, its answer vanishes, the connection drops', async () => {
    const { s, proxy } = await setup();
    const alice = await connect(s, proxy, 'alice');
    const frames = recordFrames(alice);
    proxy.inject(proxy.open()[0]!, { kind: 'lost-reply', match: (f) => f['t'] === 'create', cutAfterMs: 100 });
    alice.sendRaw(JSON.stringify({ t: 'create', id: 60, conv: 'g:lost', members: [] }));
    await alice.closed;
    expect(frames).toEqual([]);
    const again = await connect(s, proxy, 'alice', 'd2');
    // The change happened: creating it again is a conflict.
    expect(await again.request({ t: 'create', conv: 'g:lost', members: [] })).toMatchObject({ t: 'error', code: 'conflict' });
  });
});
