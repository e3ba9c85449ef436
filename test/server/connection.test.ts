/** The connection rules: hello, close codes, limits, heartbeats, slow consumers, health and metrics. */
import { afterEach, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { startTestServer, WireClient, type TestServer } from '../support/wire.js';
import type { ServerOptions } from '../../packages/server/src/server/options.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

async function serve(options: Partial<ServerOptions> = {}): Promise<TestServer> {
  t = await startTestServer(options);
  return t;
}

describe('hello and authentication', () => {
  it('closes with 4401 when another frame comes before hello', async () => {
    const s = await serve();
    const client = await WireClient.open(s.server.url);
    client.sendRaw(JSON.stringify({ t: 'convs', id: 1 }));
    expect((await client.closed).code).toBe(4401);
  });

  it('answers a bad token with unauthorized, then closes with 4401', async () => {
    const s = await serve();
    const client = await WireClient.open(s.server.url);
    const reply = await client.hello('not-a-jwt');
    expect(reply).toMatchObject({ t: 'error', code: 'unauthorized' });
    expect((await client.closed).code).toBe(4401);
  });

  it('refuses a token signed with another secret and an expired token', async () => {
    const s = await serve();
    const other = await startTestServer({ secret: 'another-secret-0123456789-0123456789' });
    try {
      const foreign = await other.server.mintToken('alice', 'd1');
      const client = await WireClient.open(s.server.url);
      expect(await client.hello(foreign)).toMatchObject({ t: 'error', code: 'unauthorized' });
    } finally {
      await other.stop();
    }
    const expired = await s.server.mintToken('alice', 'd1', -10);
    const client = await WireClient.open(s.server.url);
    expect(await client.hello(expired)).toMatchObject({ t: 'error', code: 'unauthorized', message: 'token expired' });
  });

  it('closes with 4408 when no hello comes in time', async () => {
    const s = await serve({ helloTimeoutMs: 100 });
    const client = await WireClient.open(s.server.url);
    expect((await client.closed).code).toBe(4408);
  });

  it('serves requests pipelined right behind the hello', async () => {
    const s = await serve();
    const client = await WireClient.open(s.server.url);
    const token = await s.server.mintToken('alice', 'd1');
    const [welcome, convs] = await Promise.all([client.hello(token), client.request({ t: 'convs' })]);
    expect(welcome.t).toBe('welcome');
    expect(convs).toMatchObject({ t: 'convs', convs: [] });
  });

  it('refuses another protocol version', async () => {
    const s = await serve();
    const client = await WireClient.open(s.server.url);
    const reply = await client.request({ t: 'hello', proto: 2, token: await s.server.mintToken('a', 'b') });
    expect(reply).toMatchObject({ t: 'error', code: 'bad_request' });
    expect((await client.closed).code).toBe(4426);
  });
});

describe('limits', () => {
  it('closes with 4400 a client that keeps sending bad frames', async () => {
    const s = await serve({ maxBadFrames: 5 });
    const client = await s.connect('alice');
    for (let i = 0; i < 5; i++) client.sendRaw('nope');
    expect((await client.closed).code).toBe(4400);
  });

  it('answers rate_limited past the per-connection rate, and serves again after', async () => {
    const s = await serve({ ratePerSecond: 20, rateBurst: 5 });
    const client = await s.connect('alice');
    const replies = await Promise.all(Array.from({ length: 12 }, () => client.request({ t: 'convs' })));
    const limited = replies.filter((r) => r.t === 'error' && r['code'] === 'rate_limited');
    expect(limited.length).toBeGreaterThanOrEqual(5);
    await new Promise((r) => setTimeout(r, 300));
    expect((await client.request({ t: 'convs' })).t).toBe('convs');
  });

  it('closes a client that stops reading once its send buffer passes the limit (4429), and keeps serving others', async () => {
    const s = await serve({ maxBuffered: 64 * 1024, metricsPort: 0 });
    const writer = await s.connect('alice');
    const reader = await s.connect('bob');
    await writer.request({ t: 'create', conv: 'g:big', members: ['bob'] });
    (reader.socket as unknown as { _socket: Socket })._socket.pause();
    const body = 'x'.repeat(60_000);
    const closed = reader.closed;
    const slowClosed = async () => /sequent_slow_consumer_closes_total 1\b/.test(await (await fetch(s.server.metricsUrl!)).text());
    let dseq = 0;
    while (!(await slowClosed()) && dseq < 2000) {
      await Promise.all(Array.from({ length: 20 }, () => writer.request({ t: 'send', conv: 'g:big', cmid: `c${++dseq}`, dseq, body })));
    }
    // Reading again, the client gets what was buffered and then the close frame with the code.
    (reader.socket as unknown as { _socket: Socket })._socket.resume();
    expect((await closed).code).toBe(4429);
    expect((await writer.request({ t: 'convs' })).t).toBe('convs');
  });

  it('drops a connection that stops answering pings', async () => {
    const s = await serve({ pingIntervalMs: 100 });
    const silent = await WireClient.open(s.server.url, { autoPong: false });
    expect((await silent.hello(await s.server.mintToken('alice', 'd1'))).t).toBe('welcome');
    const started = Date.now();
    const { code } = await silent.closed;
    expect(code).toBe(1006); // terminated, no close handshake
    expect(Date.now() - started).toBeLessThan(2000);
    // a client that answers pings stays
    const live = await s.connect('bob');
    await new Promise((r) => setTimeout(r, 400));
    expect((await live.request({ t: 'convs' })).t).toBe('convs');
  });
});

describe('http', () => {
  it('serves /healthz and 404 on the public port, /metrics only on the metrics port', async () => {
    const s = await serve({ metricsPort: 0 });
    const health = await fetch(`${s.server.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${s.server.httpUrl}/metrics`)).status).toBe(404);
    expect(s.server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(new URL(s.server.metricsUrl!).port).not.toBe(String(s.server.port));
    expect((await fetch(new URL('/healthz', s.server.metricsUrl!))).status).toBe(200);
    const alice = await s.connect('alice');
    await alice.request({ t: 'create', conv: 'g:x', members: [] });
    const metrics = await (await fetch(s.server.metricsUrl!)).text();
    expect(metrics).toMatch(/sequent_entries_committed_total 1\b/);
    expect(metrics).toMatch(/sequent_frames_in_total\{type="create"\} 1\b/);
    // counters kept as plain numbers report the increase since the last scrape, never twice
    const bob = await s.connect('bob');
    await alice.request({ t: 'members', conv: 'g:x', add: ['bob'] });
    await alice.request({ t: 'send', conv: 'g:x', cmid: 'c1', dseq: 1, body: 'hi' });
    await bob.waitForPushes(2);
    const again = await (await fetch(s.server.metricsUrl!)).text();
    expect(again).toMatch(/sequent_frames_in_total\{type="create"\} 1\b/);
    expect(again).toMatch(/sequent_frames_in_total\{type="send"\} 1\b/);
    expect(again).toMatch(/sequent_pushes_total 2\b/);
    expect((await fetch(`${s.server.httpUrl}/nope`)).status).toBe(404);
  });
});
