/**
 * Routing of owner requests over the real NATS bus: the gateway writes the
 * owner's reply and never answers for it. An owner that does not answer in time,
 * or no owner at all, is `unavailable`, never an ack; an owner that has given
 * the slot up says so instead of deciding.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { SendFrame } from '../../packages/client/src/protocol/index.js';
import { ClusterBus } from '../../packages/server/src/cluster/bus.js';
import { answerForwarded, ClusterRouting, type SlotHolder } from '../../packages/server/src/cluster/routing.js';
import { slotOf } from '../../packages/server/src/cluster/slots.js';
import type { Origin } from '../../packages/server/src/server/origin.js';
import type { OwnerRequests } from '../../packages/server/src/server/owner-requests.js';
import { NATS_URL, serviceAvailable } from '../support/services.js';
import { requester } from './requester.js';

const available = await serviceAvailable('nats', NATS_URL);
const SLOTS = 4;
const buses: ClusterBus[] = [];
afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
});

async function bus(prefix: string): Promise<ClusterBus> {
  const b = await ClusterBus.connect({ servers: NATS_URL, prefix });
  buses.push(b);
  return b;
}


const nobodyHere: SlotHolder = { epochOf: () => undefined };
const holdsAll: SlotHolder = { epochOf: () => 1 };
const send: SendFrame = { t: 'send', id: 7, conv: 'dm:ann:bob', cmid: 'c1', dseq: 1, body: { text: 'hi' } };
const counters = { forwarded: () => undefined, unanswered: () => undefined };

/** Owner requests that answer a send with an ack after `delayMs`, recording who it came from. */
function owner(delayMs: number, seen: { origin?: Origin; frame?: SendFrame }): OwnerRequests {
  const never = async () => undefined;
  return {
    send: (origin, frame) => {
      seen.origin = origin;
      seen.frame = frame;
      setTimeout(() => origin.ack({ t: 'ack', id: frame.id, conv: frame.conv, cmid: frame.cmid, dseq: frame.dseq, seq: 1, mid: 'm1', ts: 5 }), delayMs);
    },
    create: never,
    members: never,
    read: never,
  };
}

describe.skipIf(!available)('routing owner requests over the bus', () => {
  const prefix = () => `sequent.test_${randomBytes(4).toString('hex')}`;

  it('relays the owner’s ack unchanged, with the sender and the body as the gateway got them', async () => {
    const p = prefix();
    const [gatewayBus, ownerBus] = [await bus(p), await bus(p)];
    const seen: { origin?: Origin; frame?: SendFrame } = {};
    ownerBus.serveSlot(slotOf(send.conv, SLOTS), answerForwarded(owner(5, seen), holdsAll, () => undefined));
    await ownerBus.flush();
    const client = requester();
    await new ClusterRouting(owner(0, {}), gatewayBus, nobodyHere, SLOTS, 1000, counters).send(client, send, 0, JSON.stringify(send.body));
    expect(client.written).toEqual([{ t: 'ack', id: 7, conv: send.conv, cmid: 'c1', dseq: 1, seq: 1, mid: 'm1', ts: 5 }]);
    expect(seen.origin).toMatchObject({ user: 'ann', device: 'phone', connection: 42 });
    expect(seen.frame?.body).toEqual({ text: 'hi' });
  });

  it('is unavailable, never an ack, when the owner answers too late or nobody holds the slot', async () => {
    const p = prefix();
    const [gatewayBus, ownerBus] = [await bus(p), await bus(p)];
    ownerBus.serveSlot(slotOf(send.conv, SLOTS), answerForwarded(owner(2000, {}), holdsAll, () => undefined));
    await ownerBus.flush();
    const slow = requester();
    const routing = new ClusterRouting(owner(0, {}), gatewayBus, nobodyHere, SLOTS, 200, counters);
    await routing.send(slow, send, 0, '{}');
    expect(slow.written).toMatchObject([{ t: 'error', id: 7, code: 'unavailable' }]);
    expect(String((slow.written[0] as { message: string }).message)).toMatch(/timeout/);

    ownerBus.unserveSlot(slotOf(send.conv, SLOTS));
    await ownerBus.flush();
    const nobody = requester();
    const startedAt = performance.now();
    await routing.send(nobody, send, 0, '{}');
    expect(nobody.written).toMatchObject([{ t: 'error', id: 7, code: 'unavailable' }]);
    expect(String((nobody.written[0] as { message: string }).message)).toMatch(/no-responders/);
    expect(performance.now() - startedAt).toBeLessThan(150);
  });

  it('runs a request here when this node holds the slot, and an owner that gave the slot up answers unavailable instead of deciding', async () => {
    const p = prefix();
    const [gatewayBus, ownerBus] = [await bus(p), await bus(p)];
    const decided: { origin?: Origin } = {};
    const here = requester();
    await new ClusterRouting(owner(0, decided), gatewayBus, holdsAll, SLOTS, 1000, counters).send(here, send, 0, '{}');
    await new Promise((r) => setTimeout(r, 10));
    expect(decided.origin).toBe(here);
    expect(here.written).toMatchObject([{ t: 'ack', seq: 1 }]);

    const stale: { origin?: Origin } = {};
    ownerBus.serveSlot(slotOf(send.conv, SLOTS), answerForwarded(owner(0, stale), nobodyHere, () => undefined));
    await ownerBus.flush();
    const client = requester();
    await new ClusterRouting(owner(0, {}), gatewayBus, nobodyHere, SLOTS, 1000, counters).send(client, send, 0, '{}');
    expect(client.written).toMatchObject([{ t: 'error', id: 7, code: 'unavailable' }]);
    expect(stale.origin).toBeUndefined();
  });
});
