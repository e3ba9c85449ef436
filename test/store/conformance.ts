/**
 * The one conformance suite every Store adapter runs. A factory hands each test
 * a fresh, empty store (and, where the adapter is durable, a way to open the
 * same data again); the suite checks every method of the contract and every
 * rule by which commit() refuses a batch, writing nothing.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Entry } from '../../packages/client/src/protocol/index.js';
import type { CommitBatch, MembershipChange, Store } from '../../packages/server/src/store/index.js';
import { entrySize } from '../../packages/server/src/store/rows.js';
import { describeChatStateConformance } from './conformance-chat.js';
import { describeReadJsonConformance } from './conformance-json.js';

export interface StoreFixture {
  /** A fresh store on empty data; the suite calls init(). */
  store: Store;
  /** Opens the same data again (after the suite closed `store`); absent for non-durable stores. */
  reopen?: () => Promise<Store>;
  /** Opens a second live handle on the same data; absent when the adapter cannot share its data. */
  another?: () => Promise<Store>;
  /** Drops the data (the suite has closed every store by then). */
  dispose(): Promise<void>;
}

export type StoreFactory = () => Promise<StoreFixture>;

// ---- entry builders --------------------------------------------------------

let midCounter = 7_000_000_000_000_000_000n; // beyond 2^53: mids must never pass through a JS number

export function nextMid(): string {
  midCounter += 1n;
  return midCounter.toString();
}

export function msg(conv: string, seq: number, from: string, dev: string, cmid: string, dseq: number, body: unknown, ts = 1_700_000_000_000 + seq): Entry {
  return { conv, seq, kind: 'msg', mid: nextMid(), ts, from, dev, cmid, dseq, body };
}

export function system(conv: string, seq: number, from: string, body: unknown, ts = 1_700_000_000_000 + seq): Entry {
  return { conv, seq, kind: 'system', mid: nextMid(), ts, from, dev: 'server', body };
}

const add = (conv: string, user: string, seq: number): MembershipChange => ({ op: 'add', conv, user, seq });
const remove = (conv: string, user: string, seq: number): MembershipChange => ({ op: 'remove', conv, user, seq });
const batch = (b: Partial<CommitBatch>): CommitBatch => ({ newConvs: b.newConvs ?? [], entries: b.entries ?? [], memberships: b.memberships ?? [] });

/** A group conversation created by `owner` with `members`, as the server commits it: seq 1 is the system entry. */
function createGroup(conv: string, owner: string, members: string[], ts?: number): CommitBatch {
  const everyone = [owner, ...members];
  return batch({
    newConvs: [{ conv, kind: 'group' }],
    entries: [system(conv, 1, owner, { op: 'create', members }, ts)],
    memberships: everyone.map((u) => add(conv, u, 1)),
  });
}

async function readAll(store: Store, conv: string): Promise<Entry[]> {
  return store.read(conv, 0, Number.MAX_SAFE_INTEGER, 1_000_000);
}

/** Everything observable about some conversations and users: a refused commit must leave it unchanged. */
async function snapshot(store: Store, convs: string[], users: string[]) {
  return {
    convs: await Promise.all(convs.map((c) => store.getConv(c))),
    logs: await Promise.all(convs.map((c) => readAll(store, c))),
    members: await Promise.all(convs.map((c) => store.getMemberships(c))),
    listings: await Promise.all(users.map((u) => store.listConvs(u))),
  };
}

export interface ConformanceOptions {
  /** The adapter says it takes commits before earlier ones settle (Store.pipelinesCommits). */
  pipelined: boolean;
}

export function describeStoreConformance(name: string, factory: StoreFactory, options: ConformanceOptions): void {
  describe(`Store conformance: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;
    const open: Store[] = [];

    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
      open.push(store);
      await store.init();
    });

    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
      await fixture.dispose();
    });

    const reopen = async (): Promise<Store> => {
      await store.close();
      store = await fixture.reopen!();
      open.push(store);
      await store.init();
      return store;
    };

    /** Commits `bad`, expects a conflict, and checks that nothing observable changed. */
    const expectRefused = async (bad: CommitBatch, convs: string[], users: string[] = ['alice', 'bob', 'carol']) => {
      const before = await snapshot(store, convs, users);
      await expect(store.commit(bad)).rejects.toMatchObject({ name: 'StoreConflictError' });
      expect(await snapshot(store, convs, users)).toEqual(before);
    };

    describe('conversations and entries', () => {
      it('init is idempotent and keeps data', async () => {
        await store.commit(createGroup('g:a', 'alice', ['bob']));
        await store.init();
        expect(await store.getConv('g:a')).toEqual({ conv: 'g:a', kind: 'group', last: 1, lastTs: 1_700_000_000_001 });
      });

      it('recentConvs lists conversations active since a ts, newest first, never an empty one', async () => {
        await store.commit(createGroup('g:old', 'alice', ['bob'], 1000));
        await store.commit(createGroup('g:new', 'alice', ['bob'], 3000));
        await store.commit(createGroup('g:mid', 'alice', ['bob'], 2000));
        await store.commit(batch({ newConvs: [{ conv: 'dm:alice:bob', kind: 'dm' }] }));
        expect((await store.recentConvs(1500, 10)).map((r) => r.conv)).toEqual(['g:new', 'g:mid']);
        expect((await store.recentConvs(0, 2)).map((r) => [r.conv, r.last, r.lastTs])).toEqual([['g:new', 1, 3000], ['g:mid', 1, 2000]]);
      });

      it('getConv is null for an unknown conversation, and a new one starts empty', async () => {
        expect(await store.getConv('g:nope')).toBeNull();
        await store.commit(batch({ newConvs: [{ conv: 'dm:alice:bob', kind: 'dm' }] }));
        expect(await store.getConv('dm:alice:bob')).toEqual({ conv: 'dm:alice:bob', kind: 'dm', last: 0, lastTs: 0 });
        expect(await readAll(store, 'dm:alice:bob')).toEqual([]);
      });

      it('commits entries, advances last and lastTs, and reads them back exactly', async () => {
        const created = createGroup('g:a', 'alice', ['bob'], 1000);
        await store.commit(created);
        const m2 = msg('g:a', 2, 'alice', 'phone', 'c1', 1, { text: 'hi', n: 1.5 }, 2000);
        const m3 = { ...msg('g:a', 3, 'bob', 'web', 'c1', 1, 'plain', 3000), ctx: { seen: 2 } };
        await store.commit(batch({ entries: [m2, m3] }));
        expect(await store.getConv('g:a')).toEqual({ conv: 'g:a', kind: 'group', last: 3, lastTs: 3000 });
        const log = await readAll(store, 'g:a');
        expect(log).toEqual([created.entries[0], m2, m3]);
        // a system entry carries no cmid/dseq/ctx keys at all, not nulls
        expect(Object.keys(log[0]!).sort()).toEqual(['body', 'conv', 'dev', 'from', 'kind', 'mid', 'seq', 'ts']);
        expect('ctx' in log[1]!).toBe(false);
      });

      it('read honours afterSeq, untilSeq and limit, ascending', async () => {
        await store.commit(createGroup('g:r', 'alice', []));
        const entries = Array.from({ length: 9 }, (_, i) => msg('g:r', i + 2, 'alice', 'd', `c${i}`, i + 1, i));
        await store.commit(batch({ entries }));
        const seqs = async (after: number, until: number, limit: number) => (await store.read('g:r', after, until, limit)).map((e) => e.seq);
        expect(await seqs(0, 10, 100)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect(await seqs(3, 10, 100)).toEqual([4, 5, 6, 7, 8, 9, 10]);
        expect(await seqs(3, 6, 100)).toEqual([4, 5, 6]);
        expect(await seqs(3, 10, 2)).toEqual([4, 5]);
        expect(await seqs(0, 1_000, 1)).toEqual([1]);
        expect(await seqs(10, 20, 5)).toEqual([]);
        expect(await seqs(5, 5, 5)).toEqual([]);
        expect(await seqs(0, 10, 0)).toEqual([]);
        expect(await store.read('g:unknown', 0, 10, 10)).toEqual([]);
      });

      it('read stops short of limit rather than pass maxBytes (by entrySize), but always returns the first entry', async () => {
        await store.commit(createGroup('g:bytes', 'alice', []));
        // Each body is 1,000 characters of JSON text, so each entry counts 1,128 bytes.
        const entries = Array.from({ length: 10 }, (_, i) => msg('g:bytes', i + 2, 'alice', 'd', `c${i}`, i + 1, 'x'.repeat(998)));
        await store.commit(batch({ entries }));
        const seqs = async (after: number, maxBytes: number) => (await store.read('g:bytes', after, 100, 100, maxBytes)).map((e) => e.seq);
        expect(await seqs(1, 3 * 1128)).toEqual([2, 3, 4]);
        expect(await seqs(1, 3 * 1128 - 1)).toEqual([2, 3]);
        expect(await seqs(4, 10)).toEqual([5]);
        expect(await seqs(1, 1_000_000)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        expect(entrySize(1000, 0)).toBe(1128);
      });

      it('keeps a 64-bit mid exact as a decimal string', async () => {
        await store.commit(createGroup('g:m', 'alice', []));
        const big = ['9007199254740993', '18446744073709551615', '12345678901234567890123'];
        const entries = big.map((mid, i) => ({ ...msg('g:m', i + 2, 'alice', 'd', `c${i}`, i + 1, null), mid }));
        await store.commit(batch({ entries }));
        expect((await store.read('g:m', 1, 10, 10)).map((e) => e.mid)).toEqual(big);
        expect((await store.findByCmid('g:m', 'alice', 'd', 'c1'))?.mid).toBe('18446744073709551615');
      });

      it('round-trips any JSON body and ctx exactly', async () => {
        await store.commit(createGroup('g:j', 'alice', []));
        let seq = 1;
        await fc.assert(
          fc.asyncProperty(fc.array(fc.jsonValue(), { minLength: 1, maxLength: 4 }), fc.option(fc.nat(), { nil: undefined }), async (bodies, seen) => {
            const entries = bodies.map((body) => {
              seq++;
              const e = msg('g:j', seq, 'alice', 'd', `c${seq}`, seq, body);
              return seen === undefined ? e : { ...e, ctx: { seen } };
            });
            // Every other batch brings its bodies' JSON text, as the server does; the entries read back must not differ.
            const bodyJson = seq % 2 === 0 ? entries.map((e) => JSON.stringify(e.body)) : undefined;
            await store.commit({ ...batch({ entries }), ...(bodyJson ? { bodyJson } : {}) });
            const back = await store.read('g:j', entries[0]!.seq - 1, seq, 100);
            // what the wire carries is JSON: compare with the JSON reading of what went in (-0 → 0)
            expect(back).toEqual(JSON.parse(JSON.stringify(entries)));
          }),
          { numRuns: 60 },
        );
      });

      it('round-trips unusual strings: any cmid, unicode names', async () => {
        const conv = 'g:ünï\u{1F600}';
        const odd = ['a\u0000b', '\ud800', '\udc00x', '\u0001', '\u0001"\\"', 'quote\'"\\', 'line\nbreak', '\u2028', '𝄞'.repeat(32)];
        await store.commit(createGroup(conv, 'ålice', []));
        const entries = odd.map((s, i) => msg(conv, i + 2, 'ålice', 'dévice', s, i + 1, { s, [s]: s }));
        await store.commit(batch({ entries }));
        const back = await readAll(store, conv);
        expect(back.slice(1)).toEqual(JSON.parse(JSON.stringify(entries)));
        expect(back.slice(1).map((e) => e.cmid)).toEqual(odd);
        // every one of them is its own dedup key: none collapses into another
        for (const [i, s] of odd.entries()) expect((await store.findByCmid(conv, 'ålice', 'dévice', s))?.seq).toBe(i + 2);
        expect(await store.findByCmid(conv, 'ålice', 'dévice', '\ud801')).toBeNull();
        expect(await store.findByCmid(conv, 'ålice', 'dévice', '\ufffd')).toBeNull();
      });

      it('commits one batch across many conversations', async () => {
        await store.commit(batch({ ...createGroup('g:x', 'alice', []), newConvs: [{ conv: 'g:x', kind: 'group' }, { conv: 'g:y', kind: 'group' }] }));
        await store.commit(
          batch({
            entries: [msg('g:y', 1, 'bob', 'd', 'a', 1, 1), msg('g:x', 2, 'bob', 'd', 'a', 1, 2), msg('g:y', 2, 'bob', 'd', 'b', 2, 3)],
          }),
        );
        expect((await readAll(store, 'g:x')).map((e) => e.body)).toEqual([{ op: 'create', members: [] }, 2]);
        expect((await readAll(store, 'g:y')).map((e) => e.body)).toEqual([1, 3]);
      });
    });

    describe('dedup and device order', () => {
      it('findByCmid finds the entry by (conv, user, device, cmid) only', async () => {
        await store.commit(createGroup('g:d', 'alice', ['bob']));
        await store.commit(createGroup('g:e', 'alice', ['bob']));
        const m = msg('g:d', 2, 'alice', 'phone', 'x1', 1, 'hello');
        await store.commit(batch({ entries: [m, msg('g:e', 2, 'alice', 'phone', 'x2', 1, 'other')] }));
        expect(await store.findByCmid('g:d', 'alice', 'phone', 'x1')).toEqual(m);
        expect(await store.findByCmid('g:d', 'alice', 'laptop', 'x1')).toBeNull();
        expect(await store.findByCmid('g:d', 'bob', 'phone', 'x1')).toBeNull();
        expect(await store.findByCmid('g:e', 'alice', 'phone', 'x1')).toBeNull();
        expect(await store.findByCmid('g:d', 'alice', 'phone', 'x2')).toBeNull();
      });

      it('a lane is the highest dseq per (conv, user, device), 0 when none, with the range of its printable-ASCII cmids', async () => {
        await store.commit(createGroup('g:q', 'alice', ['bob']));
        expect((await store.lane('g:q', 'alice', 'phone')).lastDseq).toBe(0);
        await store.commit(
          batch({
            entries: [
              msg('g:q', 2, 'alice', 'phone', 'a', 1, 0),
              msg('g:q', 3, 'alice', 'phone', 'b', 2, 0),
              msg('g:q', 4, 'alice', 'laptop', 'a', 7, 0),
              msg('g:q', 5, 'bob', 'phone', 'a', 3, 0),
              msg('g:q', 6, 'bob', 'phone', '\u00e9t\u00e9', 4, 0),
              msg('g:q', 7, 'bob', 'phone', '\u0000', 5, 0),
            ],
          }),
        );
        expect(await store.lane('g:q', 'alice', 'phone')).toEqual({ lastDseq: 2, minCmid: 'a', maxCmid: 'b' });
        // Cmids outside printable ASCII are left out of the range (they are always looked up).
        expect(await store.lane('g:q', 'bob', 'phone')).toEqual({ lastDseq: 5, minCmid: 'a', maxCmid: 'a' });
        expect(await store.lane('g:q', 'bob', 'laptop')).toEqual({ lastDseq: 0, minCmid: null, maxCmid: null });
        await store.commit(batch({ entries: [msg('g:q', 8, 'alice', 'phone', 'Z', 3, 0), msg('g:q', 9, 'alice', 'phone', 'c', 4, 0)] }));
        expect(await store.lane('g:q', 'alice', 'phone')).toEqual({ lastDseq: 4, minCmid: 'Z', maxCmid: 'c' });
        expect((await store.lane('g:q', 'alice', 'phone')).lastDseq).toBe(4);
        expect((await store.lane('g:q', 'alice', 'laptop')).lastDseq).toBe(7);
        expect((await store.lane('g:q', 'bob', 'laptop')).lastDseq).toBe(0);
        expect((await store.lane('g:other', 'alice', 'phone')).lastDseq).toBe(0);
      });
    });

    describe('memberships and listings', () => {
      it('add opens a stretch, remove closes it, a re-add opens a new one, oldest first', async () => {
        await store.commit(createGroup('g:m', 'alice', ['bob']));
        expect(await store.getMemberships('g:m')).toEqual([
          { conv: 'g:m', user: 'alice', fromSeq: 1, toSeq: null },
          { conv: 'g:m', user: 'bob', fromSeq: 1, toSeq: null },
        ]);
        await store.commit(batch({ entries: [system('g:m', 2, 'alice', { op: 'members', add: [], remove: ['bob'] })], memberships: [remove('g:m', 'bob', 2)] }));
        await store.commit(batch({ entries: [system('g:m', 3, 'alice', { op: 'members', add: ['bob', 'carol'], remove: [] })], memberships: [add('g:m', 'bob', 3), add('g:m', 'carol', 3)] }));
        expect(await store.getMemberships('g:m')).toEqual([
          { conv: 'g:m', user: 'alice', fromSeq: 1, toSeq: null },
          { conv: 'g:m', user: 'bob', fromSeq: 1, toSeq: 2 },
          { conv: 'g:m', user: 'bob', fromSeq: 3, toSeq: null },
          { conv: 'g:m', user: 'carol', fromSeq: 3, toSeq: null },
        ]);
        expect(await store.getMemberships('g:none')).toEqual([]);
      });

      it('applies several changes of one user in one batch in order', async () => {
        await store.commit(createGroup('g:o', 'alice', []));
        await store.commit(
          batch({
            entries: [system('g:o', 2, 'alice', 'add'), system('g:o', 3, 'alice', 'remove'), system('g:o', 4, 'alice', 'add')],
            memberships: [add('g:o', 'bob', 2), remove('g:o', 'bob', 3), add('g:o', 'bob', 4), remove('g:o', 'alice', 4)],
          }),
        );
        expect(await store.getMemberships('g:o')).toEqual([
          { conv: 'g:o', user: 'alice', fromSeq: 1, toSeq: 4 },
          { conv: 'g:o', user: 'bob', fromSeq: 2, toSeq: 3 },
          { conv: 'g:o', user: 'bob', fromSeq: 4, toSeq: null },
        ]);
      });

      it('listConvs gives the latest stretch per conversation, newest activity first, then by id', async () => {
        await store.commit(createGroup('g:b', 'alice', ['bob'], 500));
        await store.commit(createGroup('g:a', 'alice', ['bob'], 500));
        await store.commit(createGroup('g:c', 'alice', [], 100));
        await store.commit(
          batch({
            newConvs: [{ conv: 'dm:alice:bob', kind: 'dm' }],
            entries: [msg('dm:alice:bob', 1, 'bob', 'd', 'x', 1, 'hey', 900)],
            memberships: [add('dm:alice:bob', 'alice', 1), add('dm:alice:bob', 'bob', 1)],
          }),
        );
        await store.commit(batch({ entries: [system('g:b', 2, 'alice', 'rm', 600)], memberships: [remove('g:b', 'bob', 2)] }));
        await store.commit(batch({ entries: [system('g:b', 3, 'alice', 'add', 700)], memberships: [add('g:b', 'bob', 3)] }));
        await store.commit(batch({ entries: [system('g:a', 2, 'alice', 'rm', 800)], memberships: [remove('g:a', 'bob', 2)] }));
        expect(await store.listConvs('bob')).toEqual([
          // bob sent seq 1 of the DM, so has read it; a (re-)add starts reading just before itself.
          { conv: 'dm:alice:bob', last: 1, ts: 900, fromSeq: 1, toSeq: null, read: 1, unread: 0, version: expect.any(Number) },
          { conv: 'g:a', last: 2, ts: 800, fromSeq: 1, toSeq: 2, read: 0, unread: 0, version: expect.any(Number) },
          { conv: 'g:b', last: 3, ts: 700, fromSeq: 3, toSeq: null, read: 2, unread: 0, version: expect.any(Number) },
        ]);
        expect((await store.listConvs('alice')).map((l) => l.conv)).toEqual(['dm:alice:bob', 'g:a', 'g:b', 'g:c']);
        expect(await store.listConvs('nobody')).toEqual([]);
        expect((await store.listConvs('alice', 2)).map((l) => l.conv)).toEqual(['dm:alice:bob', 'g:a']);
      });

      it("listConvs shows a removed member its removal entry's time, never later activity", async () => {
        await store.commit(createGroup('g:left', 'alice', ['bob'], 100));
        await store.commit(createGroup('g:quiet', 'alice', ['bob'], 300));
        await store.commit(batch({ entries: [system('g:left', 2, 'alice', 'rm', 200)], memberships: [remove('g:left', 'bob', 2)] }));
        await store.commit(batch({ entries: [msg('g:left', 3, 'alice', 'd', 'later', 1, 'after bob left', 5000)] }));
        expect(await store.listConvs('bob')).toEqual([
          { conv: 'g:quiet', last: 1, ts: 300, fromSeq: 1, toSeq: null, read: 0, unread: 0, version: expect.any(Number) },
          // alice's message after bob left is not bob's to count
          { conv: 'g:left', last: 3, ts: 200, fromSeq: 1, toSeq: 2, read: 0, unread: 0, version: expect.any(Number) },
        ]);
        expect((await store.listConvs('alice')).map((l) => [l.conv, l.ts])).toEqual([['g:left', 5000], ['g:quiet', 300]]);
      });

      it('listConvs breaks ties in activity by conversation id', async () => {
        for (const conv of ['g:z', 'g:m', 'g:a']) await store.commit(createGroup(conv, 'alice', [], 42));
        expect((await store.listConvs('alice')).map((l) => l.conv)).toEqual(['g:a', 'g:m', 'g:z']);
      });
    });

    describeChatStateConformance({ store: () => store, get reopen() { return fixture?.reopen ? reopen : undefined; } });
    describeReadJsonConformance(() => store);

    describe('meta', () => {
      it('gets null for a missing key, sets and overwrites', async () => {
        expect(await store.getMeta('secret')).toBeNull();
        await store.setMeta('secret', 's1');
        await store.setMeta('other', '');
        expect(await store.getMeta('secret')).toBe('s1');
        await store.setMeta('secret', 's2');
        expect(await store.getMeta('secret')).toBe('s2');
        expect(await store.getMeta('other')).toBe('');
      });
    });

    describe('commit refuses the whole batch and writes nothing', () => {
      beforeEach(async () => {
        await store.commit(createGroup('g:f', 'alice', ['bob']));
        await store.commit(batch({ entries: [msg('g:f', 2, 'alice', 'phone', 'c1', 1, 'one')] }));
      });

      // Each bad batch also carries a valid new conversation and a valid entry elsewhere: they must not land either.
      const withGoodParts = (bad: Partial<CommitBatch>): CommitBatch =>
        batch({
          newConvs: [{ conv: 'g:new', kind: 'group' }, ...(bad.newConvs ?? [])],
          entries: [system('g:new', 1, 'carol', 'create'), ...(bad.entries ?? [])],
          memberships: [add('g:new', 'carol', 1), ...(bad.memberships ?? [])],
        });
      const convs = ['g:f', 'g:new', 'g:other'];

      const cases: [string, () => Partial<CommitBatch>][] = [
        ['a seq that is already taken', () => ({ entries: [msg('g:f', 2, 'bob', 'web', 'z', 1, 'dup seq')] })],
        ['a seq that leaves a gap', () => ({ entries: [msg('g:f', 4, 'bob', 'web', 'z', 1, 'gap')] })],
        ['seqs out of order within the batch', () => ({ entries: [msg('g:f', 4, 'bob', 'web', 'y', 2, 'b'), msg('g:f', 3, 'bob', 'web', 'z', 1, 'a')] })],
        ['the same seq twice within the batch', () => ({ entries: [msg('g:f', 3, 'bob', 'web', 'y', 1, 'a'), msg('g:f', 3, 'bob', 'web', 'z', 2, 'b')] })],
        ['a new conversation whose log does not start at 1', () => ({ newConvs: [{ conv: 'g:other', kind: 'group' }], entries: [system('g:other', 2, 'bob', 'x')] })],
        ['a cmid already stored for that device', () => ({ entries: [msg('g:f', 3, 'alice', 'phone', 'c1', 2, 'again')] })],
        ['a cmid repeated within the batch', () => ({ entries: [msg('g:f', 3, 'bob', 'web', 'k', 1, 'a'), msg('g:f', 4, 'bob', 'web', 'k', 2, 'b')] })],
        ['creating a conversation that exists', () => ({ newConvs: [{ conv: 'g:f', kind: 'group' }] })],
        ['creating one conversation twice', () => ({ newConvs: [{ conv: 'g:other', kind: 'group' }, { conv: 'g:other', kind: 'dm' }] })],
        ['an entry of an unknown conversation', () => ({ entries: [msg('g:other', 1, 'bob', 'web', 'z', 1, 'where')] })],
        ['an add for a user with an open stretch', () => ({ entries: [system('g:f', 3, 'alice', 'add')], memberships: [add('g:f', 'bob', 3)] })],
        ['an add repeated within the batch', () => ({ entries: [system('g:f', 3, 'alice', 'add')], memberships: [add('g:f', 'carol', 3), add('g:f', 'carol', 3)] })],
        ['a remove for a non-member', () => ({ entries: [system('g:f', 3, 'alice', 'rm')], memberships: [remove('g:f', 'carol', 3)] })],
        ['a membership change in an unknown conversation', () => ({ memberships: [add('g:other', 'bob', 1)] })],
      ];

      for (const [label, bad] of cases) {
        it(`for ${label}; the next valid commit succeeds`, async () => {
          await expectRefused(withGoodParts(bad()), convs);
          expect(await store.getConv('g:new')).toBeNull();
          expect(await store.findByCmid('g:f', 'bob', 'web', 'z')).toBeNull();
          // the failed commit left no lock, no half-written row: the same seqs commit now
          await store.commit(withGoodParts({ entries: [msg('g:f', 3, 'bob', 'web', 'z', 1, 'fine')] }));
          expect((await readAll(store, 'g:f')).map((e) => e.seq)).toEqual([1, 2, 3]);
          expect(await store.getConv('g:new')).toMatchObject({ last: 1 });
          expect(await store.getMemberships('g:new')).toEqual([{ conv: 'g:new', user: 'carol', fromSeq: 1, toSeq: null }]);
        });
      }

      it('refuses a stale second owner sharing the data, and a race for one seq has one winner', async () => {
        if (!fixture.another) return;
        const other = await fixture.another();
        open.push(other);
        await other.init();
        await store.commit(batch({ entries: [msg('g:f', 3, 'alice', 'phone', 'c2', 2, 'mine')] }));
        // `other` believes seq 3 is free (it loaded last = 2 before): the store fences it off
        await expect(other.commit(batch({ entries: [msg('g:f', 3, 'bob', 'web', 'z', 1, 'stale')] }))).rejects.toMatchObject({ name: 'StoreConflictError' });
        const results = await Promise.allSettled([
          store.commit(batch({ entries: [msg('g:f', 4, 'alice', 'phone', 'c3', 3, 'a')] })),
          other.commit(batch({ entries: [msg('g:f', 4, 'bob', 'web', 'z', 1, 'b')] })),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        expect((await readAll(other, 'g:f')).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
        expect(await store.getConv('g:f')).toMatchObject({ last: 4 });
      });
    });

    describe('scale and durability', () => {
      it('commits 5,000 entries across 50 conversations in one batch', async () => {
        const convCount = 50;
        const perConv = 100;
        const big = batch({});
        for (let c = 0; c < convCount; c++) {
          const conv = `g:big${c}`;
          big.newConvs.push({ conv, kind: 'group' });
          big.memberships.push(add(conv, 'alice', 1), add(conv, `user${c}`, 1));
        }
        // interleaved across conversations, as a group commit sees them
        for (let i = 0; i < perConv; i++) {
          for (let c = 0; c < convCount; c++) {
            big.entries.push(msg(`g:big${c}`, i + 1, 'alice', `d${c % 3}`, `m${c}-${i}`, i + 1, { i, c, text: 'x'.repeat(c) }, 1_000 + i * convCount + c));
          }
        }
        await store.commit(big);
        const listing = await store.listConvs('alice');
        expect(listing).toHaveLength(convCount);
        expect(listing[0]).toEqual({
          conv: `g:big${convCount - 1}`,
          last: perConv,
          ts: 1_000 + (perConv - 1) * convCount + convCount - 1,
          fromSeq: 1,
          toSeq: null,
          read: perConv,
          unread: 0,
          version: expect.any(Number),
        });
        const other = await store.listConvs(`user${convCount - 1}`);
        expect(other.map((l) => [l.read, l.unread])).toEqual([[0, perConv]]);
        const log = await readAll(store, 'g:big7');
        expect(log).toHaveLength(perConv);
        expect(log.map((e) => e.seq)).toEqual(Array.from({ length: perConv }, (_, i) => i + 1));
        expect(log[42]).toEqual(big.entries[42 * convCount + 7]);
        expect((await store.lane('g:big7', 'alice', 'd1')).lastDseq).toBe(perConv);
      });

      it('keeps everything across close and reopen', async () => {
        if (!fixture.reopen) return;
        await store.commit(createGroup('g:p', 'alice', ['bob'], 10));
        const m = { ...msg('g:p', 2, 'bob', 'web', 'k1', 4, { deep: [1, { a: null }] }, 20), ctx: { seen: 1 } };
        await store.commit(batch({ entries: [m], memberships: [] }));
        await store.setMeta('secret', 'keep me');
        const before = await snapshot(store, ['g:p'], ['alice', 'bob']);
        await reopen();
        expect(await snapshot(store, ['g:p'], ['alice', 'bob'])).toEqual(before);
        expect(await store.getMeta('secret')).toBe('keep me');
        expect(await store.findByCmid('g:p', 'bob', 'web', 'k1')).toEqual(m);
        expect((await store.lane('g:p', 'bob', 'web')).lastDseq).toBe(4);
        // the reopened store still enforces the fence and the dedup
        await expect(store.commit(batch({ entries: [msg('g:p', 2, 'x', 'y', 'z', 1, 0)] }))).rejects.toMatchObject({ name: 'StoreConflictError' });
        await expect(store.commit(batch({ entries: [msg('g:p', 3, 'bob', 'web', 'k1', 5, 0)] }))).rejects.toMatchObject({ name: 'StoreConflictError' });
        await store.commit(batch({ entries: [msg('g:p', 3, 'bob', 'web', 'k2', 5, 0)] }));
        expect(await store.getConv('g:p')).toMatchObject({ last: 3 });
      });
    });

    describe('commits in flight together', () => {
      it('says whether it takes a commit before the last one settles', () => {
        expect(store.pipelinesCommits === true).toBe(options.pipelined);
      });

      it.runIf(options.pipelined)('applies commits issued without waiting in call order', async () => {
        await store.commit(createGroup('g:p1', 'alice', ['bob']));
        await store.commit(createGroup('g:p2', 'alice', ['bob']));
        const sent: Entry[] = [];
        const commits: Promise<void>[] = [];
        for (let i = 0; i < 40; i++) {
          const conv = i % 2 === 0 ? 'g:p1' : 'g:p2';
          const entry = msg(conv, 2 + Math.floor(i / 2), 'bob', 'phone', `c${i}`, 1 + i, { i });
          sent.push(entry);
          commits.push(store.commit(batch({ entries: [entry] })));
        }
        await Promise.all(commits);
        expect((await readAll(store, 'g:p1')).slice(1)).toEqual(sent.filter((e) => e.conv === 'g:p1'));
        expect((await readAll(store, 'g:p2')).slice(1)).toEqual(sent.filter((e) => e.conv === 'g:p2'));
      });

      it.runIf(options.pipelined)('a batch at fault fails alone: commits in flight beside it, of other conversations, are all accepted', async () => {
        await store.commit(createGroup('g:good', 'alice', []));
        await store.commit(createGroup('g:bad', 'alice', []));
        await store.commit(batch({ entries: [msg('g:bad', 2, 'alice', 'd', 'dup', 1, 0)] }));
        const good: Entry[] = [];
        const commits: Promise<void>[] = [];
        for (let i = 0; i < 60; i++) {
          const entry = msg('g:good', 2 + i, 'alice', 'd', `g${i}`, 1 + i, { i });
          good.push(entry);
          commits.push(store.commit(batch({ entries: [entry] })));
          // Every tenth, a batch of another conversation that reuses a stored cmid: refused.
          if (i % 10 === 5) commits.push(store.commit(batch({ entries: [msg('g:bad', 3, 'alice', 'd', 'dup', 2 + i, i)] })));
        }
        const outcomes = await Promise.allSettled(commits);
        expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(6);
        expect((await readAll(store, 'g:good')).slice(1)).toEqual(good);
      });

      it.runIf(options.pipelined)('settles every commit; the log holds exactly what the accepted ones carried, without a gap', async () => {
        let round = 0;
        await fc.assert(
          fc.asyncProperty(fc.array(fc.boolean(), { minLength: 1, maxLength: 25 }), async (valid) => {
            const conv = `g:flight${round++}`;
            await store.commit(createGroup(conv, 'alice', []));
            // Each commit continues the log as if every earlier one were accepted; an invalid
            // one leaves a gap. Those sharing a transaction with it, and those that then no
            // longer continue the stored log, are refused as well.
            const batches = valid.map((ok, i) => batch({ entries: [msg(conv, 2 + i + (ok ? 0 : 1000), 'alice', 'd', `f${i}`, 1 + i, i)] }));
            const outcomes = await Promise.allSettled(batches.map((b) => store.commit(b)));
            const accepted = batches.filter((_, i) => outcomes[i]!.status === 'fulfilled').flatMap((b) => b.entries);
            for (const [i, outcome] of outcomes.entries()) {
              if (!valid[i]) expect(outcome.status).toBe('rejected');
              if (outcome.status === 'rejected') expect(outcome.reason).toMatchObject({ name: 'StoreConflictError' });
            }
            const log = (await readAll(store, conv)).slice(1);
            expect(log).toEqual(accepted);
            expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => 2 + i));
            expect(await store.getConv(conv)).toMatchObject({ last: 1 + log.length });
          }),
          { numRuns: 25 },
        );
      });
    });
  });
}
