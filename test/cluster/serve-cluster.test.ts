/**
 * Cluster mode end to end, in one process: three server nodes on one fresh
 * PostgreSQL database and the machine's NATS, clients on different nodes. A
 * send goes to whichever node the client is on and is decided by the holder of
 * its conversation's slot; its ack is the owner's, its pushes reach members on
 * every node in seq order, and any node answers sync from the store. Then a
 * node leaves and its conversations go on on the others.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmConvId } from '../../packages/client/src/protocol/index.js';
import { ownerOf, slotOf } from '../../packages/server/src/cluster/slots.js';
import { startServer, type RunningServer } from '../../packages/server/src/server/index.js';
import { NATS_URL, POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { WireClient, type Reply } from '../support/wire.js';
import { createTestDatabase, type TestDatabase, until } from './databases.js';

const available = (await serviceAvailable('postgres', POSTGRES_URL)) && (await serviceAvailable('nats', NATS_URL));
const SLOTS = 16;
const LEASE_MS = 1000;
const SECRET = 'cluster-test-secret-0123456789abcdef';

interface Node {
  name: string;
  server: RunningServer;
  dataDir: string;
}

interface Status {
  node: string;
  live: string[];
  slots: number;
  held: number[];
  holders: Record<string, number>;
  conv?: { conv: string; slot: number; holder: string | null; epoch: number };
}

let db: TestDatabase | undefined;
const nodes: Node[] = [];
const clients: WireClient[] = [];

async function startNode(name: string): Promise<Node> {
  const dataDir = mkdtempSync(join(tmpdir(), `sequent-cluster-${name}-`));
  const server = await startServer({
    port: 0,
    dataDir,
    secret: SECRET,
    postgresUrl: db!.url,
    cluster: { natsUrl: NATS_URL, node: name, leaseMs: LEASE_MS, slots: SLOTS, prefix: `sequent.test.${db!.name}` },
  });
  const node = { name, server, dataDir };
  nodes.push(node);
  return node;
}

async function status(node: Node): Promise<Status> {
  const response = await fetch(`${node.server.httpUrl}/cluster`);
  return (await response.json()) as Status;
}

/** Every slot held by exactly one of `group`, each by the node rendezvous hashing picks (hand-offs done). */
async function settled(group: Node[]): Promise<boolean> {
  const all = await Promise.all(group.map(status));
  if (!all.every((s) => s.live.length === group.length)) return false;
  const names = group.map((n) => n.name);
  return all.every((s) => s.held.length > 0 && s.held.every((slot) => ownerOf(slot, names) === s.node)) && all.flatMap((s) => s.held).length === SLOTS;
}

async function connect(node: Node, user: string, device = 'd1'): Promise<WireClient> {
  const client = await WireClient.open(node.server.url);
  clients.push(client);
  const welcome = await client.hello(await node.server.mintToken(user, device));
  if (welcome.t !== 'welcome') throw new Error(`hello failed: ${JSON.stringify(welcome)}`);
  return client;
}

/** Sends until acked: `unavailable` (a slot moving) is answered by resending the same cmid and dseq, as the SDK does. */
async function sendAcked(client: WireClient, conv: string, cmid: string, dseq: number, body: unknown): Promise<Reply> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const reply = await client.request({ t: 'send', conv, cmid, dseq, body });
    if (reply.t === 'ack') return reply;
    if (reply.t !== 'error' || reply['code'] !== 'unavailable') throw new Error(`send refused: ${JSON.stringify(reply)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${cmid} never acked`);
}

async function holderOf(conv: string): Promise<string> {
  const slot = slotOf(conv, SLOTS);
  for (const node of nodes) if ((await status(node)).held.includes(slot)) return node.name;
  throw new Error(`nobody holds slot ${slot}`);
}

beforeAll(async () => {
  if (!available) return;
  db = await createTestDatabase();
  for (const name of ['n1', 'n2', 'n3']) await startNode(name);
  await until('three nodes share every slot', () => settled(nodes), 20_000, 100);
}, 60_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(nodes.map((node) => node.server.close()));
  for (const node of nodes) rmSync(node.dataDir, { recursive: true, force: true });
  await db?.drop();
}, 60_000);

describe.skipIf(!available)('cluster mode: three nodes on one PostgreSQL and NATS', () => {
  it('serves /healthz and reports its slots at /cluster on every node', async () => {
    for (const node of nodes) {
      expect((await fetch(`${node.server.httpUrl}/healthz`)).status).toBe(200);
      const s = await status(node);
      expect(s.node).toBe(node.name);
      expect(s.slots).toBe(SLOTS);
      expect(s.live).toEqual(['n1', 'n2', 'n3']);
      // Every node reads the same lease rows: who holds how many slots, and where one conversation is decided.
      expect(Object.values(s.holders).reduce((a, b) => a + b, 0)).toBe(SLOTS);
      expect(s.holders[node.name]).toBe(s.held.length);
    }
    const conv = 'g:where-is-it';
    const answers = await Promise.all(nodes.map(async (node) => (await (await fetch(`${node.server.httpUrl}/cluster?conv=${encodeURIComponent(conv)}`)).json()) as Status));
    const slot = slotOf(conv, SLOTS);
    for (const answer of answers) expect(answer.conv).toMatchObject({ conv, slot, holder: ownerOf(slot, ['n1', 'n2', 'n3']) });
    expect(answers[0]!.conv!.epoch).toBeGreaterThan(0);
  });

  it('a DM between users on two nodes, owned by a third: acks in dseq order from the owner, pushes in seq order, sync from the owner', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    // Two users whose DM the third node owns: every send is forwarded, every push crosses the bus.
    let pair = 0;
    while ((await holderOf(dmConvId(`alice${pair}`, `bob${pair}`))) !== 'n3') pair++;
    const alice = await connect(n1, `alice${pair}`);
    const bob = await connect(n2, `bob${pair}`);
    const conv = dmConvId(`alice${pair}`, `bob${pair}`);
    const acks: Reply[] = [];
    for (let i = 1; i <= 30; i++) acks.push(await sendAcked(alice, conv, `a-${i}`, i, { text: `hi ${i}` }));
    expect(acks.map((a) => a['seq'])).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // A resend of an acked cmid gets the same ack, whichever node the client is on now.
    const again = await connect(n3, `alice${pair}`, 'd1');
    const resent = await sendAcked(again, conv, 'a-7', 7, { text: 'hi 7' });
    expect(resent['seq']).toBe(7);
    expect(resent['mid']).toBe(acks[6]!['mid']);

    const pushes = await bob.waitForPushes(30);
    expect(pushes.map((p) => p.seq)).toEqual(acks.map((a) => a['seq']));
    expect(pushes.map((p) => (p.body as { text: string }).text)).toEqual(Array.from({ length: 30 }, (_, i) => `hi ${i + 1}`));

    const bobOther = await connect(n3, `bob${pair}`, 'd2');
    const { msgs, last } = await bobOther.syncAll(conv);
    expect(last).toBe(30);
    expect(msgs.map((m) => m.mid)).toEqual(acks.map((a) => a['mid']));
  });

  it('a group created on one node: every member, on every node, sees the same order of everyone’s sends', async () => {
    const [n1, n2, n3] = nodes as [Node, Node, Node];
    const conv = 'g:cluster-room';
    const u1 = await connect(n1, 'u1');
    const u2 = await connect(n2, 'u2');
    const u3 = await connect(n3, 'u3');
    const created = await u2.request({ t: 'create', conv, members: ['u1', 'u3'] });
    expect(created.t).toBe('ok');
    const senders = [u1, u2, u3];
    await Promise.all(
      senders.map(async (client, index) => {
        for (let i = 1; i <= 15; i++) await sendAcked(client, conv, `u${index + 1}-${i}`, i, { n: i });
      }),
    );
    // 1 create + 45 sends; each member gets pushes of the others' sends (and the create, except its author).
    const logs = await Promise.all(senders.map((client) => client.syncAll(conv)));
    expect(logs[0]!.last).toBe(46);
    for (const log of logs) expect(log.msgs.map((m) => m.mid)).toEqual(logs[0]!.msgs.map((m) => m.mid));
    const order = logs[0]!.msgs.map((m) => m.seq);
    expect(order).toEqual(Array.from({ length: 46 }, (_, i) => i + 1));
    for (const [index, client] of senders.entries()) {
      const expected = logs[0]!.msgs.filter((m) => !(m.from === `u${index + 1}` && m.kind === 'msg') && !(index === 1 && m.kind === 'system'));
      const pushes = await client.waitForPushes(expected.length);
      const groupPushes = pushes.filter((p) => p.conv === conv);
      expect(groupPushes.map((p) => p.seq)).toEqual(expected.map((m) => m.seq));
    }
    // A member added on one node can read from its add on another; a stranger may not.
    const added = await u3.request({ t: 'members', conv, add: ['u4'] });
    expect(added.t).toBe('ok');
    const u4 = await connect(n1, 'u4');
    const readable = await u4.syncAll(conv);
    expect(readable.msgs.map((m) => m.seq)).toEqual([added['seq']]);
    const stranger = await connect(n2, 'mallory');
    expect((await stranger.request({ t: 'sync', conv, after: 0 }))['code']).toBe('forbidden');
    expect((await stranger.request({ t: 'send', conv, cmid: 'm-1', dseq: 1, body: 'x' }))['code']).toBe('forbidden');
  });

  it('read positions move on the owner and reach the member’s devices on other nodes', async () => {
    const [n1, n2] = nodes as [Node, Node];
    const conv = dmConvId('rita', 'sam');
    const rita = await connect(n1, 'rita');
    const sam = await connect(n2, 'sam');
    const samOther = await connect(n1, 'sam', 'd2');
    for (let i = 1; i <= 3; i++) await sendAcked(rita, conv, `r-${i}`, i, `m${i}`);
    await sam.waitForPushes(3);
    const ok = await sam.request({ t: 'read', conv, seq: 2 });
    expect(ok).toMatchObject({ t: 'ok', seq: 2 });
    await until('the read push reaches the other device and the sender', () =>
      samOther.unsolicited.some((f) => f.t === 'read' && f['seq'] === 2) && rita.unsolicited.some((f) => f.t === 'read' && f['user'] === 'sam' && f['seq'] === 2),
    );
    const info = await rita.request({ t: 'info', conv });
    expect(info).toMatchObject({ t: 'info', last: 3, read: { sam: 2 } });
  });

  it('a node that leaves hands its slots over: its conversations go on at once on the others, in order', async () => {
    const conv = dmConvId('kim', 'lee');
    const owner = await holderOf(conv);
    const leaving = nodes.find((n) => n.name === owner)!;
    const staying = nodes.filter((n) => n !== leaving);
    const kim = await connect(staying[0]!, 'kim');
    const lee = await connect(staying[1]!, 'lee');
    for (let i = 1; i <= 5; i++) await sendAcked(kim, conv, `k-${i}`, i, i);
    const stoppedAt = performance.now();
    await leaving.server.close();
    nodes.splice(nodes.indexOf(leaving), 1);
    for (let i = 6; i <= 10; i++) await sendAcked(kim, conv, `k-${i}`, i, i);
    // A graceful leave releases the leases: far sooner than the lease would expire.
    expect(performance.now() - stoppedAt).toBeLessThan(LEASE_MS * 5);
    const pushes = await lee.waitForPushes(10);
    expect(pushes.filter((p) => p.conv === conv).map((p) => p.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    await until('the two left share every slot', () => settled(nodes), 20_000, 100);
    expect(await holderOf(conv)).not.toBe(owner);
  });
});
