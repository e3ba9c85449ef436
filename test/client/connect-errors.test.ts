/** A wrong URL or port: the app hears why (an `error` event with the transport's reason) and ready() can give up. */
import net from 'node:net';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { SequentClient } from '../../packages/client/src/client/client.js';
import type { SequentClientError } from '../../packages/client/src/client/errors.js';
import { webSocketTransport } from '../../packages/client/src/client/transport.js';
import { startTestServer, type TestServer } from '../support/wire.js';
import { eventually } from './helpers.js';

let server: TestServer;
const clients: SequentClient[] = [];
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.stop()));
});

async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

function client(url: string): { client: SequentClient; errors: SequentClientError[] } {
  const errors: SequentClientError[] = [];
  const c = new SequentClient({ url, token: 'unused', transport: webSocketTransport(WebSocket), backoff: { baseMs: 20, maxMs: 50 } });
  c.on('error', (error) => errors.push(error));
  clients.push(c);
  return { client: c, errors };
}

it('a port nobody listens on: an error event with ECONNREFUSED, and ready({ timeoutMs }) rejects naming it', async () => {
  const url = `ws://127.0.0.1:${await closedPort()}/v1/ws`;
  const { client: c, errors } = client(url);
  await c.start();
  await expect(c.ready({ timeoutMs: 300 })).rejects.toMatchObject({ code: 'timeout', message: expect.stringMatching(/not ready within 300 ms: could not connect to .*ECONNREFUSED/) });
  expect(errors[0]).toMatchObject({ code: 'connect_failed', message: expect.stringContaining(url) });
  expect(errors[0]?.message).toMatch(/ECONNREFUSED/);
});

it('a wrong path on a real server: the error event names the HTTP status', async () => {
  const { client: c, errors } = client(server.server.url.replace('/v1/ws', '/ws'));
  await c.start();
  await eventually(() => expect(errors.length).toBeGreaterThan(0));
  expect(errors[0]).toMatchObject({ code: 'connect_failed', message: expect.stringMatching(/404/) });
  expect(c.state).not.toBe('ready');
});

it('ready() still takes a plain number of ms', async () => {
  const { client: c } = client(`ws://127.0.0.1:${await closedPort()}/v1/ws`);
  await c.start();
  await expect(c.ready(100)).rejects.toMatchObject({ code: 'timeout' });
});
