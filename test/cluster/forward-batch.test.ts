/**
 * Forwarded requests in batches over the real NATS server: the requests of a
 * turn travel together per owner, keep their order within and across batches,
 * each gets its own answer, and a batch nobody serves or answers in time is
 * `unavailable` for every request in it. A gateway that learnt a slot's holder
 * and finds it gone or moved asks at the slot's own subject again.
 */
import { randomBytes } from 'node:crypto';
import { connect, type NatsConnection } from 'nats';
import { afterEach, describe, expect, it } from 'vitest';
import type { AckFrame, SendFrame } from '../../packages/client/src/protocol/index.js';
import { ClusterBus, type ForwardResult } from '../../packages/server/src/cluster/bus.js';
import { decodeBatch, encodeBatch, MAX_BATCH_REQUESTS } from '../../packages/server/src/cluster/forward-batch.js';
import { decodeForwarded, encodeForwarded } from '../../packages/server/src/cluster/forwarding.js';
import { answerForwarded, ClusterRouting } from '../../packages/server/src/cluster/routing.js';
import { slotOf } from '../../packages/server/src/cluster/slots.js';
import type { OwnerRequests } from '../../packages/server/src/server/owner-requests.js';
import { NATS_URL, serviceAvailable } from '../support/services.js';
import { requester } from './requester.js';

const available = await serviceAvailable('nats', NATS_URL);
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const replyText = (r: ForwardResult) => (r.ok ? str(r.reply) : `unavailable:${r.cause}`);

const buses: ClusterBus[] = [];
const raw: NatsConnection[] = [];
afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
  await Promise.all(raw.splice(0).map((nc) => nc.close()));
});

const freshPrefix = () => `sequent.test_${randomBytes(4).toString('hex')}`;
async function bus(prefix: string): Promise<ClusterBus> {
  const b = await ClusterBus.connect({ servers: NATS_URL, prefix });
  buses.push(b);
  return b;
}

/** Counts the NATS messages sent to the owners' subjects (not in the queue group: it sees them all and answers none). */
async function ownerSubjectMessages(prefix: string): Promise<{ count: () => number; requests: () => number; settle: () => Promise<void> }> {
  const nc = await connect({ servers: NATS_URL });
  raw.push(nc);
  let count = 0;
  let requests = 0;
  nc.subscribe(`${prefix}.own.*`, {
    callback: (_error, msg) => {
      count++;
      requests += decodeBatch(msg.data).length;
    },
  });
  await nc.flush();
  // The server sends what it had for this connection before the PONG of its flush.
  return { count: () => count, requests: () => requests, settle: () => nc.flush() };
}

describe('batch wire format', () => {
  it('a batch decodes to its requests and slots in order, and a cut batch is refused', () => {
    const items = [
      { slot: 3, request: text('a') },
      { slot: 1023, request: new Uint8Array(0) },
      { slot: 0, request: text('ünï') },
    ];
    const bytes = encodeBatch(items);
    expect(decodeBatch(bytes).map((i) => ({ slot: i.slot, request: str(i.request) }))).toEqual([
      { slot: 3, request: 'a' },
      { slot: 1023, request: '' },
      { slot: 0, request: 'ünï' },
    ]);
    expect(() => decodeBatch(bytes.subarray(0, bytes.length - 1))).toThrow(RangeError);
  });
});

describe('forwarded request encoding', () => {
  const origin = { user: 'ann\nx', device: 'phone', connection: 42, ack: () => undefined, ok: () => undefined, error: () => undefined };

  it('a send arrives with its body as the gateway measured it, newlines and all; other frames whole', () => {
    const body = { text: 'line 1\nline 2 ünï "quoted"', n: [1, 2] };
    const bodyJson = JSON.stringify(body);
    const frame: SendFrame = { t: 'send', id: 3, conv: 'g:x\ny', cmid: 'c', dseq: 9, kind: 'msg', body };
    const got = decodeForwarded(encodeForwarded(origin, frame, bodyJson));
    expect(got).toEqual({ frame, bodyJson, user: 'ann\nx', device: 'phone', connection: 42 });
    const read = { t: 'read' as const, id: 4, conv: 'g:x', seq: 17 };
    expect(decodeForwarded(encodeForwarded(origin, read))).toEqual({ frame: read, bodyJson: undefined, user: 'ann\nx', device: 'phone', connection: 42 });
  });
});

describe.skipIf(!available)('forwarding in batches over the bus', () => {
  it('a turn’s requests for one slot go in as few messages as the bound allows, run in order within and across batches, each answered with its own reply', async () => {
    const prefix = freshPrefix();
    const [owner, gateway] = [await bus(prefix), await bus(prefix)];
    const wire = await ownerSubjectMessages(prefix);
    const ran: string[] = [];
    // Answers come back out of order: later requests of a batch are answered first.
    owner.serveSlot(5, async (req) => {
      const s = str(req);
      ran.push(s);
      await new Promise((resolve) => setTimeout(resolve, Number(s.slice(1)) % 2 === 0 ? 10 : 0));
      return text(`re:${s}`);
    });
    await owner.flush();
    const first = 2 * MAX_BATCH_REQUESTS + 10;
    const turn1 = Array.from({ length: first }, (_, i) => gateway.forward(5, text(`m${i}`), 5000));
    const replies1 = await Promise.all(turn1);
    expect(replies1.map(replyText)).toEqual(Array.from({ length: first }, (_, i) => `re:m${i}`));
    await gateway.flush();
    await wire.settle();
    expect(wire.count()).toBe(3);

    const turn2 = Array.from({ length: 20 }, (_, i) => gateway.forward(5, text(`m${first + i}`), 5000));
    expect((await Promise.all(turn2)).map(replyText)).toEqual(Array.from({ length: 20 }, (_, i) => `re:m${first + i}`));
    expect(ran).toEqual(Array.from({ length: first + 20 }, (_, i) => `m${i}`));
    await gateway.flush();
    await wire.settle();
    expect(wire.count()).toBe(4);
    expect(wire.requests()).toBe(first + 20);
  });

  it('once it knows the holders, a turn mixing slots of two owners goes as one batch to each, every slot’s order kept', async () => {
    const prefix = freshPrefix();
    const [a, b, gateway] = [await bus(prefix), await bus(prefix), await bus(prefix)];
    const ran = new Map<number, string[]>();
    const serve = (owner: ClusterBus, name: string, slot: number) =>
      owner.serveSlot(slot, (req, s) => {
        ran.set(s, [...(ran.get(s) ?? []), str(req)]);
        return text(`${name}:${s}:${str(req)}`);
      });
    serve(a, 'a', 1);
    serve(a, 'a', 2);
    serve(b, 'b', 3);
    await Promise.all([a.flush(), b.flush()]);
    // The first answer of each slot tells the gateway its holder.
    expect((await Promise.all([1, 2, 3].map((s) => gateway.forward(s, text('hello'), 5000)))).map(replyText)).toEqual(['a:1:hello', 'a:2:hello', 'b:3:hello']);

    const wire = await ownerSubjectMessages(prefix);
    const sent: Promise<ForwardResult>[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 30; i++) {
      const slot = [3, 1, 2][i % 3]!;
      sent.push(gateway.forward(slot, text(`x${i}`), 5000));
      expected.push(`${slot === 3 ? 'b' : 'a'}:${slot}:x${i}`);
    }
    expect((await Promise.all(sent)).map(replyText)).toEqual(expected);
    await gateway.flush();
    await wire.settle();
    expect(wire.count()).toBe(2);
    for (const slot of [1, 2, 3]) {
      expect(ran.get(slot)).toEqual(['hello', ...expected.filter((e) => e.startsWith(`${slot === 3 ? 'b' : 'a'}:${slot}:`)).map((e) => e.split(':')[2])]);
    }
  });

  it('every request of a batch nobody serves is unavailable (no responders), at once', async () => {
    const prefix = freshPrefix();
    const gateway = await bus(prefix);
    const startedAt = performance.now();
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => gateway.forward(9, text(`r${i}`), 5000)));
    expect(replies).toEqual(Array.from({ length: 12 }, () => ({ ok: false, error: 'unavailable', cause: 'no-responders' })));
    expect(performance.now() - startedAt).toBeLessThan(2500);
  });

  it('every request of a batch not answered in time is unavailable (timeout), and the ones answered before keep their answers', async () => {
    const prefix = freshPrefix();
    const [owner, gateway] = [await bus(prefix), await bus(prefix)];
    owner.serveSlot(4, (req) => (str(req).startsWith('quick') ? text('done') : new Promise<Uint8Array>(() => undefined)));
    await owner.flush();
    const replies = await Promise.all([
      gateway.forward(4, text('quick-1'), 300),
      ...Array.from({ length: 8 }, (_, i) => gateway.forward(4, text(`stuck-${i}`), 300)),
      gateway.forward(4, text('quick-2'), 300),
    ]);
    expect(replies.map(replyText)).toEqual(['done', ...Array.from({ length: 8 }, () => 'unavailable:timeout'), 'done']);
  });

  it('requests waiting when the gateway’s bus closes are unavailable (closed), and so is one forwarded after', async () => {
    const prefix = freshPrefix();
    const [owner, gateway] = [await bus(prefix), await bus(prefix)];
    owner.serveSlot(6, () => new Promise<Uint8Array>(() => undefined));
    await owner.flush();
    const waiting = Array.from({ length: 5 }, (_, i) => gateway.forward(6, text(`w${i}`), 30_000));
    await gateway.flush();
    await gateway.close();
    expect((await Promise.all(waiting)).map(replyText)).toEqual(Array.from({ length: 5 }, () => 'unavailable:closed'));
    expect(replyText(await gateway.forward(6, text('late'), 30_000))).toBe('unavailable:closed');
  });

  it('a holder that moved a slot answers "not here" and the gateway asks the slot’s new holder; a holder gone makes its slots’ requests unavailable, then they find the next holder', async () => {
    const prefix = freshPrefix();
    const [a, b, gateway] = [await bus(prefix), await bus(prefix), await bus(prefix)];
    const answer = (name: string) => (req: Uint8Array, slot: number) => text(`${name}:${slot}:${str(req)}`);
    a.serveSlot(1, answer('a'));
    a.serveSlot(2, answer('a'));
    await a.flush();
    expect((await Promise.all([gateway.forward(1, text('h'), 5000), gateway.forward(2, text('h'), 5000)])).map(replyText)).toEqual(['a:1:h', 'a:2:h']);

    // Slot 2 moves to b: the batch for a (on slot 1's subject) carries slot 2's request, which a sends back.
    a.unserveSlot(2);
    b.serveSlot(2, answer('b'));
    await Promise.all([a.flush(), b.flush()]);
    expect((await Promise.all([gateway.forward(1, text('p'), 5000), gateway.forward(2, text('q'), 5000)])).map(replyText)).toEqual(['a:1:p', 'b:2:q']);

    // a is gone: its slot 1 has no holder (unavailable); slot 2's requests still reach b.
    await a.close();
    const after = await Promise.all([gateway.forward(1, text('r'), 5000), gateway.forward(2, text('s'), 5000)]);
    expect(after.map(replyText)).toEqual(['unavailable:no-responders', 'b:2:s']);
    b.serveSlot(1, answer('b'));
    await b.flush();
    expect(replyText(await gateway.forward(1, text('t'), 5000))).toBe('b:1:t');
  });
});


describe.skipIf(!available)('routing sends in batches', () => {
  it('one device’s sends to conversations of two owners, in one turn: each owner runs its own in dseq order and every ack comes back', async () => {
    const SLOTS = 64;
    const prefix = freshPrefix();
    const [gatewayBus, busA, busB] = [await bus(prefix), await bus(prefix), await bus(prefix)];
    // Two conversations in different slots, one per owner.
    const convs: string[] = [];
    for (let i = 0; convs.length < 2; i++) {
      const conv = `g:c${i}`;
      if (convs.every((c) => slotOf(c, SLOTS) !== slotOf(conv, SLOTS))) convs.push(conv);
    }
    const [convA, convB] = convs as [string, string];
    const ran: string[] = [];
    const owner = (name: string): OwnerRequests => ({
      send: (origin, frame) => {
        ran.push(`${name}:${frame.conv}:${frame.dseq}:${JSON.stringify(frame.body)}:${origin.device}`);
        origin.ack({ t: 'ack', id: frame.id, conv: frame.conv, cmid: frame.cmid, dseq: frame.dseq, seq: frame.dseq, mid: `m${frame.id}`, ts: 1 });
      },
      create: async () => undefined,
      members: async () => undefined,
      read: async () => undefined,
    });
    const holds = (conv: string) => ({ epochOf: (slot: number) => (slot === slotOf(conv, SLOTS) ? 1 : undefined) });
    busA.serveSlot(slotOf(convA, SLOTS), answerForwarded(owner('a'), holds(convA), () => undefined));
    busB.serveSlot(slotOf(convB, SLOTS), answerForwarded(owner('b'), holds(convB), () => undefined));
    await Promise.all([busA.flush(), busB.flush()]);
    const routing = new ClusterRouting(owner('gateway'), gatewayBus, { epochOf: () => undefined }, SLOTS, 5000, { forwarded: () => undefined, unanswered: () => undefined });
    const client = requester();
    const sends: Promise<void>[] = [];
    for (let dseq = 1; dseq <= 20; dseq++) {
      const conv = dseq % 2 === 0 ? convA : convB;
      const frame: SendFrame = { t: 'send', id: dseq, conv, cmid: `c${dseq}`, dseq, body: { n: dseq } };
      sends.push(routing.send(client, frame, 0, JSON.stringify(frame.body)) as Promise<void>);
    }
    await Promise.all(sends);
    expect(ran.filter((r) => r.startsWith('a:'))).toEqual(Array.from({ length: 10 }, (_, i) => `a:${convA}:${2 * i + 2}:{"n":${2 * i + 2}}:phone`));
    expect(ran.filter((r) => r.startsWith('b:'))).toEqual(Array.from({ length: 10 }, (_, i) => `b:${convB}:${2 * i + 1}:{"n":${2 * i + 1}}:phone`));
    expect(ran.some((r) => r.startsWith('gateway:'))).toBe(false);
    expect(client.written.map((f) => (f as AckFrame).t === 'ack' && (f as AckFrame).id).sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });
});
