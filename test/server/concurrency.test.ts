/**
 * Many devices sending at once into shared groups and DMs, with resends and
 * swapped dseqs: every member reads the same gapless log, each message once,
 * in each device's order, and every ack names the entry at its seq.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmConvId, type MsgFrame } from '../../packages/client/src/protocol/index.js';
import { startTestServer, type Reply, type TestServer, type WireClient } from '../support/wire.js';

const USERS = 20;
const DEVICES = 2;
const MESSAGES_PER_DEVICE = 30;
const GROUPS = 4;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Device {
  user: string;
  device: string;
  client: WireClient;
  convs: string[];
  dseq: Map<string, number>;
}

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ holdMs: 1000, metricsPort: 0 });
});
afterAll(async () => {
  await t.stop();
});

describe('20 clients × 2 devices sending concurrently with resends', () => {
  it('converges to one identical, gapless, duplicate-free log per conversation', async () => {
    const random = rng(42);
    const users = Array.from({ length: USERS }, (_, i) => `u${String(i).padStart(2, '0')}`);
    const groups = Array.from({ length: GROUPS }, (_, g) => ({
      conv: `g:room${g}`,
      members: users.filter((_, i) => i % GROUPS === g || i % 3 === g % 3),
    }));
    const creator = await t.connect(groups[0]!.members[0]!, 'setup');
    for (const group of groups) {
      const owner = await t.connect(group.members[0]!, 'setup');
      expect(await owner.request({ t: 'create', conv: group.conv, members: group.members })).toMatchObject({ t: 'ok', seq: 1 });
    }
    creator.close();

    const devices: Device[] = [];
    for (const [i, user] of users.entries()) {
      const dms = [dmConvId(user, users[(i + 1) % USERS]!), dmConvId(user, users[(i + 7) % USERS]!)];
      const convs = [...groups.filter((g) => g.members.includes(user)).map((g) => g.conv), ...dms];
      for (let d = 0; d < DEVICES; d++) {
        devices.push({ user, device: `dev${d}`, client: await t.connect(user, `dev${d}`), convs, dseq: new Map() });
      }
    }

    const acks: { user: string; device: string; reply: Reply }[] = [];
    await Promise.all(
      devices.map(async (dev) => {
        let pending: Promise<void>[] = [];
        const submit = (frame: Record<string, unknown>, roll: number) => {
          const sends = [dev.client.request(frame)];
          if (roll < 0.2) sends.push(dev.client.request(frame)); // resend before the ack
          pending.push(
            Promise.all(sends).then(async (replies) => {
              if (roll > 0.9) replies.push(await dev.client.request(frame)); // resend after the ack
              for (const reply of replies) acks.push({ user: dev.user, device: dev.device, reply });
            }),
          );
        };
        const frameFor = (conv: string, n: number) => {
          const dseq = (dev.dseq.get(conv) ?? 0) + 1;
          dev.dseq.set(conv, dseq);
          return { t: 'send', conv, cmid: `${dev.user}-${dev.device}-${conv}-${dseq}`, dseq, body: { n, from: dev.device } };
        };
        for (let n = 0; n < MESSAGES_PER_DEVICE; n++) {
          const conv = dev.convs[Math.floor(random() * dev.convs.length)]!;
          const frame = frameFor(conv, n);
          if (random() < 0.15) {
            // The next dseq overtakes this one on the way: the server must hold it back.
            const overtaking = frameFor(conv, ++n);
            submit(overtaking, random());
          }
          submit(frame, random());
          // Sometimes wait, sometimes let several sends race (and arrive swapped across conversations).
          if (random() < 0.3) {
            await Promise.all(pending);
            pending = [];
          }
        }
        await Promise.all(pending);
      }),
    );

    for (const { reply } of acks) expect(reply, JSON.stringify(reply)).toMatchObject({ t: 'ack' });

    const convs = new Set([...groups.map((g) => g.conv), ...devices.flatMap((d) => d.convs)]);
    const byConv = new Map<string, MsgFrame[]>();
    for (const conv of convs) {
      const readers = devices.filter((d) => d.convs.includes(conv));
      const logs = await Promise.all(readers.map(async (d) => (await d.client.syncAll(conv)).msgs));
      const first = logs[0]!;
      for (const log of logs) expect(log).toEqual(first);
      expect(first.map((m) => m.seq)).toEqual(Array.from({ length: first.length }, (_, i) => i + 1));
      byConv.set(conv, first);
    }

    // Each message once; dseq order kept per device; ts never decreases; mids unique.
    const mids = new Set<string>();
    for (const [conv, log] of byConv) {
      const seen = new Set<string>();
      const lastDseq = new Map<string, number>();
      let lastTs = 0;
      for (const entry of log) {
        expect(mids.has(entry.mid)).toBe(false);
        mids.add(entry.mid);
        expect(entry.ts).toBeGreaterThanOrEqual(lastTs);
        lastTs = entry.ts;
        if (entry.kind !== 'msg') continue;
        expect(seen.has(entry.cmid!)).toBe(false);
        seen.add(entry.cmid!);
        const key = `${entry.from}/${entry.dev}`;
        expect(entry.dseq, `${conv} ${key}`).toBe((lastDseq.get(key) ?? 0) + 1);
        lastDseq.set(key, entry.dseq!);
      }
    }
    const sent = devices.reduce((sum, d) => sum + [...d.dseq.values()].reduce((a, b) => a + b, 0), 0);
    const stored = [...byConv.values()].reduce((sum, log) => sum + log.filter((m) => m.kind === 'msg').length, 0);
    expect(stored).toBe(sent);

    // Every ack, including resends, matches the entry at its seq.
    for (const { user, device, reply } of acks) {
      const entry = byConv.get(reply['conv'] as string)![(reply['seq'] as number) - 1]!;
      expect({ from: entry.from, dev: entry.dev, cmid: entry.cmid, dseq: entry.dseq, mid: entry.mid, ts: entry.ts }).toEqual({
        from: user,
        dev: device,
        cmid: reply['cmid'],
        dseq: reply['dseq'],
        mid: reply['mid'],
        ts: reply['ts'],
      });
    }

    // The run did exercise the hold-back buffer and dedup.
    const metrics = await (await fetch(t.server.metricsUrl!)).text();
    expect(Number(/sequent_held_back_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(Number(/sequent_dedup_hits_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(0);

    // Pushes on each connection came in strictly increasing seq per conversation.
    for (const dev of devices) {
      const lastPushed = new Map<string, number>();
      for (const push of dev.client.pushes) {
        expect(push.seq).toBeGreaterThan(lastPushed.get(push.conv) ?? 0);
        lastPushed.set(push.conv, push.seq);
      }
    }
  }, 60_000);
});
