/**
 * `sequent-server serve --cluster` as operators run it: each node its own
 * process. Bad flags and unreachable services are one line naming the flag; a
 * node killed with SIGKILL loses its conversations to a live node once its
 * lease runs out (never sooner, never with a gap or a lower epoch), and a node
 * restarted under its name takes its slots back at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { dmConvId } from '../../packages/client/src/protocol/index.js';
import { ownerOf, slotOf } from '../../packages/server/src/cluster/slots.js';
import { TokenAuthority } from '../../packages/server/src/server/auth.js';
import { run } from '../cli/run.js';
import { spawnServer, TEST_SECRET, type ServerProcess } from '../support/cli-server.js';
import { NATS_URL, POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { WireClient, type Reply } from '../support/wire.js';
import { createTestDatabase, type TestDatabase, until } from './databases.js';

const available = (await serviceAvailable('postgres', POSTGRES_URL)) && (await serviceAvailable('nats', NATS_URL));
const root = mkdtempSync(join(tmpdir(), 'sequent-cluster-cli-'));
const SLOTS = 8;
const LEASE_MS = 1500;
const tokens = new TokenAuthority(TEST_SECRET);
let db: TestDatabase | undefined;
const processes: ServerProcess[] = [];
/** The running process of each node name. */
const byName = new Map<string, ServerProcess>();
const clients: WireClient[] = [];

afterAll(async () => {
  for (const client of clients) client.close();
  for (const p of processes) p.child.kill('SIGKILL');
  await Promise.all(processes.map((p) => p.exited));
  await db?.drop();
  rmSync(root, { recursive: true, force: true });
}, 30_000);

function oneLine(result: { code: number | null; stderr: string }, code: number, message: RegExp): void {
  expect(result.code, result.stderr).toBe(code);
  expect(result.stderr.split('\n')[0]).toMatch(message);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe('serve --cluster flags', () => {
  const data = ['--data', join(root, 'flags')];
  it('needs --postgres and --nats, and the cluster flags need --cluster', () => {
    oneLine(run(['serve', '--cluster', '--nats', NATS_URL, ...data]), 2, /flag --cluster needs --postgres/);
    oneLine(run(['serve', '--cluster', '--postgres', POSTGRES_URL, ...data]), 2, /flag --cluster needs --nats/);
    oneLine(run(['serve', '--nats', NATS_URL, ...data]), 2, /flag --nats is for a cluster node: add --cluster/);
    oneLine(run(['serve', '--lease-ms', '500', ...data]), 2, /flag --lease-ms is for a cluster node/);
    oneLine(run(['serve', '--cluster', '--postgres', POSTGRES_URL, '--nats', NATS_URL, '--lease-ms', '10', ...data]), 2, /flag --lease-ms must be at least 100/);
  });

  it('names a bad --node and a bad --nats URL', () => {
    oneLine(run(['serve', '--cluster', '--postgres', POSTGRES_URL, '--nats', NATS_URL, '--node', 'two words', ...data]), 2, /invalid flag --node: a node name is/);
    oneLine(run(['serve', '--cluster', '--postgres', POSTGRES_URL, '--nats', 'http://x', ...data]), 2, /invalid flag --nats: expected a nats:\/\/host:port URL/);
  });

  it.skipIf(!available)('an unreachable NATS or PostgreSQL is one line naming its flag', () => {
    oneLine(run(['serve', '--cluster', '--postgres', POSTGRES_URL, '--nats', 'nats://127.0.0.1:1', '--port', '0', ...data], { SEQUENT_SECRET: TEST_SECRET }), 1, /cannot reach the NATS server given by --nats \(nats:\/\/127\.0\.0\.1:1\)/);
    oneLine(run(['serve', '--cluster', '--postgres', 'postgres://postgres@127.0.0.1:1/x', '--nats', NATS_URL, '--port', '0', ...data], { SEQUENT_SECRET: TEST_SECRET }), 1, /cannot use the database given by --postgres/);
  });
});

async function startNode(name: string): Promise<ServerProcess> {
  const node = await spawnServer(join(root, name), ['--cluster', '--postgres', db!.url, '--nats', NATS_URL, '--node', name, '--lease-ms', String(LEASE_MS), '--slots', String(SLOTS), '--no-web']);
  processes.push(node);
  byName.set(name, node);
  return node;
}

async function held(node: ServerProcess): Promise<number[]> {
  try {
    const response = await fetch(`${node.httpUrl}/cluster`);
    return ((await response.json()) as { held: number[] }).held;
  } catch {
    return [];
  }
}

/** Sends until acked: `unavailable` (the owner dead, paused or moving) is answered by resending the same cmid and dseq, as the SDK does. */
async function sendUntilAcked(client: WireClient, conv: string, cmid: string, dseq: number): Promise<Reply> {
  for (;;) {
    const reply = await client.request({ t: 'send', conv, cmid, dseq, body: dseq }, 20_000);
    if (reply.t === 'ack') return reply;
    expect(reply['code'], JSON.stringify(reply)).toBe('unavailable');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The lease row of a conversation's slot, as a node reads it. */
async function leaseOf(node: ServerProcess, conv: string): Promise<{ holder: string | null; epoch: number }> {
  const response = await fetch(`${node.httpUrl}/cluster?conv=${encodeURIComponent(conv)}`);
  return ((await response.json()) as { conv: { holder: string | null; epoch: number } }).conv;
}

async function connect(node: ServerProcess, user: string): Promise<WireClient> {
  const client = await WireClient.open(node.url);
  clients.push(client);
  const welcome = await client.hello(await tokens.mint(user, 'd1'));
  if (welcome.t !== 'welcome') throw new Error(JSON.stringify(welcome));
  return client;
}

describe.skipIf(!available)('a cluster of node processes', () => {
  it('after kill -9 of an owner its conversation moves once the lease runs out, gapless and with a higher epoch; the restarted node takes it back at once', async () => {
    db = await createTestDatabase();
    const a = await startNode('node-a');
    let b = await startNode('node-b');
    // A DM that node-b wins, sent to from a client on node-a: every send is forwarded to b.
    let pair = 0;
    while (ownerOf(slotOf(dmConvId(`p${pair}`, `q${pair}`), SLOTS), ['node-a', 'node-b']) !== 'node-b') pair++;
    const conv = dmConvId(`p${pair}`, `q${pair}`);
    const slot = slotOf(conv, SLOTS);
    await until('node-b holds the slot', async () => (await held(b)).includes(slot), 20_000, 50);
    const sender = await connect(a, `p${pair}`);
    let dseq = 0;
    const send = (): Promise<Reply> => sendUntilAcked(sender, conv, `c-${++dseq}`, dseq);
    for (let i = 0; i < 5; i++) await send();

    b.child.kill('SIGKILL');
    await b.exited;
    const killedAt = performance.now();
    const ack = await send();
    const takeover = performance.now() - killedAt;
    expect(ack['seq']).toBe(6);
    // Nobody else may decide for the slot before the dead node's lease could have run out.
    expect(takeover).toBeGreaterThan(LEASE_MS * 0.5);
    expect(takeover).toBeLessThan(LEASE_MS * 6);
    expect(await held(a)).toContain(slot);
    // The new owner loaded the dead one's state from the store: a resend of an acked send gets its first ack.
    const resent = await sender.request({ t: 'send', conv, cmid: 'c-3', dseq: 3, body: 3 });
    expect(resent).toMatchObject({ t: 'ack', seq: 3 });

    b = await startNode('node-b');
    // The restart joins under the same name: it wins the slot again and takes it without waiting for a lease.
    await until('node-b holds the slot again', async () => (await held(b)).includes(slot), LEASE_MS * 4, 50);
    for (let i = 0; i < 5; i++) await send();

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ seq: string; epoch: string }>('SELECT seq, epoch FROM sequent.entries WHERE conv = $1 ORDER BY seq', [conv]);
      expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
      const epochs = rows.map((r) => Number(r.epoch));
      for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThanOrEqual(epochs[i - 1]!);
      // Three holders in turn: b, then a after the kill, then b again.
      expect(new Set(epochs).size).toBe(3);
      expect(epochs[0]).toBeGreaterThan(0);
    } finally {
      await client.end();
    }
  }, 90_000);

  it('an owner paused past its lease (SIGSTOP) is taken over, and after SIGCONT decides nothing from its old state', async () => {
    const a = byName.get('node-a')!;
    const b = byName.get('node-b')!;
    let pair = 0;
    while (ownerOf(slotOf(dmConvId(`s${pair}`, `t${pair}`), SLOTS), ['node-a', 'node-b']) !== 'node-b') pair++;
    const conv = dmConvId(`s${pair}`, `t${pair}`);
    const slot = slotOf(conv, SLOTS);
    await until('node-b holds the slot', async () => (await held(b)).includes(slot), 20_000, 50);
    const sender = await connect(a, `s${pair}`);
    const sendAcked = (dseq: number): Promise<Reply> => sendUntilAcked(sender, conv, `p-${dseq}`, dseq);
    for (let d = 1; d <= 3; d++) await sendAcked(d);
    b.child.kill('SIGSTOP');
    let taken: { holder: string | null; epoch: number };
    try {
      expect((await sendAcked(4))['seq']).toBe(4);
      taken = await leaseOf(a, conv);
      expect(taken.holder).toBe('node-a');
    } finally {
      b.child.kill('SIGCONT');
    }
    // Resumed, it finds its lease gone (its own list still names the slot until its next renewal), rejoins,
    // and, winning the slot by name, gets it back by hand-over at a newer epoch.
    await until('node-b holds the slot again', async () => {
      const lease = await leaseOf(a, conv);
      return lease.holder === 'node-b' && lease.epoch > taken.epoch;
    }, LEASE_MS * 8, 50);
    for (let d = 5; d <= 7; d++) expect((await sendAcked(d))['seq']).toBe(d);
    const client = new pg.Client({ connectionString: db!.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ seq: string; epoch: string; cmid: string }>('SELECT seq, epoch, cmid FROM sequent.entries WHERE conv = $1 ORDER BY seq', [conv]);
      expect(rows.map((r) => r.cmid)).toEqual(Array.from({ length: 7 }, (_, i) => `p-${i + 1}`));
      const epochs = rows.map((r) => Number(r.epoch));
      for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThanOrEqual(epochs[i - 1]!);
      expect(epochs[3]).toBeGreaterThan(epochs[2]!);
      expect(epochs[4]).toBeGreaterThan(epochs[3]!);
    } finally {
      await client.end();
    }
  }, 90_000);
});
