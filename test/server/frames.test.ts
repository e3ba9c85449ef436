/** Every frame of the protocol over a real WebSocket against a real server on port 0. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MsgFrame } from '../../packages/client/src/protocol/index.js';
import { startTestServer, type TestServer, type WireClient } from '../support/wire.js';

let t: TestServer;
beforeEach(async () => {
  t = await startTestServer();
});
afterEach(async () => {
  await t.stop();
});

async function send(client: WireClient, conv: string, cmid: string, dseq: number, body: unknown = { text: cmid }, extra = {}) {
  return client.request({ t: 'send', conv, cmid, dseq, body, ...extra });
}

describe('hello', () => {
  it('welcomes with identity, server time and limits', async () => {
    const client = await t.connect('alice', 'phone');
    const welcome = await client.hello(await t.server.mintToken('alice', 'phone'));
    // a second hello on an authenticated connection is a bad request, not a new identity
    expect(welcome).toMatchObject({ t: 'error', code: 'bad_request' });

    const fresh = await (await import('../support/wire.js')).WireClient.open(t.server.url);
    const before = Date.now();
    const reply = await fresh.hello(await t.server.mintToken('alice', 'phone'));
    expect(reply).toMatchObject({ t: 'welcome', user: 'alice', device: 'phone', limits: { maxBody: 65536, maxFrame: 262144 } });
    expect(reply['serverTime']).toBeGreaterThanOrEqual(before - 1000);
    fresh.close();
  });
});

describe('create', () => {
  it('creates a group whose log starts with a system entry listing the members, caller included', async () => {
    const alice = await t.connect('alice');
    const ok = await alice.request({ t: 'create', conv: 'g:team', members: ['bob', 'carol', 'bob'] });
    expect(ok).toEqual({ t: 'ok', id: ok['id'], conv: 'g:team', seq: 1 });
    const { msgs, last } = await alice.syncAll('g:team');
    expect(last).toBe(1);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatchObject({ conv: 'g:team', seq: 1, kind: 'system', from: 'alice', body: { op: 'create', members: ['alice', 'bob', 'carol'] } });
    expect(msgs[0]!.cmid).toBeUndefined();
  });

  it('refuses an existing group with conflict and a dm with bad_request', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    const bob = await t.connect('bob');
    expect(await bob.request({ t: 'create', conv: 'g:team', members: [] })).toMatchObject({ t: 'error', code: 'conflict' });
    expect(await bob.request({ t: 'create', conv: 'dm:alice:bob', members: [] })).toMatchObject({ t: 'error', code: 'bad_request' });
  });

  it('gives one of two racing creates the group and the other conflict', async () => {
    const [a, b] = await Promise.all([t.connect('alice'), t.connect('bob')]);
    const replies = await Promise.all([a.request({ t: 'create', conv: 'g:race', members: [] }), b.request({ t: 'create', conv: 'g:race', members: [] })]);
    expect(replies.map((r) => r.t).sort()).toEqual(['error', 'ok']);
  });
});

describe('send, ack and push', () => {
  it('acks after storing, with seq, mid and ts, and pushes to every other online device of every member', async () => {
    const alicePhone = await t.connect('alice', 'phone');
    const aliceLaptop = await t.connect('alice', 'laptop');
    const bob = await t.connect('bob', 'phone');
    const carol = await t.connect('carol', 'phone');
    await alicePhone.request({ t: 'create', conv: 'g:team', members: ['bob'] });

    const ack = await send(alicePhone, 'g:team', 'c-1', 1, { text: 'hi' }, { ctx: { seen: 1 } });
    expect(ack).toMatchObject({ t: 'ack', conv: 'g:team', cmid: 'c-1', dseq: 1, seq: 2 });
    expect(ack['mid']).toMatch(/^\d+$/);
    expect(typeof ack['ts']).toBe('number');

    const expected: Partial<MsgFrame> = {
      t: 'msg', conv: 'g:team', seq: 2, kind: 'msg', mid: ack['mid'] as string, ts: ack['ts'] as number,
      from: 'alice', dev: 'phone', cmid: 'c-1', dseq: 1, body: { text: 'hi' }, ctx: { seen: 1 },
    };
    // bob sees the create (seq 1) and the message; alice's laptop too; the sending connection gets no push.
    expect((await bob.waitForPushes(2))[1]).toEqual(expected);
    expect((await aliceLaptop.waitForPushes(2))[1]).toEqual(expected);
    await new Promise((r) => setTimeout(r, 50));
    expect(alicePhone.pushes.map((p) => p.seq)).toEqual([]);
    expect(carol.pushes).toEqual([]);
  });

  it('returns the same ack for a resend, before and after the first ack, and stores the message once', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    const [first, concurrent] = await Promise.all([send(alice, 'g:team', 'c-1', 1), send(alice, 'g:team', 'c-1', 1)]);
    const later = await send(alice, 'g:team', 'c-1', 1);
    // a resend from another connection of the same device is the same send
    const again = await t.connect('alice');
    const fromReconnect = await send(again, 'g:team', 'c-1', 1);
    const pick = (f: Record<string, unknown>) => ({ seq: f['seq'], mid: f['mid'], ts: f['ts'], cmid: f['cmid'], dseq: f['dseq'] });
    expect(first.t).toBe('ack');
    for (const other of [concurrent, later, fromReconnect]) expect(pick(other)).toEqual(pick(first));
    const { msgs } = await alice.syncAll('g:team');
    expect(msgs.filter((m) => m.cmid === 'c-1')).toHaveLength(1);
  });

  it('treats the same cmid from another device, or in another conversation, as a different message', async () => {
    const phone = await t.connect('alice', 'phone');
    const laptop = await t.connect('alice', 'laptop');
    await phone.request({ t: 'create', conv: 'g:a', members: [] });
    await phone.request({ t: 'create', conv: 'g:b', members: [] });
    const a = await send(phone, 'g:a', 'same', 1);
    const b = await send(laptop, 'g:a', 'same', 1);
    const c = await send(phone, 'g:b', 'same', 1);
    expect([a['seq'], b['seq'], c['seq']]).toEqual([2, 3, 2]);
    expect(new Set([a['mid'], b['mid'], c['mid']]).size).toBe(3);
  });

  it('keeps dseq order: a later dseq waits for the missing one, then both take seqs in dseq order', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    const second = send(alice, 'g:team', 'c-2', 2);
    await new Promise((r) => setTimeout(r, 100));
    const first = await send(alice, 'g:team', 'c-1', 1);
    expect(first['seq']).toBe(2);
    expect((await second)['seq']).toBe(3);
  });

  it('answers out_of_order with expected once holdMs passes without the missing dseq, and the resend from expected goes through', async () => {
    await t.stop();
    t = await startTestServer({ holdMs: 150 });
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    expect(await send(alice, 'g:team', 'c-1', 1)).toMatchObject({ t: 'ack', seq: 2 });
    const started = Date.now();
    const early = await send(alice, 'g:team', 'c-4', 4);
    expect(early).toMatchObject({ t: 'error', code: 'out_of_order', expected: 2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    const resent = await Promise.all([send(alice, 'g:team', 'c-2', 2), send(alice, 'g:team', 'c-3', 3), send(alice, 'g:team', 'c-4', 4)]);
    expect(resent.map((r) => r['seq'])).toEqual([3, 4, 5]);
    const { msgs } = await alice.syncAll('g:team');
    expect(msgs.map((m) => m.cmid ?? null)).toEqual([null, 'c-1', 'c-2', 'c-3', 'c-4']);
  });

  it('a held send the device renumbers (a refused send before it took no dseq) goes in at its new dseq, and the one behind it too', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    expect(await send(alice, 'g:team', 'c-1', 1)).toMatchObject({ t: 'ack', seq: 2 });
    // dseq 2 is an edit of a seq that does not exist: refused, it takes no dseq; c-3 went out behind it and is held.
    const refused = send(alice, 'g:team', 'e-2', 2, { text: 'edit' }, { kind: 'edit', ref: 99 });
    const held = send(alice, 'g:team', 'c-3', 3);
    expect((await refused).t).toBe('error');
    // The device discards the refused edit and closes the gap: c-3 is now dseq 2, c-4 dseq 3.
    const [renumbered, behind] = await Promise.all([send(alice, 'g:team', 'c-3', 2), send(alice, 'g:team', 'c-4', 3)]);
    expect(renumbered).toMatchObject({ t: 'ack', cmid: 'c-3', dseq: 2, seq: 3 });
    expect(behind).toMatchObject({ t: 'ack', cmid: 'c-4', dseq: 3, seq: 4 });
    // The first copy's request is answered too, and says why.
    expect(await held).toMatchObject({ t: 'error', code: 'bad_request', message: expect.stringContaining('sent it again at dseq 2') });
    const { msgs } = await alice.syncAll('g:team');
    expect(msgs.map((m) => [m.cmid ?? null, m.dseq ?? null])).toEqual([[null, null], ['c-1', 1], ['c-3', 2], ['c-4', 3]]);

    // A hostile device flipping one held cmid between two dseqs: each copy answers the one before, and
    // nothing piles up; a bystander's send is served meanwhile.
    const bob = await t.connect('bob');
    const flips = Array.from({ length: 100 }, (_, i) => send(alice, 'g:team', 'flip', 5 + (i % 2)));
    const bystander = await bob.request({ t: 'send', conv: 'dm:alice:bob', cmid: 'b-1', dseq: 1, body: { text: 'still here' } });
    expect(bystander).toMatchObject({ t: 'ack', seq: 1 });
    const answers = await Promise.all(flips.slice(0, -1));
    expect(answers.every((a) => a.t === 'error' && a['code'] === 'bad_request')).toBe(true);
    // Only the last copy is held (at 6): dseqs 4 and 5 let it in.
    expect(await send(alice, 'g:team', 'c-gap', 4)).toMatchObject({ t: 'ack', seq: 5 });
    expect(await send(alice, 'g:team', 'c-gap2', 5)).toMatchObject({ t: 'ack', seq: 6 });
    expect(await flips.at(-1)).toMatchObject({ t: 'ack', cmid: 'flip', dseq: 6, seq: 7 });
  });

  it('never stores a cmid twice, even when a client reuses a stored cmid with a new dseq', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    const original = await send(alice, 'g:team', 'c-1', 1);
    await send(alice, 'g:team', 'c-2', 2);
    // a restarted server has c-1 only in the store, not in memory
    const dataDir = t.dataDir;
    await t.server.close();
    t = await startTestServer({ dataDir });
    const again = await t.connect('alice');
    await send(again, 'g:team', 'c-3', 3);
    // c-1 lies inside the range of the lane's stored cmids, so it is looked up before it gets a seq
    expect(await send(again, 'g:team', 'c-1', 4)).toMatchObject({ t: 'ack', seq: original['seq'], mid: original['mid'], dseq: 1 });
    expect(await send(again, 'g:team', 'c-1', 4)).toMatchObject({ t: 'ack', seq: original['seq'], mid: original['mid'], dseq: 1 });
    expect(await send(again, 'g:team', 'c-5', 4)).toMatchObject({ t: 'ack', seq: 5 });
    const { msgs } = await again.syncAll('g:team');
    expect(msgs.map((m) => m.cmid ?? null)).toEqual([null, 'c-1', 'c-2', 'c-3', 'c-5']);
  });

  it('refuses a dseq already taken by another cmid with bad_request', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    await send(alice, 'g:team', 'c-1', 1);
    const reply = await send(alice, 'g:team', 'other', 1);
    expect(reply).toMatchObject({ t: 'error', code: 'bad_request' });
  });

  it('sends to a DM implicitly and only between its two users', async () => {
    const alice = await t.connect('alice');
    const bob = await t.connect('bob');
    const mallory = await t.connect('mallory');
    expect(await send(alice, 'dm:alice:bob', 'c-1', 1)).toMatchObject({ t: 'ack', seq: 1 });
    expect((await bob.waitForPushes(1))[0]).toMatchObject({ conv: 'dm:alice:bob', seq: 1, from: 'alice' });
    expect(await send(mallory, 'dm:alice:bob', 'x', 1)).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await mallory.request({ t: 'sync', conv: 'dm:alice:bob', after: 0 })).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await alice.request({ t: 'members', conv: 'dm:alice:bob', add: ['mallory'] })).toMatchObject({ t: 'error', code: 'bad_request' });
    // a DM nobody wrote to yet is an empty log, not an error
    expect(await alice.request({ t: 'sync', conv: 'dm:alice:zed', after: 0 })).toMatchObject({ t: 'batch', msgs: [], last: 0 });
  });
});

describe('sync and convs', () => {
  it('pages the log ascending and gapless, at most limit entries, with last', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    for (let i = 1; i <= 25; i++) await send(alice, 'g:team', `c-${i}`, i);
    const page = await alice.request({ t: 'sync', conv: 'g:team', after: 3, limit: 10 });
    expect(page.t).toBe('batch');
    expect((page['msgs'] as MsgFrame[]).map((m) => m.seq)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(page['last']).toBe(26);
    expect((page['msgs'] as MsgFrame[])[0]).not.toHaveProperty('t');
    const all = await alice.syncAll('g:team', 0, 7);
    expect(all.msgs.map((m) => m.seq)).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    const deflt = await alice.request({ t: 'sync', conv: 'g:team', after: 0 });
    expect((deflt['msgs'] as unknown[]).length).toBe(26);
  });

  it('lists the caller’s conversations, most recent activity first', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:one', members: ['bob'] });
    await alice.request({ t: 'create', conv: 'g:two', members: [] });
    await send(alice, 'dm:alice:bob', 'd1', 1);
    await new Promise((r) => setTimeout(r, 5));
    await send(alice, 'g:one', 'c1', 1);
    const reply = await alice.request({ t: 'convs' });
    expect(reply.t).toBe('convs');
    const convs = reply['convs'] as { conv: string; last: number; ts: number }[];
    expect(convs.map((c) => c.conv)).toEqual(['g:one', 'dm:alice:bob', 'g:two']);
    expect(convs[0]).toMatchObject({ conv: 'g:one', last: 2 });
    const bob = await t.connect('bob');
    const bobs = (await bob.request({ t: 'convs' }))['convs'] as { conv: string }[];
    expect(bobs.map((c) => c.conv).sort()).toEqual(['dm:alice:bob', 'g:one']);
  });
});

describe('membership', () => {
  it('takes effect at the seq of its system entry: a removed member gets and reads nothing after it', async () => {
    const alice = await t.connect('alice');
    const carol = await t.connect('carol');
    await alice.request({ t: 'create', conv: 'g:team', members: ['carol'] });
    await send(alice, 'g:team', 'before', 1);
    const removal = await alice.request({ t: 'members', conv: 'g:team', remove: ['carol'], add: ['dave'] });
    expect(removal).toMatchObject({ t: 'ok', seq: 3 });
    await send(alice, 'g:team', 'after', 2);

    await carol.waitForPushes(3);
    await new Promise((r) => setTimeout(r, 100));
    expect(carol.pushes.map((p) => p.seq)).toEqual([1, 2, 3]);
    expect(carol.pushes[2]).toMatchObject({ kind: 'system', body: { op: 'members', add: ['dave'], remove: ['carol'] } });
    const carolRead = await carol.syncAll('g:team');
    expect(carolRead.msgs.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(carolRead.last).toBe(3);
    expect(await send(carol, 'g:team', 'sneak', 1)).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await carol.request({ t: 'members', conv: 'g:team', add: ['carol'] })).toMatchObject({ t: 'error', code: 'forbidden' });
    const carolConvs = (await carol.request({ t: 'convs' }))['convs'];
    expect(carolConvs).toEqual([expect.objectContaining({ conv: 'g:team', last: 3, until: 3 })]);

    // dave reads from the entry that added him on
    const dave = await t.connect('dave');
    const daveRead = await dave.syncAll('g:team');
    expect(daveRead.msgs.map((m) => m.seq)).toEqual([3, 4]);
  });

  it('answers a change that changes nothing with the current seq and writes no entry', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: ['bob'] });
    expect(await alice.request({ t: 'members', conv: 'g:team', add: ['bob'], remove: ['zed'] })).toMatchObject({ t: 'ok', seq: 1 });
    expect(await alice.request({ t: 'members', conv: 'g:team', add: ['x'], remove: ['x'] })).toMatchObject({ t: 'error', code: 'bad_request' });
    expect(await alice.request({ t: 'members', conv: 'g:team' })).toMatchObject({ t: 'error', code: 'bad_request' });
  });
});

describe('errors', () => {
  it('answers not_found and forbidden for unknown and foreign conversations', async () => {
    const alice = await t.connect('alice');
    const bob = await t.connect('bob');
    await alice.request({ t: 'create', conv: 'g:private', members: [] });
    expect(await send(bob, 'g:nope', 'c', 1)).toMatchObject({ t: 'error', code: 'not_found' });
    expect(await bob.request({ t: 'sync', conv: 'g:nope', after: 0 })).toMatchObject({ t: 'error', code: 'not_found' });
    expect(await bob.request({ t: 'members', conv: 'g:nope', add: ['bob'] })).toMatchObject({ t: 'error', code: 'not_found' });
    expect(await send(bob, 'g:private', 'c', 1)).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await bob.request({ t: 'sync', conv: 'g:private', after: 0 })).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await bob.request({ t: 'members', conv: 'g:private', add: ['bob'] })).toMatchObject({ t: 'error', code: 'forbidden' });
  });

  it('answers malformed frames with bad_request and too_large, and keeps serving', async () => {
    const alice = await t.connect('alice');
    await alice.request({ t: 'create', conv: 'g:team', members: [] });
    alice.sendRaw('{not json');
    alice.sendRaw('[1]');
    expect(await alice.request({ t: 'dance' })).toMatchObject({ t: 'error', code: 'bad_request' });
    expect(await alice.request({ t: 'send', conv: 'g:team', cmid: 'c', dseq: 'one', body: 1 })).toMatchObject({ t: 'error', code: 'bad_request' });
    expect(await alice.request({ t: 'sync', conv: 'room', after: 0 })).toMatchObject({ t: 'error', code: 'bad_request' });
    const big = 'x'.repeat(70_000);
    expect(await send(alice, 'g:team', 'big', 1, big)).toMatchObject({ t: 'error', code: 'too_large' });
    expect(await alice.request({ t: 'convs', pad: 'y'.repeat(300_000) })).toMatchObject({ t: 'error', code: 'too_large' });
    expect(alice.unsolicited.filter((f) => f.t === 'error').map((f) => f['code'])).toEqual(['bad_request', 'bad_request']);
    expect(await send(alice, 'g:team', 'fine', 1)).toMatchObject({ t: 'ack', seq: 2 });
  });
});
