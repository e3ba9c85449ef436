/**
 * Cluster delivery between two nodes over the real NATS bus: pushes published by
 * one node reach the other node's connections through their push filters. A
 * duplicate is dropped, a gap is filled from the store in seq order — with only
 * what the connection's user may read and never the connection's own sends —
 * and a node ignores what it published itself (it delivered that already).
 * A commit batch goes as one bus message per audience user, holding that user's
 * entries of the batch in commit order.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import type { Entry } from '../../packages/client/src/protocol/index.js';
import { ClusterBus } from '../../packages/server/src/cluster/bus.js';
import { ClusterDelivery } from '../../packages/server/src/cluster/cluster-delivery.js';
import { subjects } from '../../packages/server/src/cluster/subjects.js';
import { StoreConvViews } from '../../packages/server/src/server/conv-view.js';
import { Presence, type Connection } from '../../packages/server/src/server/delivery.js';
import { ServerMetrics } from '../../packages/server/src/server/metrics.js';
import type { Committed } from '../../packages/server/src/server/sequencer.js';
import { MemoryStore } from '../../packages/server/src/store/memory.js';
import { NATS_URL, serviceAvailable } from '../support/services.js';
import { until } from './databases.js';

const available = await serviceAvailable('nats', NATS_URL);
const buses: ClusterBus[] = [];
afterAll(async () => {
  await Promise.all(buses.map((b) => b.close()));
});

class TestConnection implements Connection {
  readonly frames: { t: string; seq?: number; conv?: string; body?: unknown }[] = [];
  closed = false;
  constructor(
    readonly connection: number,
    readonly user: string,
    readonly device: string,
  ) {}
  sendText(text: string | Buffer): void {
    this.frames.push(JSON.parse(String(text)) as { t: string; seq?: number });
  }
}

const CONV = 'g:room';
const entry = (seq: number, from: string, dev: string, kind: Entry['kind'] = 'msg', body: unknown = `m${seq}`): Entry => ({ conv: CONV, seq, kind, mid: `mid${seq}`, ts: seq, from, dev, body });

async function node(prefix: string, tag: string, store: MemoryStore) {
  let delivery: ClusterDelivery<TestConnection> | undefined;
  const bus = await ClusterBus.connect({ servers: NATS_URL, prefix, onPush: (user, payload) => delivery?.fromBus(user, payload) });
  buses.push(bus);
  const presence = new Presence<TestConnection>({ joined: (c) => delivery?.joined(c), left: (c) => delivery?.left(c) });
  delivery = new ClusterDelivery<TestConnection>({ presence, bus, store, views: new StoreConvViews(store), tag, metrics: new ServerMetrics(false) });
  return { bus, presence, delivery };
}

describe.skipIf(!available)('cluster delivery over the bus', () => {
  it('drops duplicates, fills gaps from the store with only what the user may read, skips own sends and its own publications', async () => {
    const store = new MemoryStore();
    await store.init();
    // 1: create (a, u); 2: a's message; 3: u's own message from device d1; 4: u removed; 5: a's message after it.
    const log = [
      entry(1, 'a', 'x', 'system', { op: 'create', members: ['a', 'u'] }),
      entry(2, 'a', 'x'),
      entry(3, 'u', 'd1'),
      entry(4, 'a', 'x', 'system', { op: 'members', add: [], remove: ['u'] }),
      entry(5, 'a', 'x'),
    ];
    await store.commit({
      newConvs: [{ conv: CONV, kind: 'group' }],
      entries: log,
      memberships: [
        { op: 'add', conv: CONV, user: 'a', seq: 1 },
        { op: 'add', conv: CONV, user: 'u', seq: 1 },
        { op: 'remove', conv: CONV, user: 'u', seq: 4 },
      ],
    });
    const prefix = `sequent.test_${randomBytes(4).toString('hex')}`;
    const owner = await node(prefix, 'owner', store);
    const gateway = await node(prefix, 'gateway', store);
    const u = new TestConnection(1001, 'u', 'd1');
    const ownerSide = new TestConnection(2002, 'u', 'd2');
    gateway.presence.join(u);
    owner.presence.join(ownerSide);
    await gateway.bus.flush();
    const committed = (e: Entry, audience: string[], originId?: number): Committed => ({ entry: e, bodyJson: undefined, audience, originId });

    owner.delivery.entries([committed(log[0]!, ['a', 'u'])]);
    await until('the first push arrives', () => u.frames.length === 1);
    // Seq 2 and 3 never come over the bus (lost); 4 does, twice, and 1 again.
    owner.delivery.entries([committed(log[3]!, ['a', 'u'])]);
    owner.delivery.entries([committed(log[3]!, ['a', 'u']), committed(log[0]!, ['a', 'u'])]);
    await until('the gap is filled', () => u.frames.length >= 3);
    await new Promise((r) => setTimeout(r, 100));
    // 2 from the store; 3 is u's own send from this device (it got the ack), passed over; 4 once; nothing twice.
    expect(u.frames.map((f) => f.seq)).toEqual([1, 2, 4]);
    expect(u.frames.every((f) => f.t === 'msg' && f.conv === CONV)).toBe(true);
    // The owner's connection of u's other device got each push once, directly (its own publications from the
    // bus were ignored), and its gap filled with u's message from d1, which is not its own send.
    expect(ownerSide.frames.map((f) => f.seq)).toEqual([1, 2, 3, 4]);
    // A later push leaves a gap over 5 and 6: the fill passes over 5, which u may no longer read, and 6 is not stored.
    owner.delivery.entries([committed(entry(7, 'a', 'x'), ['u'])]);
    await new Promise((r) => setTimeout(r, 200));
    expect(u.frames.map((f) => f.seq)).toEqual([1, 2, 4, 7]);
  });

  it('drops a read push at or below one the connection already got, from whichever node it comes (a paused old owner flushing late)', async () => {
    const store = new MemoryStore();
    await store.init();
    const prefix = `sequent.test_${randomBytes(4).toString('hex')}`;
    const oldOwner = await node(prefix, 'old-owner', store);
    const newOwner = await node(prefix, 'new-owner', store);
    const gateway = await node(prefix, 'gateway', store);
    const viewer = new TestConnection(3003, 'ann', 'd1');
    const local = new TestConnection(4004, 'ann', 'd2');
    gateway.presence.join(viewer);
    newOwner.presence.join(local);
    await gateway.bus.flush();
    await newOwner.bus.flush();
    const reads = (c: TestConnection) => c.frames.filter((f) => f.t === 'read').map((f) => [(f as { user?: string }).user, f.seq]);

    newOwner.delivery.read(['ann'], CONV, 'bo', 149, true);
    await until('the new position arrives', () => reads(viewer).length === 1);
    // The old owner's older position comes after it, and the same one again: neither is shown.
    oldOwner.delivery.read(['ann'], CONV, 'bo', 138, true);
    oldOwner.delivery.read(['ann'], CONV, 'bo', 149, true);
    // Another reader's position, and bo's next one, still go through.
    oldOwner.delivery.read(['ann'], CONV, 'cy', 3, true);
    newOwner.delivery.read(['ann'], CONV, 'bo', 150, true);
    await until('the later pushes arrive', () => reads(viewer).length === 3);
    await new Promise((r) => setTimeout(r, 100));
    // Two publishers: their pushes interleave in any order, but each reader's positions only go up.
    const byReader = (c: TestConnection, user: string) => reads(c).filter(([u]) => u === user).map(([, seq]) => seq);
    expect(reads(viewer)).toHaveLength(3);
    expect(byReader(viewer, 'bo')).toEqual([149, 150]);
    expect(byReader(viewer, 'cy')).toEqual([3]);
    // The new owner's own connection got its pushes directly and the old owner's stale one not at all.
    expect(reads(local)).toHaveLength(3);
    expect(byReader(local, 'bo')).toEqual([149, 150]);
    expect(byReader(local, 'cy')).toEqual([3]);
  });
  it('sends a commit batch as one bus message per user, whose entries reach each connection on another node in order', async () => {
    const store = new MemoryStore();
    await store.init();
    const prefix = `sequent.test_${randomBytes(4).toString('hex')}`;
    const owner = await node(prefix, 'owner', store);
    const gateway = await node(prefix, 'gateway', store);
    // What crosses the bus, as a third party on the same NATS server hears it.
    const watcher = await connect({ servers: NATS_URL });
    const heard = new Map<string, number>();
    const sub = watcher.subscribe(`${prefix}.u.>`, { callback: (_e, msg) => heard.set(msg.subject, (heard.get(msg.subject) ?? 0) + 1) });
    try {
      const u1 = new TestConnection(5001, 'u', 'd1');
      const u2 = new TestConnection(5002, 'u', 'd2');
      const v = new TestConnection(5003, 'v', 'd1');
      const w = new TestConnection(5004, 'w', 'd1');
      for (const c of [u1, u2, v, w]) gateway.presence.join(c);
      await gateway.bus.flush();
      await watcher.flush();
      const uv = ['u', 'v'];
      const onlyU = ['u'];
      const at = (conv: string, seq: number, from = 'v', dev = 'd1'): Entry => ({ ...entry(seq, from, dev), conv, mid: `${conv}/${seq}` });
      // Two conversations interleaved in one batch; g:b/2 was sent by u1 (it got the ack, not a push).
      owner.delivery.entries([
        { entry: at('g:a', 1), bodyJson: undefined, audience: uv, originId: undefined },
        { entry: at('g:b', 1), bodyJson: undefined, audience: onlyU, originId: undefined },
        { entry: at('g:a', 2), bodyJson: undefined, audience: uv, originId: undefined },
        { entry: at('g:b', 2, 'u', 'd1'), bodyJson: undefined, audience: onlyU, originId: 5001 },
        { entry: at('g:a', 3), bodyJson: undefined, audience: uv, originId: undefined },
        { entry: at('g:b', 3), bodyJson: '{"text":"json body"}', audience: onlyU, originId: undefined },
      ]);
      const pushed = (c: TestConnection) => c.frames.map((f) => `${f.conv}/${f.seq}`);
      await until('the batch arrives', () => pushed(u2).length === 6 && pushed(v).length === 3 && pushed(u1).length === 5);
      await owner.bus.flush();
      await watcher.flush();
      await new Promise((r) => setTimeout(r, 100));
      expect(pushed(u1)).toEqual(['g:a/1', 'g:b/1', 'g:a/2', 'g:a/3', 'g:b/3']);
      expect(pushed(u2)).toEqual(['g:a/1', 'g:b/1', 'g:a/2', 'g:b/2', 'g:a/3', 'g:b/3']);
      expect(pushed(v)).toEqual(['g:a/1', 'g:a/2', 'g:a/3']);
      expect(w.frames).toEqual([]);
      expect(u2.frames[5]!.body).toEqual({ text: 'json body' });
      // Six entries, two users: two bus messages, not nine (one per entry and user).
      expect([...heard.values()]).toEqual([1, 1]);
      expect(heard.size).toBe(2);
      // A node of the release before batched pushes sends one entry per message: it is still taken.
      const frame = JSON.stringify({ t: 'msg', conv: 'g:a', seq: 4, kind: 'msg', mid: 'g:a/4', ts: 4, from: 'v', dev: 'd1', body: 'm4' });
      watcher.publish(subjects(prefix).user('u'), Buffer.from(`${JSON.stringify({ n: 'older', k: 'm', c: 'g:a', s: 4 })}\n${frame}`));
      await until('the one-entry push arrives', () => pushed(u1).length === 6 && pushed(u2).length === 7);
      expect(pushed(u1).at(-1)).toBe('g:a/4');
      expect(pushed(u2).at(-1)).toBe('g:a/4');
      expect(pushed(v)).toEqual(['g:a/1', 'g:a/2', 'g:a/3']);
    } finally {
      sub.unsubscribe();
      await watcher.close();
    }
  });
});
