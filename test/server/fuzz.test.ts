/**
 * Arbitrary input never crashes the server: random text and random frames of
 * every type (fields of any JSON type) each get an answer or, past maxBadFrames,
 * a 4400 close — and the server keeps serving everyone else.
 */
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestServer, type TestServer, WireClient } from '../support/wire.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ maxBadFrames: 1_000_000, ratePerSecond: 1_000_000, rateBurst: 1_000_000, holdMs: 100 });
});
afterAll(async () => {
  await t.stop();
});

const TYPES = ['hello', 'create', 'members', 'send', 'sync', 'convs', 'ping', 'read', 'info', 'typing', 'msg', 'ack', 'nope'];
const anyFrame = fc.oneof(
  fc.string(),
  fc.json(),
  fc.record(
    {
      t: fc.constantFrom(...TYPES),
      id: fc.oneof(fc.nat(), fc.string(), fc.constant(-1)),
      conv: fc.oneof(fc.constantFrom('g:fuzz', 'dm:alice:bob', 'dm:alice:alice', 'g:', 'x:y'), fc.string(), fc.integer()),
      cmid: fc.oneof(fc.string({ maxLength: 80 }), fc.integer()),
      dseq: fc.oneof(fc.integer({ min: -2, max: 5 }), fc.double(), fc.string()),
      after: fc.oneof(fc.integer({ min: -5, max: 50 }), fc.string()),
      // The chat state's fields: send kinds and refs, sync before, read seqs, convs since.
      kind: fc.oneof(fc.constantFrom('msg', 'edit', 'delete', 'react', 'system', 'nope'), fc.jsonValue()),
      ref: fc.oneof(fc.integer({ min: -2, max: 20 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.double(), fc.string()),
      before: fc.oneof(fc.integer({ min: -2, max: 50 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.string()),
      seq: fc.oneof(fc.integer({ min: -2, max: 50 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.double()),
      since: fc.oneof(fc.integer({ min: -2, max: 50 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.string()),
      private: fc.oneof(fc.boolean(), fc.jsonValue()),
      limit: fc.oneof(fc.integer({ min: -5, max: 5000 }), fc.constant(null)),
      members: fc.oneof(fc.array(fc.string({ maxLength: 70 }), { maxLength: 4 }), fc.string()),
      add: fc.array(fc.constantFrom('bob', 'carol', '', 'a b'), { maxLength: 3 }),
      remove: fc.array(fc.constantFrom('bob', 'alice', 'zed'), { maxLength: 3 }),
      body: fc.oneof(fc.jsonValue(), fc.record({ key: fc.oneof(fc.string({ maxLength: 40 }), fc.jsonValue()), on: fc.oneof(fc.boolean(), fc.jsonValue()) })),
      proto: fc.oneof(fc.constant(1), fc.integer()),
      token: fc.string(),
    },
    { requiredKeys: ['t'] },
  ).map((frame) => JSON.stringify(frame)),
);

it('answers every random frame without crashing, and keeps serving', async () => {
  const alice = await t.connect('alice', 'fuzz');
  const frames = fc.sample(anyFrame, { numRuns: 400, seed: 20261123 });
  for (const text of frames) alice.sendRaw(text);
  // Everything before it was handled once the ping is answered (frames of one connection are handled in order).
  expect(await alice.request({ t: 'ping' }, 15_000)).toMatchObject({ t: 'pong' });
  // One answer per frame: sends held back for a missing dseq answer out_of_order after holdMs.
  const deadline = Date.now() + 5000;
  while (alice.unsolicited.length < frames.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(alice.unsolicited.length).toBe(frames.length);
  expect(alice.unsolicited.filter((f) => f.t === 'error' && f['code'] === 'internal')).toEqual([]);

  const bob = await t.connect('bob');
  expect(await bob.request({ t: 'convs' })).toMatchObject({ t: 'convs' });
  const again = await t.connect('alice', 'other');
  expect(await again.request({ t: 'sync', conv: 'dm:alice:bob', after: 0, limit: 10 })).toMatchObject({ t: 'batch' });
});

it('survives garbage on fresh connections: each is closed or answered, never the process', async () => {
  const frames = fc.sample(anyFrame, { numRuns: 60, seed: 7 });
  for (const text of frames) {
    const client = await WireClient.open(t.server.url);
    client.sendRaw(text);
    client.sendRaw(JSON.stringify({ t: 'ping', id: 99 }));
    const closed = await Promise.race([client.closed, new Promise((resolve) => setTimeout(() => resolve('open'), 200))]);
    if (closed === 'open') client.close();
  }
  const carol = await t.connect('carol');
  expect(await carol.request({ t: 'ping' })).toMatchObject({ t: 'pong' });
});

/** JSON text of any nesting depth up to `max`, arrays and objects mixed: what recursion-based code chokes on. */
const deepJson = (max: number) =>
  fc.tuple(fc.integer({ min: 0, max }), fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), fc.jsonValue({ maxDepth: 1 })).map(([depth, kinds, leaf]) => {
    let open = '';
    let close = '';
    for (let i = 0; i < depth; i++) {
      const object = kinds[i % kinds.length]!;
      open += object ? '{"k":' : '[';
      close = (object ? '}' : ']') + close;
    }
    return open + JSON.stringify(leaf) + close;
  });

const VALID: Record<string, unknown>[] = [
  { t: 'send', conv: 'dm:alice:bob', cmid: 'm', dseq: 1, body: { text: 'hi' }, ctx: { seen: 1 } },
  { t: 'sync', conv: 'dm:alice:bob', after: 0, limit: 10 },
  { t: 'create', conv: 'g:mut', members: ['bob'] },
  { t: 'members', conv: 'g:mut', add: ['carol'], remove: [] },
  { t: 'convs' },
  { t: 'ping' },
];

/** A valid frame with one field (or a new one) replaced by JSON of any depth and shape. */
const mutatedFrame = fc
  .tuple(fc.constantFrom(...VALID), fc.constantFrom('t', 'conv', 'cmid', 'dseq', 'body', 'ctx', 'after', 'limit', 'members', 'add', 'extra'), fc.oneof(deepJson(3000), fc.json()))
  .map(([frame, key, value]) => {
    const text = JSON.stringify(frame);
    return `${text.slice(0, -1)},${JSON.stringify(key)}:${value}}`.replace(/^\{,/, '{');
  });

const corpusDir = new URL('../fixtures/frames/', import.meta.url);
const corpus = readdirSync(corpusDir)
  .filter((name) => name.endsWith('.json'))
  .map((name) => ({ name, text: readFileSync(new URL(name, corpusDir), 'utf8') }));

it('answers every deeply nested, mutated or once-fatal frame exactly once, never internal, and keeps serving', async () => {
  expect(corpus.length).toBeGreaterThanOrEqual(8);
  const mallory = await t.connect('mallory', 'deep');
  const frames = [...corpus.map((c) => c.text), ...fc.sample(fc.oneof(deepJson(20_000), mutatedFrame), { numRuns: 300, seed: 20261201 })];
  for (const text of frames) mallory.sendRaw(text);
  const pong = await mallory.request({ t: 'ping', id: 999_999 }, 30_000);
  expect(pong, JSON.stringify(pong)).toMatchObject({ t: 'pong' });
  const deadline = Date.now() + 5000;
  while (mallory.unsolicited.length < frames.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(mallory.unsolicited.length).toBe(frames.length);
  expect(mallory.unsolicited.filter((f) => f.t === 'error' && f['code'] === 'internal')).toEqual([]);
  const bob = await t.connect('bob', 'after-deep');
  expect(await bob.request({ t: 'send', conv: 'dm:bob:carol', cmid: 'after', dseq: 1, body: 'still here' })).toMatchObject({ t: 'ack' });
});

it('closes a connection whose first frame is any once-fatal frame with 4401 (or answers its hello), and keeps serving', async () => {
  for (const { name, text } of corpus) {
    const client = await WireClient.open(t.server.url);
    client.sendRaw(text);
    const { code } = await client.closed;
    expect(code, name).toBe(4401);
  }
  const carol = await t.connect('carol', 'after-corpus');
  expect(await carol.request({ t: 'ping' })).toMatchObject({ t: 'pong' });
});
