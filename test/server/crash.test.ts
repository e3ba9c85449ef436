/**
 * The server process is killed with SIGKILL while clients send, and restarted
 * on the same data directory; clients resend what was not acked. Every acked
 * message must be there exactly once, at its acked seq. SIGTERM drains instead.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TokenAuthority } from '../../packages/server/src/server/index.js';
import type { MsgFrame } from '../../packages/client/src/protocol/index.js';
import { spawnServer, TEST_SECRET, type ServerProcess } from '../support/cli-server.js';
import { WireClient, type Reply } from '../support/wire.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sequent-crash-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const tokens = new TokenAuthority(TEST_SECRET);

async function connect(server: ServerProcess, user: string, device: string): Promise<WireClient> {
  const client = await WireClient.open(server.url);
  const welcome = await client.hello(await tokens.mint(user, device));
  if (welcome.t !== 'welcome') throw new Error(JSON.stringify(welcome));
  return client;
}

interface Outgoing {
  frame: { t: 'send'; conv: string; cmid: string; dseq: number; body: unknown };
  ack?: Reply;
}

/** A device that sends in dseq order and, after each reconnect, resends everything unacked in order. */
class Sender {
  readonly outbox: Outgoing[] = [];
  private client: WireClient | undefined;

  constructor(
    readonly user: string,
    readonly device: string,
    readonly conv: string,
  ) {}

  async attach(server: ServerProcess): Promise<void> {
    this.client = await connect(server, this.user, this.device);
    for (const item of this.outbox.filter((o) => !o.ack)) void this.transmit(item);
  }

  send(n: number): void {
    const dseq = this.outbox.length + 1;
    const item: Outgoing = { frame: { t: 'send', conv: this.conv, cmid: `${this.user}.${this.device}.${dseq}`, dseq, body: { n } } };
    this.outbox.push(item);
    void this.transmit(item);
  }

  private async transmit(item: Outgoing): Promise<void> {
    const client = this.client;
    if (!client) return;
    try {
      const reply = await client.request(item.frame, 5_000);
      if (reply.t === 'ack') item.ack = reply;
    } catch {
      // The connection died with the server; the next attach resends.
    }
  }
}

describe('kill -9 while clients send', () => {
  it('keeps every acked message exactly once at its acked seq across three crashes', async () => {
    const dataDir = tempDir();
    let server = await spawnServer(dataDir);
    const admin = await connect(server, 'u0', 'admin');
    const members = ['u0', 'u1', 'u2', 'u3'];
    expect(await admin.request({ t: 'create', conv: 'g:crash', members })).toMatchObject({ t: 'ok', seq: 1 });
    admin.close();

    const senders = members.flatMap((user) => ['a', 'b'].map((device) => new Sender(user, device, 'g:crash')));
    for (const sender of senders) await sender.attach(server);

    let n = 0;
    for (let crash = 0; crash < 3; crash++) {
      const until = Date.now() + 300 + crash * 100;
      while (Date.now() < until) {
        for (const sender of senders) sender.send(n++);
        await new Promise((r) => setTimeout(r, 5));
      }
      server.child.kill('SIGKILL');
      const { signal } = await server.exited;
      expect(signal).toBe('SIGKILL');
      server = await spawnServer(dataDir);
      for (const sender of senders) await sender.attach(server);
    }

    // Everything resent after the last restart gets acked.
    const deadline = Date.now() + 20_000;
    while (senders.some((s) => s.outbox.some((o) => !o.ack)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const unacked = senders.flatMap((s) => s.outbox.filter((o) => !o.ack));
    expect(unacked).toEqual([]);

    const reader = await connect(server, 'u1', 'reader');
    const { msgs, last } = await reader.syncAll('g:crash');
    expect(msgs.map((m) => m.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    const byCmid = new Map<string, MsgFrame[]>();
    for (const m of msgs) if (m.cmid) byCmid.set(m.cmid, [...(byCmid.get(m.cmid) ?? []), m]);
    for (const sender of senders) {
      let previousSeq = 0;
      for (const { frame, ack } of sender.outbox) {
        const stored = byCmid.get(frame.cmid) ?? [];
        expect(stored, frame.cmid).toHaveLength(1);
        expect(stored[0]).toMatchObject({ seq: ack!['seq'], mid: ack!['mid'], ts: ack!['ts'], dseq: frame.dseq, body: frame.body });
        expect(stored[0]!.seq).toBeGreaterThan(previousSeq);
        previousSeq = stored[0]!.seq;
      }
    }
    expect(msgs.length).toBe(1 + senders.reduce((sum, s) => sum + s.outbox.length, 0));
    server.child.kill('SIGKILL');
    await server.exited;
  }, 90_000);
});

describe('SIGTERM', () => {
  it('drains: acks what is in flight, closes with going away, exits 0', async () => {
    const dataDir = tempDir();
    const server = await spawnServer(dataDir);
    const alice = await connect(server, 'alice', 'phone');
    await alice.request({ t: 'create', conv: 'g:drain', members: [] });
    const replies = Array.from({ length: 200 }, (_, i) => alice.request({ t: 'send', conv: 'g:drain', cmid: `c${i}`, dseq: i + 1, body: i }));
    await new Promise((r) => setTimeout(r, 5));
    server.child.kill('SIGTERM');
    const settled = await Promise.allSettled(replies);
    const { code } = await alice.closed;
    expect(code).toBe(1001);
    expect((await server.exited).code).toBe(0);

    // Whatever was acked is stored; whatever was not got an answer saying to retry, or no answer at all.
    const acked = settled.flatMap((s) => (s.status === 'fulfilled' && s.value.t === 'ack' ? [s.value] : []));
    expect(acked.length).toBeGreaterThan(0);
    for (const s of settled) {
      if (s.status === 'fulfilled' && s.value.t === 'error') expect(s.value['code']).toBe('unavailable');
    }
    const again = await spawnServer(dataDir);
    const reader = await connect(again, 'alice', 'laptop');
    const { msgs } = await reader.syncAll('g:drain');
    for (const ack of acked) expect(msgs[(ack['seq'] as number) - 1]).toMatchObject({ cmid: ack['cmid'], mid: ack['mid'] });
    again.child.kill('SIGTERM');
    expect((await again.exited).code).toBe(0);
  }, 30_000);
});
