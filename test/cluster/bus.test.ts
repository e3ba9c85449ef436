/** The cluster bus against the real NATS server: forwarding in a queue group, unavailable at once or on timeout, per-user push interest, resync after a reconnect. */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterBus, type ClusterBusOptions } from '../../packages/server/src/cluster/bus.js';
import { defaultPrefix, subjects } from '../../packages/server/src/cluster/subjects.js';
import { NATS_URL, serviceAvailable } from '../support/services.js';
import { sleep, until } from './databases.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

const available = await serviceAvailable('nats', NATS_URL);
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

const buses: ClusterBus[] = [];
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

/** A prefix per test, so tests running at once on the shared server never cross. */
const freshPrefix = () => `sequent.test_${randomBytes(4).toString('hex')}`;
async function bus(prefix: string, extra: Partial<ClusterBusOptions> = {}): Promise<ClusterBus> {
  const b = await ClusterBus.connect({ servers: NATS_URL, prefix, ...extra });
  buses.push(b);
  return b;
}

describe('subjects', () => {
  it('the default prefix is sequent.<database name>, as a valid subject', () => {
    expect(defaultPrefix('postgres://u@127.0.0.1:5432/chat')).toBe('sequent.chat');
    expect(defaultPrefix('postgres://u@h/my.db%20x')).toBe('sequent.my_db_x');
    expect(defaultPrefix('postgres://alice@h')).toBe('sequent.alice');
    expect(() => subjects('sequent.')).toThrow(RangeError);
    expect(() => subjects('a.*')).toThrow(RangeError);
  });

  it('user ids become one token whatever they hold, and distinct ids stay distinct', () => {
    const s = subjects('p');
    const ids = ['a.b', 'a', 'b', '*', '>', 'a b', '', 'ünï', 'YQ', 'YQ=='];
    const tokens = ids.map((id) => s.user(id).slice('p.u.'.length));
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(new Set(tokens).size).toBe(ids.length);
  });
});

describe.skipIf(!available)('cluster bus', () => {
  it('a forward reaches exactly one holder of the slot in the queue group, and its reply comes back', async () => {
    const prefix = freshPrefix();
    const [a, b, gateway] = [await bus(prefix), await bus(prefix), await bus(prefix)];
    const seen = { a: 0, b: 0 };
    a.serveSlot(7, (req) => {
      seen.a++;
      return text(`a:${str(req)}`);
    });
    b.serveSlot(7, (req) => {
      seen.b++;
      return text(`b:${str(req)}`);
    });
    await Promise.all([a.flush(), b.flush()]);
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => gateway.forward(7, text(`m${i}`), 2000)));
    for (const [i, r] of replies.entries()) {
      expect(r.ok).toBe(true);
      if (r.ok) expect(str(r.reply)).toMatch(new RegExp(`^[ab]:m${i}$`));
    }
    expect(seen.a + seen.b).toBe(40);
  });

  it('no holder of the slot: unavailable (no responders) at once, well before the timeout', async () => {
    const prefix = freshPrefix();
    const gateway = await bus(prefix);
    const started = performance.now();
    expect(await gateway.forward(3, text('x'), 5000)).toEqual({ ok: false, error: 'unavailable', cause: 'no-responders' });
    expect(performance.now() - started).toBeLessThan(2500);
  });

  it('a slot that stopped being served answers no responders; another prefix never sees it', async () => {
    const prefix = freshPrefix();
    const owner = await bus(prefix);
    const elsewhere = await bus(freshPrefix());
    const gateway = await bus(prefix);
    owner.serveSlot(1, () => text('here'));
    await owner.flush();
    expect(await gateway.forward(1, text('x'), 2000)).toMatchObject({ ok: true });
    expect(await elsewhere.forward(1, text('x'), 2000)).toMatchObject({ ok: false, cause: 'no-responders' });
    owner.unserveSlot(1);
    await owner.flush();
    expect(await gateway.forward(1, text('x'), 2000)).toMatchObject({ ok: false, cause: 'no-responders' });
    expect(owner.servedSlots()).toEqual([]);
  });

  it('an owner slower than the timeout: unavailable (timeout) after about the timeout', async () => {
    const prefix = freshPrefix();
    const owner = await bus(prefix);
    const gateway = await bus(prefix);
    owner.serveSlot(2, async () => {
      await sleep(1500);
      return text('late');
    });
    await owner.flush();
    const started = performance.now();
    expect(await gateway.forward(2, text('x'), 300)).toEqual({ ok: false, error: 'unavailable', cause: 'timeout' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('an owner whose handler fails answers unavailable at once', async () => {
    const prefix = freshPrefix();
    const errors: unknown[] = [];
    const owner = await bus(prefix, { onError: (e) => errors.push(e) });
    const gateway = await bus(prefix);
    owner.serveSlot(4, () => {
      throw new Error('store down');
    });
    await owner.flush();
    expect(await gateway.forward(4, text('x'), 5000)).toEqual({ ok: false, error: 'unavailable', cause: 'owner-error' });
    expect(errors).toHaveLength(1);
  });

  it('pushes reach a node while it has interest in the user: from the first connection to the last', async () => {
    const prefix = freshPrefix();
    const got: string[] = [];
    const node = await bus(prefix, { onPush: (user, payload) => got.push(`${user}=${str(payload)}`) });
    const owner = await bus(prefix);
    const user = 'ann.b *>';
    node.addUser(user);
    node.addUser(user); // a second device of the same user
    node.addUser('sentinel');
    await node.flush();
    owner.publish(user, text('1'));
    owner.publish('bob', text('not here'));
    await owner.flush();
    await until('the first push arrived', () => got.length === 1);
    node.removeUser(user); // one connection left: still interested
    await node.flush();
    owner.publish(user, text('2'));
    await owner.flush();
    await until('the second push arrived', () => got.length === 2);
    node.removeUser(user); // the last one
    await node.flush();
    owner.publish(user, text('3'));
    owner.publish('sentinel', text('end'));
    await owner.flush();
    await until('the sentinel arrived', () => got.includes('sentinel=end'));
    // one publisher's messages arrive in order: '3' would have come before the sentinel
    expect(got).toEqual([`${user}=1`, `${user}=2`, 'sentinel=end']);
    expect(node.users()).toEqual(['sentinel']);
  });

  it('after a bus reconnect it resubscribes first, then reports resync: a push published at resync arrives', async () => {
    const proxy = await startTcpProxy({ host: new URL(NATS_URL).hostname, port: Number(new URL(NATS_URL).port || 4222) });
    proxies.push(proxy);
    const prefix = freshPrefix();
    const got: string[] = [];
    const events: string[] = [];
    const owner = await bus(prefix);
    const node = await bus(prefix, {
      servers: proxy.url('nats'),
      reconnectTimeWaitMs: 50,
      onPush: (_user, payload) => got.push(str(payload)),
      onDisconnect: () => events.push('disconnect'),
      onResync: () => {
        events.push('resync');
        // the very moment clients would resync: a push now must not be lost
        owner.publish('ann', text('at-resync'));
      },
    });
    node.addUser('ann');
    node.serveSlot(9, () => text('owner via proxy'));
    await node.flush();
    owner.publish('ann', text('before'));
    await until('the first push arrived', () => got.includes('before'));

    // after the cut, everything the node sends reaches the server 300 ms late: its subscriptions too,
    // so a resync reported before the server has them would lose the push below
    proxy.delayUpstream(300);
    proxy.cut();
    await until('the bus reconnected and resynced', () => events.includes('resync'), 10_000);
    expect(events).toEqual(['disconnect', 'resync']);
    await owner.flush();
    await until('the push published at resync arrived', () => got.includes('at-resync'), 5000);
    // the slot's subscription came back too
    expect(await owner.forward(9, text('x'), 2000)).toMatchObject({ ok: true });
  });
});
