/**
 * A cluster node whose NATS connection is cut: it reconnects, resubscribes, and
 * then closes its clients' connections with 1001 so they reconnect and catch up
 * on what was pushed while it was away (no push it missed can be known). Sends
 * forwarded through it work again after the reconnect.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dmConvId } from '../../packages/client/src/protocol/index.js';
import { ownerOf, slotOf } from '../../packages/server/src/cluster/slots.js';
import { startServer, type RunningServer } from '../../packages/server/src/server/index.js';
import { NATS_URL, POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { WireClient, type Reply } from '../support/wire.js';
import { createTestDatabase, type TestDatabase, until } from './databases.js';
import { endpointOf, startLinkProxy, type LinkProxy } from '../../packages/server/src/chaos/link-proxy.js';

const available = (await serviceAvailable('postgres', POSTGRES_URL)) && (await serviceAvailable('nats', NATS_URL));
const SLOTS = 8;
let db: TestDatabase | undefined;
let proxy: LinkProxy | undefined;
const servers: RunningServer[] = [];
const dirs: string[] = [];
const clients: WireClient[] = [];

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(servers.map((s) => s.close()));
  await proxy?.close();
  await db?.drop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function node(name: string, natsUrl: string): Promise<RunningServer> {
  const dataDir = mkdtempSync(join(tmpdir(), `sequent-bus-${name}-`));
  dirs.push(dataDir);
  const server = await startServer({
    port: 0,
    dataDir,
    secret: 'cluster-bus-secret-0123456789abcdef',
    postgresUrl: db!.url,
    cluster: { natsUrl, node: name, leaseMs: 1000, slots: SLOTS, prefix: `sequent.test.${db!.name}` },
  });
  servers.push(server);
  return server;
}

async function connect(server: RunningServer, user: string): Promise<WireClient> {
  const client = await WireClient.open(server.url);
  clients.push(client);
  const welcome = await client.hello(await server.mintToken(user, 'd1'));
  if (welcome.t !== 'welcome') throw new Error(JSON.stringify(welcome));
  return client;
}

async function sendAcked(client: WireClient, conv: string, cmid: string, dseq: number): Promise<Reply> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const reply = await client.request({ t: 'send', conv, cmid, dseq, body: cmid });
    if (reply.t === 'ack') return reply;
    expect(reply['code'], JSON.stringify(reply)).toBe('unavailable');
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${cmid} never acked`);
}

describe.skipIf(!available)('a cluster node losing its NATS connection', () => {
  it('reconnects, closes its clients with 1001 to resync, and forwards again', async () => {
    db = await createTestDatabase();
    proxy = await startLinkProxy(endpointOf(NATS_URL, 4222));
    const direct = await node('direct', NATS_URL);
    const proxied = await node('proxied', `nats://127.0.0.1:${proxy.port}`);
    const holders = async (): Promise<Record<string, number>> => ((await (await fetch(`${direct.httpUrl}/cluster`)).json()) as { holders: Record<string, number> }).holders;
    await until('both nodes hold slots', async () => {
      const h = await holders();
      return (h['direct'] ?? 0) > 0 && (h['proxied'] ?? 0) > 0 && (h['direct'] ?? 0) + (h['proxied'] ?? 0) === SLOTS;
    }, 20_000, 100);
    // A DM the direct node decides, sent to from a client of the proxied node: forwarded over the cut connection.
    let pair = 0;
    while (ownerOf(slotOf(dmConvId(`x${pair}`, `y${pair}`), SLOTS), ['direct', 'proxied']) !== 'direct') pair++;
    const conv = dmConvId(`x${pair}`, `y${pair}`);
    const sender = await connect(proxied, `x${pair}`);
    const receiver = await connect(proxied, `y${pair}`);
    await sendAcked(sender, conv, 'before', 1);
    await receiver.waitForPushes(1);

    proxy.cut();
    const closed = await Promise.race([sender.closed, new Promise<'open'>((r) => setTimeout(() => r('open'), 10_000))]);
    expect(closed).toMatchObject({ code: 1001 });
    expect((await receiver.closed).code).toBe(1001);
    await until('the proxied node is healthy again', async () => (await fetch(`${proxied.httpUrl}/healthz`)).status === 200, 10_000, 50);

    const again = await connect(proxied, `x${pair}`);
    const ack = await sendAcked(again, conv, 'after', 2);
    expect(ack['seq']).toBe(2);
    const reader = await connect(proxied, `y${pair}`);
    expect((await reader.syncAll(conv)).msgs.map((m) => m.cmid)).toEqual(['before', 'after']);
  }, 60_000);
});
