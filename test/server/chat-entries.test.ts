/** Edits, deletes and reactions as log entries, and sync before, over real WebSockets. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TestServer } from '../support/wire.js';
import { backends, received, sender, settle } from './chat-support.js';

for (const backend of await backends()) {
  describe(`edits, deletes and reactions (${backend.name})`, () => {
    let t: TestServer;
    beforeEach(async () => {
      t = await backend.start();
    });
    afterEach(async () => {
      await t.stop();
    });

    async function team() {
      const alice = await t.connect('alice', 'phone');
      const bob = await t.connect('bob');
      await alice.request({ t: 'create', conv: 'g:team', members: ['bob'] });
      return { alice, bob, a: sender(alice), b: sender(bob) };
    }

    it('an edit is an entry of its own, pushed with kind and ref; sync marks the target with its newest edit', async () => {
      const { alice, bob, a } = await team();
      const hi = await a.send('g:team', { text: 'hi' });
      const edit1 = await a.send('g:team', { text: 'hi all' }, { kind: 'edit', ref: hi['seq'] });
      // any device of the author may edit
      const tablet = await t.connect('alice', 'tablet');
      const edit2 = await sender(tablet).send('g:team', { text: 'hi, all' }, { kind: 'edit', ref: hi['seq'] });
      expect([edit1.t, edit2.t]).toEqual(['ack', 'ack']);
      expect(edit1['seq']).toBe(3);
      // bob was online for the create: his pushes are seqs 1, 2, 3, 4
      const pushes = await bob.waitForPushes(4);
      expect(pushes[2]).toMatchObject({ t: 'msg', seq: 3, kind: 'edit', ref: 2, from: 'alice', body: { text: 'hi all' } });
      expect(pushes[2]!.edited).toBeUndefined();
      const { msgs } = await bob.syncAll('g:team');
      expect(msgs[1]).toMatchObject({ seq: 2, kind: 'msg', body: { text: 'hi' }, edited: edit2['seq'] });
      expect(msgs.map((m) => m.kind)).toEqual(['system', 'msg', 'edit', 'edit']);
      void alice;
    });

    it('only the author edits or deletes; any member reacts', async () => {
      const { bob, a, b } = await team();
      const hi = await a.send('g:team', 'hi');
      expect(await b.send('g:team', 'mine now', { kind: 'edit', ref: hi['seq'] })).toMatchObject({ t: 'error', code: 'forbidden' });
      b.refused();
      expect(await b.send('g:team', null, { kind: 'delete', ref: hi['seq'] })).toMatchObject({ t: 'error', code: 'forbidden' });
      b.refused();
      const react = await b.send('g:team', { key: '👍', on: true }, { kind: 'react', ref: hi['seq'] });
      expect(react).toMatchObject({ t: 'ack', seq: 3 });
      const { msgs } = await bob.syncAll('g:team');
      expect(msgs[2]).toMatchObject({ kind: 'react', ref: 2, from: 'bob', body: { key: '👍', on: true } });
    });

    it('a refused send takes no seq and no dseq', async () => {
      const { bob, a, b } = await team();
      await a.send('g:team', 'hi');
      expect(await b.send('g:team', 'x', { kind: 'edit', ref: 2 })).toMatchObject({ code: 'forbidden' });
      b.refused();
      expect(await b.send('g:team', 'next')).toMatchObject({ t: 'ack', seq: 3, dseq: 1 });
      expect((await bob.syncAll('g:team')).last).toBe(3);
    });

    it('the target must be a readable msg entry: not_found for no such seq or another kind, forbidden before the member was added', async () => {
      const { alice, a } = await team();
      await a.send('g:team', 'early');
      const edit = await a.send('g:team', 'early!', { kind: 'edit', ref: 2 });
      expect(await a.send('g:team', 'x', { kind: 'edit', ref: 1 })).toMatchObject({ code: 'not_found' });
      a.refused();
      expect(await a.send('g:team', { key: 'k', on: true }, { kind: 'react', ref: edit['seq'] })).toMatchObject({ code: 'not_found' });
      a.refused();
      expect(await a.send('g:team', null, { kind: 'delete', ref: 99 })).toMatchObject({ code: 'not_found' });
      a.refused();
      await alice.request({ t: 'members', conv: 'g:team', add: ['carol'] });
      const carol = await t.connect('carol');
      expect(await sender(carol).send('g:team', { key: 'k', on: true }, { kind: 'react', ref: 2 })).toMatchObject({ code: 'forbidden' });
      const dave = await t.connect('dave');
      expect(await sender(dave).send('g:team', { key: 'k', on: true }, { kind: 'react', ref: 2 })).toMatchObject({ code: 'forbidden' });
    });

    it('a delete blanks the target and its edits; editing, reacting or deleting again is conflict; resends keep their acks', async () => {
      const { alice, bob, a, b } = await team();
      const hi = await a.send('g:team', { text: 'secret' });
      await a.send('g:team', { text: 'secret!' }, { kind: 'edit', ref: 2 });
      await b.send('g:team', { key: 'k', on: true }, { kind: 'react', ref: 2 });
      const del = await a.send('g:team', null, { kind: 'delete', ref: 2 });
      expect(del).toMatchObject({ t: 'ack', seq: 5 });
      const pushes = await bob.waitForPushes(4);
      expect(pushes.find((p) => p.seq === 5)).toMatchObject({ seq: 5, kind: 'delete', ref: 2, body: null, from: 'alice' });
      const { msgs } = await bob.syncAll('g:team');
      expect(msgs[1]).toMatchObject({ seq: 2, kind: 'msg', body: null, deleted: 5 });
      expect(msgs[2]).toMatchObject({ seq: 3, kind: 'edit', body: null, deleted: 5 });
      expect(msgs[3]).toMatchObject({ seq: 4, kind: 'react', body: { key: 'k', on: true } });
      expect(msgs[3]!.deleted).toBeUndefined();
      expect(await a.send('g:team', 'again', { kind: 'edit', ref: 2 })).toMatchObject({ code: 'conflict' });
      a.refused();
      expect(await a.send('g:team', null, { kind: 'delete', ref: 2 })).toMatchObject({ code: 'conflict' });
      a.refused();
      expect(await b.send('g:team', { key: 'k', on: false }, { kind: 'react', ref: 2 })).toMatchObject({ code: 'conflict' });
      // the same cmid again: the same ack, never a conflict
      const first = (await alice.syncAll('g:team')).msgs[1]!;
      const again = await alice.request({ t: 'send', conv: 'g:team', cmid: first.cmid, dseq: first.dseq, body: { text: 'secret' } });
      expect(again).toMatchObject({ t: 'ack', seq: hi['seq'], mid: hi['mid'] });
    });

    it('a delete waiting for its dseq wins over an edit that takes a later seq', async () => {
      const { alice, bob, a } = await team();
      await a.send('g:team', 'hi');
      // dseq 3 (delete) arrives before dseq 2 (edit): it is held, then placed after the edit
      const held = alice.request({ t: 'send', conv: 'g:team', cmid: 'del', dseq: 3, kind: 'delete', ref: 2, body: null });
      const edit = alice.request({ t: 'send', conv: 'g:team', cmid: 'edit', dseq: 2, kind: 'edit', ref: 2, body: 'hi!' });
      expect(await edit).toMatchObject({ t: 'ack', seq: 3 });
      expect(await held).toMatchObject({ t: 'ack', seq: 4 });
      const edit2 = await alice.request({ t: 'send', conv: 'g:team', cmid: 'edit2', dseq: 4, kind: 'edit', ref: 2, body: 'late' });
      expect(edit2).toMatchObject({ code: 'conflict' });
      const { msgs } = await bob.syncAll('g:team');
      expect(msgs.slice(1).map((m) => [m.seq, m.kind, m.body, m.deleted])).toEqual([
        [2, 'msg', null, 4],
        [3, 'edit', null, 4],
        [4, 'delete', null, undefined],
      ]);
    });

    it('clients ignore nothing they need: bad kinds and bodies are bad_request', async () => {
      const { alice } = await team();
      expect(await alice.request({ t: 'send', conv: 'g:team', cmid: 'k', dseq: 1, kind: 'react', ref: 1, body: { key: '', on: true } })).toMatchObject({
        code: 'bad_request',
      });
      expect(await alice.request({ t: 'send', conv: 'g:team', cmid: 'k', dseq: 1, kind: 'edit', body: 'x' })).toMatchObject({ code: 'bad_request' });
      await settle(alice);
      expect(received(alice, 'error')).toEqual([]);
    });
  });

  describe(`sync before (${backend.name})`, () => {
    let t: TestServer;
    beforeEach(async () => {
      t = await backend.start();
    });
    afterEach(async () => {
      await t.stop();
    });

    it('returns the limit entries just below before, ascending and gapless, never before what the member may read', async () => {
      const alice = await t.connect('alice');
      await alice.request({ t: 'create', conv: 'g:h', members: [] });
      const a = sender(alice);
      for (let i = 0; i < 30; i++) await a.send('g:h', i);
      const page = await alice.request({ t: 'sync', conv: 'g:h', before: 25, limit: 5 });
      expect(page).toMatchObject({ t: 'batch', last: 31 });
      expect((page['msgs'] as { seq: number }[]).map((m) => m.seq)).toEqual([20, 21, 22, 23, 24]);
      const start = await alice.request({ t: 'sync', conv: 'g:h', before: 3, limit: 50 });
      expect((start['msgs'] as { seq: number }[]).map((m) => m.seq)).toEqual([1, 2]);
      const beyond = await alice.request({ t: 'sync', conv: 'g:h', before: 1000, limit: 2 });
      expect((beyond['msgs'] as { seq: number }[]).map((m) => m.seq)).toEqual([30, 31]);
      expect(await alice.request({ t: 'sync', conv: 'g:h', after: 1, before: 9 })).toMatchObject({ t: 'error', code: 'bad_request' });
      await alice.request({ t: 'members', conv: 'g:h', add: ['bob'] });
      const bob = await t.connect('bob');
      const bobs = await bob.request({ t: 'sync', conv: 'g:h', before: 33, limit: 10 });
      expect((bobs['msgs'] as { seq: number }[]).map((m) => m.seq)).toEqual([32]);
    });

    it('a page the byte budget cuts still ends just below before', async () => {
      t = await (async () => {
        await t.stop();
        return backend.start({ maxSyncBytes: 3000 });
      })();
      const alice = await t.connect('alice');
      await alice.request({ t: 'create', conv: 'g:big', members: [] });
      const a = sender(alice);
      for (let i = 0; i < 10; i++) await a.send('g:big', 'x'.repeat(1000));
      const page = await alice.request({ t: 'sync', conv: 'g:big', before: 11, limit: 8 });
      const seqs = (page['msgs'] as { seq: number }[]).map((m) => m.seq);
      expect(seqs.length).toBeGreaterThan(0);
      expect(seqs.length).toBeLessThan(8);
      expect(seqs.at(-1)).toBe(10);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => 11 - seqs.length + i));
    });
  });
}
