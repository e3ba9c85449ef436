/**
 * The chat-state part of the store conformance suite: edits and deletes as they
 * change their targets, read positions, unread counts (checked against a count
 * walked over the log), and the per-user version of the conversation list.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry } from '../../packages/client/src/protocol/index.js';
import type { CommitBatch, ConvListing, MembershipChange, ReadMove, Store } from '../../packages/server/src/store/index.js';

let mids = 8_000_000_000_000_000_000n;
const mid = () => (mids += 1n).toString();

export interface ChatContext {
  store(): Store;
  /** Closes and reopens the same data; undefined for a store that is not durable. */
  reopen: (() => Promise<Store>) | undefined;
}

type Kind = Entry['kind'];

function entry(conv: string, seq: number, from: string, kind: Kind, body: unknown, ref?: number): Entry {
  const e: Entry = { conv, seq, kind, mid: mid(), ts: 1_700_000_000_000 + seq, from, dev: 'd', body };
  if (kind !== 'system') {
    e.cmid = `c-${from}-${seq}`;
    e.dseq = seq;
  }
  if (ref !== undefined) e.ref = ref;
  return e;
}

const b = (x: Partial<CommitBatch>): CommitBatch => ({ newConvs: x.newConvs ?? [], entries: x.entries ?? [], memberships: x.memberships ?? [], ...(x.reads ? { reads: x.reads } : {}) });
const add = (conv: string, user: string, seq: number): MembershipChange => ({ op: 'add', conv, user, seq });
const read = (conv: string, user: string, seq: number, isPublic = true): ReadMove => ({ conv, user, seq, public: isPublic });

/** A group whose entry 1 (by alice) adds everyone. */
function group(conv: string, members: string[]): CommitBatch {
  return b({ newConvs: [{ conv, kind: 'group' }], entries: [entry(conv, 1, 'alice', 'system', { op: 'create', members })], memberships: members.map((u) => add(conv, u, 1)) });
}

const row = async (store: Store, user: string, conv: string): Promise<ConvListing | undefined> => (await store.listConvs(user)).find((l) => l.conv === conv);

/** The unread count by definition: others' non-deleted `msg` entries in (read, last readable], walked one by one. */
function naiveUnread(log: readonly Entry[], user: string, readSeq: number, until: number): number {
  return log.filter((e) => e.seq > readSeq && e.seq <= until && e.kind === 'msg' && e.from !== user && e.deleted === undefined).length;
}

export function describeChatStateConformance(ctx: ChatContext): void {
  describe('chat state', () => {
    it('an edit marks its target with the newest edit; entries keep ref', async () => {
      const store = ctx.store();
      await store.commit(group('g:e', ['alice', 'bob']));
      await store.commit(b({ entries: [entry('g:e', 2, 'alice', 'msg', { text: 'hi' }), entry('g:e', 3, 'alice', 'edit', { text: 'hi all' }, 2)] }));
      await store.commit(b({ entries: [entry('g:e', 4, 'bob', 'react', { key: '+1', on: true }, 2), entry('g:e', 5, 'alice', 'edit', { text: 'hi, all' }, 2)] }));
      const log = await store.read('g:e', 0, 10, 10);
      expect(log[1]).toMatchObject({ seq: 2, kind: 'msg', body: { text: 'hi' }, edited: 5 });
      expect(log[1]!.deleted).toBeUndefined();
      expect(log[2]).toMatchObject({ seq: 3, kind: 'edit', ref: 2, body: { text: 'hi all' } });
      expect(log[2]!.edited).toBeUndefined();
      expect(log[3]).toMatchObject({ seq: 4, kind: 'react', ref: 2, body: { key: '+1', on: true } });
      expect(await store.entryMeta('g:e', 2)).toEqual({ kind: 'msg', from: 'alice', deleted: null });
      expect(await store.entryMeta('g:e', 3)).toEqual({ kind: 'edit', from: 'alice', deleted: null });
      expect(await store.entryMeta('g:e', 9)).toBeNull();
      expect(await store.entryMeta('g:nothing', 1)).toBeNull();
    });

    it('a delete removes the body of its target and of every edit of it, and nothing else', async () => {
      const store = ctx.store();
      await store.commit(group('g:d', ['alice', 'bob']));
      await store.commit(
        b({
          entries: [
            entry('g:d', 2, 'alice', 'msg', { text: 'secret' }),
            entry('g:d', 3, 'alice', 'msg', { text: 'stays' }),
            entry('g:d', 4, 'alice', 'edit', { text: 'secret 2' }, 2),
            entry('g:d', 5, 'bob', 'react', { key: 'x', on: true }, 2),
            entry('g:d', 6, 'alice', 'edit', { text: 'stays 2' }, 3),
          ],
        }),
      );
      // in the same batch as one more edit, to check order inside a batch
      await store.commit(b({ entries: [entry('g:d', 7, 'alice', 'edit', { text: 'secret 3' }, 2), entry('g:d', 8, 'alice', 'delete', null, 2)] }));
      const log = await store.read('g:d', 0, 10, 10);
      for (const seq of [2, 4, 7]) expect(log[seq - 1]).toMatchObject({ seq, body: null, deleted: 8 });
      expect(log[1]).toMatchObject({ kind: 'msg', edited: 7 });
      expect(log[2]).toMatchObject({ body: { text: 'stays' }, edited: 6 });
      expect(log[4]).toMatchObject({ kind: 'react', body: { key: 'x', on: true } });
      expect(log[5]).toMatchObject({ body: { text: 'stays 2' } });
      expect(log[7]).toMatchObject({ kind: 'delete', ref: 2, body: null });
      for (const seq of [3, 5, 6, 8]) expect(log[seq - 1]!.deleted).toBeUndefined();
      expect(await store.entryMeta('g:d', 2)).toEqual({ kind: 'msg', from: 'alice', deleted: 8 });
      expect(await store.findByCmid('g:d', 'alice', 'd', 'c-alice-2')).toMatchObject({ seq: 2, body: null, deleted: 8 });
    });

    it('unread counts only others’ undeleted messages after the read position; each sender has read its own entries', async () => {
      const store = ctx.store();
      await store.commit(group('g:u', ['alice', 'bob', 'carol']));
      await store.commit(
        b({
          entries: [
            entry('g:u', 2, 'alice', 'msg', 'a1'),
            entry('g:u', 3, 'bob', 'msg', 'b1'),
            entry('g:u', 4, 'alice', 'msg', 'a2'),
            entry('g:u', 5, 'bob', 'react', { key: 'k', on: true }, 2),
            entry('g:u', 6, 'alice', 'edit', 'a1!', 2),
          ],
        }),
      );
      expect(await row(store, 'carol', 'g:u')).toMatchObject({ read: 0, unread: 3 });
      expect(await row(store, 'bob', 'g:u')).toMatchObject({ read: 5, unread: 0 });
      expect(await row(store, 'alice', 'g:u')).toMatchObject({ read: 6, unread: 0 });
      await store.commit(b({ entries: [entry('g:u', 7, 'alice', 'delete', null, 4)] }));
      expect(await row(store, 'carol', 'g:u')).toMatchObject({ read: 0, unread: 2 });
      await store.commit(b({ reads: [read('g:u', 'carol', 3)] }));
      expect(await row(store, 'carol', 'g:u')).toMatchObject({ read: 3, unread: 0 });
      // forward only
      await store.commit(b({ reads: [read('g:u', 'carol', 2)] }));
      expect(await row(store, 'carol', 'g:u')).toMatchObject({ read: 3, unread: 0 });
      await store.commit(b({ entries: [entry('g:u', 8, 'bob', 'msg', 'b2'), entry('g:u', 9, 'bob', 'msg', 'b3')] }));
      expect(await row(store, 'carol', 'g:u')).toMatchObject({ unread: 2 });
      expect(await row(store, 'alice', 'g:u')).toMatchObject({ read: 7, unread: 2 });
      expect(await store.convsState('carol')).toMatchObject({ unread: 2 });
    });

    it('a private read moves the read position but not the public one', async () => {
      const store = ctx.store();
      await store.commit(group('g:p', ['alice', 'bob']));
      await store.commit(b({ entries: [2, 3, 4].map((seq) => entry('g:p', seq, 'alice', 'msg', seq)) }));
      await store.commit(b({ reads: [read('g:p', 'bob', 2)] }));
      await store.commit(b({ reads: [read('g:p', 'bob', 4, false)] }));
      const positions = await store.readPositions('g:p');
      expect(positions.find((p) => p.user === 'bob')).toEqual({ user: 'bob', read: 4, publicRead: 2 });
      expect(positions.find((p) => p.user === 'alice')).toEqual({ user: 'alice', read: 4, publicRead: 4 });
      expect(await row(store, 'bob', 'g:p')).toMatchObject({ read: 4, unread: 0 });
    });

    it('a removed member counts nothing after its removal; a re-added one nothing before its add', async () => {
      const store = ctx.store();
      await store.commit(group('g:r', ['alice', 'bob']));
      await store.commit(b({ entries: [entry('g:r', 2, 'alice', 'msg', 1), entry('g:r', 3, 'alice', 'system', 'rm')], memberships: [{ op: 'remove', conv: 'g:r', user: 'bob', seq: 3 }] }));
      await store.commit(b({ entries: [entry('g:r', 4, 'alice', 'msg', 2), entry('g:r', 5, 'alice', 'msg', 3)] }));
      expect(await row(store, 'bob', 'g:r')).toMatchObject({ toSeq: 3, read: 0, unread: 1 });
      await store.commit(b({ entries: [entry('g:r', 6, 'alice', 'system', 'add'), entry('g:r', 7, 'alice', 'msg', 4)], memberships: [add('g:r', 'bob', 6)] }));
      expect(await row(store, 'bob', 'g:r')).toMatchObject({ fromSeq: 6, toSeq: null, read: 5, unread: 1 });
    });

    it('each change gives the rows it changes a higher version; since returns exactly those, lowest first', async () => {
      const store = ctx.store();
      expect(await store.convsState('bob')).toEqual({ version: 0, unread: 0 });
      await store.commit(group('g:v1', ['alice', 'bob']));
      await store.commit(group('g:v2', ['alice', 'bob']));
      await store.commit(group('g:v3', ['alice', 'carol']));
      const v0 = (await store.convsState('bob')).version;
      expect(v0).toBeGreaterThan(0);
      expect(await store.listConvsSince('bob', v0, 100)).toEqual([]);
      await store.commit(b({ entries: [entry('g:v2', 2, 'alice', 'msg', 'x')] }));
      await store.commit(b({ entries: [entry('g:v3', 2, 'alice', 'msg', 'y')] }));
      const changed = await store.listConvsSince('bob', v0, 100);
      expect(changed.map((l) => l.conv)).toEqual(['g:v2']);
      const v1 = (await store.convsState('bob')).version;
      expect(v1).toBeGreaterThan(v0);
      expect(changed[0]!.version).toBe(v1);
      // bob's read moves only bob's row
      const aliceBefore = (await store.convsState('alice')).version;
      await store.commit(b({ reads: [read('g:v1', 'bob', 1)] }));
      expect((await store.listConvsSince('bob', v1, 100)).map((l) => l.conv)).toEqual(['g:v1']);
      expect(await store.listConvsSince('alice', aliceBefore, 100)).toEqual([]);
      // removal changes the removed user's row once; later entries do not
      await store.commit(b({ entries: [entry('g:v1', 2, 'alice', 'system', 'rm')], memberships: [{ op: 'remove', conv: 'g:v1', user: 'bob', seq: 2 }] }));
      const v2 = (await store.convsState('bob')).version;
      expect((await store.listConvsSince('bob', v1, 100)).map((l) => [l.conv, l.toSeq])).toEqual([['g:v1', 2]]);
      await store.commit(b({ entries: [entry('g:v1', 3, 'alice', 'msg', 'after')] }));
      expect(await store.listConvsSince('bob', v2, 100)).toEqual([]);
      expect((await store.listConvsSince('bob', 0, 100)).map((l) => l.conv).sort()).toEqual(['g:v1', 'g:v2']);
    });

    it('since pages by version and never splits the rows of one version', async () => {
      const store = ctx.store();
      const convs = ['g:t1', 'g:t2', 'g:t3', 'g:t4'];
      for (const conv of convs) await store.commit(group(conv, ['alice', 'bob']));
      const base = (await store.convsState('bob')).version;
      // one commit changes three rows at one version
      await store.commit(b({ entries: ['g:t1', 'g:t2', 'g:t3'].map((conv) => entry(conv, 2, 'alice', 'msg', conv)) }));
      await store.commit(b({ entries: [entry('g:t4', 2, 'alice', 'msg', 'last')] }));
      const page = await store.listConvsSince('bob', base, 2);
      expect(page.map((l) => l.conv)).toEqual(['g:t1', 'g:t2', 'g:t3']);
      expect(new Set(page.map((l) => l.version)).size).toBe(1);
      const next = await store.listConvsSince('bob', page[2]!.version, 2);
      expect(next.map((l) => l.conv)).toEqual(['g:t4']);
      expect(next[0]!.version).toBe((await store.convsState('bob')).version);
    });

    it('convsSnapshot: the changes since a version, or the whole list, with the version and the total', async () => {
      const store = ctx.store();
      const convs = ['g:s1', 'g:s2', 'g:s3'];
      for (const conv of convs) await store.commit(group(conv, ['alice', 'bob']));
      const base = (await store.convsState('bob')).version;
      await store.commit(b({ entries: [entry('g:s2', 2, 'alice', 'msg', 'a'), entry('g:s3', 2, 'alice', 'msg', 'b')] }));
      const state = await store.convsState('bob');
      const changed = await store.convsSnapshot('bob', { since: base, sinceLimit: 500, fullLimit: 10 });
      expect(changed).toEqual({ ...state, rows: await store.listConvsSince('bob', base, 500), changedOnly: true });
      expect(changed.rows.map((r) => r.conv).sort()).toEqual(['g:s2', 'g:s3']);
      expect(changed.unread).toBe(2);
      const whole = await store.convsSnapshot('bob', { since: undefined, sinceLimit: 500, fullLimit: 10 });
      expect(whole).toEqual({ ...state, rows: await store.listConvs('bob'), changedOnly: false });
      // a version the store never issued asks for the whole list; fullLimit cuts it
      const unissued = await store.convsSnapshot('bob', { since: state.version + 1, sinceLimit: 500, fullLimit: 2 });
      expect(unissued).toEqual({ ...state, rows: (await store.listConvs('bob')).slice(0, 2), changedOnly: false });
      expect(await store.convsSnapshot('nobody', { since: 0, sinceLimit: 500, fullLimit: 10 })).toEqual({ version: 0, unread: 0, rows: [], changedOnly: true });
    });

    it('convsSnapshot while commits land: the total is always the sum of the rows and the version their newest', async () => {
      const store = ctx.store();
      const convs = Array.from({ length: 8 }, (_, i) => `g:race${i}`);
      for (const conv of convs) await store.commit(group(conv, ['alice', 'bob']));
      const commits: Promise<unknown>[] = [];
      const snapshots: Promise<Awaited<ReturnType<Store['convsSnapshot']>>>[] = [];
      for (let round = 0; round < 40; round++) {
        const conv = convs[round % convs.length]!;
        const seq = 2 + Math.floor(round / convs.length);
        commits.push(store.commit(b({ entries: [entry(conv, seq, 'alice', 'msg', `m${round}`)] })));
        snapshots.push(store.convsSnapshot('bob', { since: undefined, sinceLimit: 500, fullLimit: 100 }));
      }
      await Promise.all(commits);
      for (const snapshot of await Promise.all(snapshots)) {
        expect(snapshot.unread).toBe(snapshot.rows.reduce((sum, r) => sum + r.unread, 0));
        expect(snapshot.version).toBe(Math.max(...snapshot.rows.map((r) => r.version)));
      }
      const last = await store.convsSnapshot('bob', { since: undefined, sinceLimit: 500, fullLimit: 100 });
      expect(last.unread).toBe(40);
    });

    it('agrees with unread counted over the log, whatever mix of sends, edits, deletes, reactions and reads', async () => {
      const users = ['alice', 'bob', 'carol'];
      const op = fc.oneof(
        fc.record({ t: fc.constant('msg' as const), from: fc.constantFrom(...users) }),
        fc.record({ t: fc.constant('edit' as const), pick: fc.nat() }),
        fc.record({ t: fc.constant('delete' as const), pick: fc.nat() }),
        fc.record({ t: fc.constant('react' as const), from: fc.constantFrom(...users), pick: fc.nat() }),
        fc.record({ t: fc.constant('read' as const), who: fc.constantFrom(...users), back: fc.nat({ max: 5 }), pub: fc.boolean() }),
      );
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 10 }), async (batches) => {
          const store = ctx.store();
          const conv = `g:prop${++run}`;
          await store.commit(group(conv, users));
          let last = 1;
          const msgs: { seq: number; from: string; deleted: boolean }[] = [];
          for (const ops of batches) {
            const entries: Entry[] = [];
            const reads: ReadMove[] = [];
            for (const o of ops) {
              const live = msgs.filter((m) => !m.deleted);
              if (o.t === 'msg') {
                entries.push(entry(conv, ++last, o.from, 'msg', last));
                msgs.push({ seq: last, from: o.from, deleted: false });
              } else if (o.t === 'read') {
                reads.push(read(conv, o.who, Math.max(0, last - o.back), o.pub));
              } else if (live.length > 0) {
                const target = live[o.pick % live.length]!;
                const from = o.t === 'react' ? o.from : target.from;
                entries.push(entry(conv, ++last, from, o.t, o.t === 'delete' ? null : o.t === 'react' ? { key: 'k', on: true } : 'edited', target.seq));
                if (o.t === 'delete') target.deleted = true;
              }
            }
            await store.commit(b({ entries, reads }));
          }
          const log = await store.read(conv, 0, last, 1000);
          for (const user of users) {
            const listed = await row(store, user, conv);
            expect(listed).toBeDefined();
            expect(listed!.unread).toBe(naiveUnread(log, user, listed!.read, last));
          }
        }),
        { numRuns: 12 },
      );
    });

    it('keeps read positions, versions and deletes across a reopen', async () => {
      if (!ctx.reopen) return;
      let store = ctx.store();
      await store.commit(group('g:k', ['alice', 'bob']));
      await store.commit(b({ entries: [entry('g:k', 2, 'alice', 'msg', 'gone'), entry('g:k', 3, 'alice', 'msg', 'kept')] }));
      await store.commit(b({ entries: [entry('g:k', 4, 'alice', 'delete', null, 2)], reads: [read('g:k', 'bob', 1, false)] }));
      const before = await store.listConvs('bob');
      const state = await store.convsState('bob');
      store = await ctx.reopen();
      expect(await store.listConvs('bob')).toEqual(before);
      expect(before[0]).toMatchObject({ read: 1, unread: 1 });
      expect(await store.convsState('bob')).toEqual(state);
      expect((await store.read('g:k', 1, 2, 1))[0]).toMatchObject({ body: null, deleted: 4 });
      await store.commit(b({ entries: [entry('g:k', 5, 'alice', 'msg', 'new')] }));
      expect((await store.convsState('bob')).version).toBeGreaterThan(state.version);
    });
  });
}
