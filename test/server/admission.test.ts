/**
 * Handshake admission: past maxPendingHellos connections whose hello is not
 * read yet, an upgrade is answered 503 with Retry-After at once (not queued,
 * not dropped); a slot frees when its hello is read or its socket closes, and
 * one address may hold only an eighth of the slots unless the per-address cap
 * is off (a proxy in front).
 */
import { request } from 'node:http';
import { afterEach, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Admission } from '../../packages/server/src/server/admission.js';
import { startTestServer, WireClient, type TestServer } from '../support/wire.js';

let test: TestServer | undefined;
afterEach(async () => {
  await test?.stop();
  test = undefined;
});

/** An upgrade request's answer: the status and Retry-After of a refusal, or 101. */
function upgrade(url: string): Promise<{ status: number; retryAfter: string | undefined; socket?: import('node:net').Socket }> {
  const { hostname, port, pathname } = new URL(url.replace(/^ws/, 'http'));
  return new Promise((resolve, reject) => {
    const req = request({
      hostname,
      port,
      path: pathname,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    });
    req.on('upgrade', (res, socket) => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], socket }));
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
    });
    req.on('error', reject);
    req.end();
  });
}

it('answers 503 Retry-After past the pending hellos, and admits again once a hello is read or a socket closes', async () => {
  // All test clients share 127.0.0.1: the per-address share is off, as behind a proxy.
  test = await startTestServer({ maxPendingHellos: 2, maxConnectionsPerAddress: 0 });
  const url = test.server.url;
  const first = await upgrade(url);
  const second = await WireClient.open(url);
  expect(first.status).toBe(101);
  const refused = await upgrade(url);
  expect(refused).toMatchObject({ status: 503, retryAfter: '1' });

  // The second's hello is read: its slot is free, and an upgrade is admitted again.
  const welcome = await second.hello(await test.server.mintToken('alice', 'd1'));
  expect(welcome.t).toBe('welcome');
  const third = await upgrade(url);
  expect(third.status).toBe(101);
  expect((await upgrade(url)).status).toBe(503);

  // A socket that never said hello frees its slot when it closes.
  first.socket!.destroy();
  await expect.poll(async () => (await upgrade(url)).status).toBe(101);
  for (const socket of [third.socket]) socket?.destroy();
  second.close();
});

it('does not count connections that said hello: many authenticated connections, then a new one is admitted', async () => {
  test = await startTestServer({ maxPendingHellos: 1 });
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await test.connect(`u${i}`));
  const next = await WireClient.open(test.server.url);
  expect((await next.hello(await test.server.mintToken('u9', 'd1'))).t).toBe('welcome');
  next.close();
});

it('gives one address an eighth of the slots, unless the per-address cap is off', () => {
  const limited = new Admission({ maxConnectionsPerAddress: 1000, maxConnectionsPerUser: 64, maxPendingHellos: 16 });
  const held = [limited.admitHandshake('10.0.0.1'), limited.admitHandshake('10.0.0.1')];
  expect(held.every((slot) => slot !== undefined)).toBe(true);
  expect(limited.admitHandshake('10.0.0.1')).toBeUndefined();
  expect(limited.admitHandshake('10.0.0.2')).toBeDefined();
  held[0]!.release();
  held[0]!.release(); // once only
  expect(limited.pendingHellos).toBe(2);
  expect(limited.admitHandshake('10.0.0.1')).toBeDefined();

  const proxied = new Admission({ maxConnectionsPerAddress: 0, maxConnectionsPerUser: 64, maxPendingHellos: 16 });
  const slots = Array.from({ length: 16 }, () => proxied.admitHandshake('10.0.0.1'));
  expect(slots.every((slot) => slot !== undefined)).toBe(true);
  expect(proxied.admitHandshake('10.0.0.9')).toBeUndefined();
  const off = new Admission({ maxConnectionsPerAddress: 0, maxConnectionsPerUser: 64, maxPendingHellos: 0 });
  expect(Array.from({ length: 100 }, () => off.admitHandshake('10.0.0.1')).every((slot) => slot !== undefined)).toBe(true);
});

it('a refused upgrade is a failed open to a ws client, with the status in the error', async () => {
  test = await startTestServer({ maxPendingHellos: 1 });
  const holder = await WireClient.open(test.server.url);
  const socket = new WebSocket(test.server.url);
  const error = await new Promise<Error>((resolve) => socket.once('error', resolve));
  expect(error.message).toMatch(/503/);
  holder.close();
});
