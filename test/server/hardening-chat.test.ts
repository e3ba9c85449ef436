/**
 * Hostile chat-state frames (edit, delete, react, read, info, typing, convs since,
 * sync before) against a real `sequent-server serve` process: each is refused or
 * answered as docs/errors.md says, nothing it should not do is stored, and a
 * bystander keeps being served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAs, expectBystanderServed, startHostileServer, type HostileServer } from '../support/hostile.js';
import type { WireClient } from '../support/wire.js';

const deep = (depth: number, leaf: unknown = 0): string => '['.repeat(depth) + JSON.stringify(leaf) + ']'.repeat(depth);

let server: HostileServer;
let mallory: WireClient;
let zed: WireClient;
const conv = 'dm:mallory:zed';
let cmids = 0;
const cmid = (): string => `h${++cmids}`;
let dseq = 0;

/** A send from mallory's device: a refused one takes no dseq, so the counter moves only on an ack. */
async function malloryRequest(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
  const reply = await mallory.request({ t: 'send', conv, cmid: cmid(), dseq: dseq + 1, ...frame });
  if (reply['t'] === 'ack') dseq += 1;
  return reply;
}

beforeAll(async () => {
  // A low rate limit, so the typing flood below crosses it with a few thousand frames.
  server = await startHostileServer(['--rate', '200', '--rate-burst', '400']);
  mallory = await connectAs(server, 'mallory');
  zed = await connectAs(server, 'zed');
  expect(await malloryRequest({ body: 'one' })).toMatchObject({ t: 'ack', seq: 1 });
  expect(await zed.request({ t: 'send', conv, cmid: 'z1', dseq: 1, body: "zed's" })).toMatchObject({ t: 'ack', seq: 2 });
});
afterAll(async () => {
  mallory.close();
  zed.close();
  await server.stop();
});

describe('chat-state frames no client can abuse', () => {
  it('reactions with a huge, empty, nested or deep key, or a deep body, are bad_request and store nothing', async () => {
    const bad: unknown[] = [
      { key: 'x'.repeat(10_000), on: true },
      { key: '', on: true },
      { key: { nested: 'x' }, on: true },
      { key: 'ok', on: 'yes' },
      { key: 'ok' },
    ];
    for (const body of bad) {
      expect(await malloryRequest({ kind: 'react', ref: 2, body })).toMatchObject({ t: 'error', code: 'bad_request' });
    }
    mallory.sendRaw(`{"t":"send","id":900,"conv":"${conv}","cmid":"deep","dseq":${dseq + 1},"kind":"react","ref":2,"body":${deep(5000)}}`);
    await expect.poll(() => mallory.unsolicited.find((f) => f['id'] === 900)).toMatchObject({ t: 'error', code: 'bad_request' });
    expect((await mallory.syncAll(conv)).msgs.map((m) => m.seq)).toEqual([1, 2]);
    await expectBystanderServed(server);
  });

  it("edit or delete of another user's message is forbidden; of a future, zero or out-of-range seq it is refused", async () => {
    expect(await malloryRequest({ kind: 'edit', ref: 2, body: 'mine now' })).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await malloryRequest({ kind: 'delete', ref: 2, body: null })).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await malloryRequest({ kind: 'edit', ref: 1_000_000, body: 'x' })).toMatchObject({ t: 'error', code: 'not_found' });
    expect(await malloryRequest({ kind: 'delete', ref: Number.MAX_SAFE_INTEGER, body: null })).toMatchObject({ t: 'error', code: 'not_found' });
    for (const ref of [0, -1, 1.5, Number.MAX_SAFE_INTEGER + 2, 'x']) {
      expect(await malloryRequest({ kind: 'edit', ref, body: 'x' })).toMatchObject({ t: 'error', code: 'bad_request' });
    }
    expect(await malloryRequest({ kind: 'msg', ref: 1, body: 'x' })).toMatchObject({ t: 'error', code: 'bad_request' });
    const log = (await zed.syncAll(conv)).msgs;
    expect(log.map((m) => [m.seq, m.body])).toEqual([[1, 'one'], [2, "zed's"]]);
    await expectBystanderServed(server);
  });

  it('read ahead of the head is bad_request, backwards keeps the position, in a stranger\'s conversation forbidden', async () => {
    expect(await mallory.request({ t: 'read', conv, seq: 1_000_000 })).toMatchObject({ t: 'error', code: 'bad_request' });
    expect(await mallory.request({ t: 'read', conv, seq: 2 })).toMatchObject({ t: 'ok', conv, seq: 2 });
    expect(await mallory.request({ t: 'read', conv, seq: 1 })).toMatchObject({ t: 'ok', conv, seq: 2 });
    expect(await mallory.request({ t: 'read', conv: 'dm:alice:bob', seq: 0 })).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await mallory.request({ t: 'read', conv, seq: -1 })).toMatchObject({ t: 'error', code: 'bad_request' });
    await expectBystanderServed(server);
  });

  it("info of a stranger's conversation is forbidden, of a missing group not_found", async () => {
    expect(await mallory.request({ t: 'info', conv: 'dm:alice:bob' })).toMatchObject({ t: 'error', code: 'forbidden' });
    expect(await mallory.request({ t: 'info', conv: 'g:nobody-made-this' })).toMatchObject({ t: 'error', code: 'not_found' });
    expect(await mallory.request({ t: 'info', conv })).toMatchObject({ t: 'info', conv });
    await expectBystanderServed(server);
  });

  it('convs since a version the server never issued is the full list; a negative or absurd limit is bad_request', async () => {
    const full = await mallory.request({ t: 'convs', since: Number.MAX_SAFE_INTEGER });
    expect(full).toMatchObject({ t: 'convs', full: true });
    expect((full['convs'] as { conv: string }[]).map((row) => row.conv)).toContain(conv);
    expect(await mallory.request({ t: 'convs', since: -1 })).toMatchObject({ t: 'error', code: 'bad_request' });
    expect(await mallory.request({ t: 'convs', since: 0, limit: 1_000_000 })).toMatchObject({ t: 'error', code: 'bad_request' });
    await expectBystanderServed(server);
  });

  it('sync before: zero, both after and before, or an absurd limit are bad_request; a huge before reads the newest', async () => {
    expect(await mallory.request({ t: 'sync', conv, before: 0 })).toMatchObject({ t: 'error', code: 'bad_request' });
    expect(await mallory.request({ t: 'sync', conv, before: 2, after: 0 })).toMatchObject({ t: 'error', code: 'bad_request' });
    expect(await mallory.request({ t: 'sync', conv, before: 2, limit: 1_000_000 })).toMatchObject({ t: 'error', code: 'bad_request' });
    const newest = await mallory.request({ t: 'sync', conv, before: Number.MAX_SAFE_INTEGER, limit: 1 });
    expect(newest).toMatchObject({ t: 'batch', conv });
    expect((newest['msgs'] as { seq: number }[]).map((m) => m.seq)).toEqual([2]);
    await expectBystanderServed(server);
  });

  it('a typing flood reaches the other member at most about once a second, and past the rate limit ends in rate_limited, then the close', async () => {
    const flooder = await connectAs(server, 'mallory', 'typist');
    const before = zed.unsolicited.filter((f) => f['t'] === 'typing').length;
    const started = Date.now();
    for (let i = 0; i < 3000; i++) flooder.sendRaw(JSON.stringify({ t: 'typing', id: 10_000 + i, conv }));
    await expect.poll(() => flooder.unsolicited.some((f) => f['t'] === 'error' && f['code'] === 'rate_limited'), { timeout: 10_000 }).toBe(true);
    expect((await flooder.closed).code).toBe(4400);
    const seconds = (Date.now() - started) / 1000;
    const pushes = zed.unsolicited.filter((f) => f['t'] === 'typing').length - before;
    expect(pushes).toBeGreaterThanOrEqual(1);
    expect(pushes).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    await expectBystanderServed(server);
  });
});
