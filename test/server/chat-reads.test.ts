/** Read positions, unread counts, the list version, info and typing, over real WebSockets. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TestServer } from '../support/wire.js';
import { backends, received, sender, settle, waitFor } from './chat-support.js';

type Row = { conv: string; read: number; unread: number; last: number; until?: number };
const rows = (reply: Record<string, unknown>) => reply['convs'] as Row[];

for (const backend of await backends()) {
  describe(`read positions and unread (${backend.name})`, () => {
    let t: TestServer;
    beforeEach(async () => {
      t = await backend.start();
    });
    afterEach(async () => {
      await t.stop();
    });

    it('read moves forward only, answers the current value, and is pushed to the user’s devices and the other members', async () => {
      const alice = await t.connect('alice');
      const bob = await t.connect('bob', 'phone');
      const bobTablet = await t.connect('bob', 'tablet');
      await alice.request({ t: 'create', conv: 'g:r', members: ['bob'] });
      const a = sender(alice);
      for (let i = 0; i < 4; i++) await a.send('g:r', i);
      expect(await bob.request({ t: 'read', conv: 'g:r', seq: 3 })).toMatchObject({ t: 'ok', conv: 'g:r', seq: 3 });
      for (const client of [alice, bob, bobTablet]) expect((await waitFor(client, 'read'))[0]).toEqual({ t: 'read', conv: 'g:r', user: 'bob', seq: 3 });
      // at or below: the current value, nothing pushed
      expect(await bobTablet.request({ t: 'read', conv: 'g:r', seq: 2 })).toMatchObject({ t: 'ok', seq: 3 });
      expect(await bobTablet.request({ t: 'read', conv: 'g:r', seq: 3 })).toMatchObject({ t: 'ok', seq: 3 });
      await settle(alice);
      expect(received(alice, 'read')).toHaveLength(1);
      expect(await bob.request({ t: 'read', conv: 'g:r', seq: 6 })).toMatchObject({ t: 'error', code: 'bad_request' });
      const carol = await t.connect('carol');
      expect(await carol.request({ t: 'read', conv: 'g:r', seq: 1 })).toMatchObject({ t: 'error', code: 'forbidden' });
      expect(await carol.request({ t: 'read', conv: 'g:none', seq: 1 })).toMatchObject({ t: 'error', code: 'not_found' });
      expect(rows(await bobTablet.request({ t: 'convs' }))[0]).toMatchObject({ conv: 'g:r', read: 3, unread: 2 });
    });

    it('a removed member may not read past its removal', async () => {
      const alice = await t.connect('alice');
      await alice.request({ t: 'create', conv: 'g:x', members: ['bob'] });
      await alice.request({ t: 'members', conv: 'g:x', remove: ['bob'] });
      await sender(alice).send('g:x', 'after');
      const bob = await t.connect('bob');
      expect(await bob.request({ t: 'read', conv: 'g:x', seq: 3 })).toMatchObject({ t: 'error', code: 'forbidden' });
      expect(await bob.request({ t: 'read', conv: 'g:x', seq: 2 })).toMatchObject({ t: 'ok', seq: 2 });
    });

    it('a private read reaches only the user’s own devices; others and info keep the last public value', async () => {
      const alice = await t.connect('alice');
      const bob = await t.connect('bob', 'phone');
      const bobTablet = await t.connect('bob', 'tablet');
      await alice.request({ t: 'create', conv: 'g:p', members: ['bob'] });
      const a = sender(alice);
      for (let i = 0; i < 3; i++) await a.send('g:p', i);
      await bob.request({ t: 'read', conv: 'g:p', seq: 2 });
      await waitFor(alice, 'read');
      expect(await bob.request({ t: 'read', conv: 'g:p', seq: 4, private: true })).toMatchObject({ t: 'ok', seq: 4 });
      expect((await waitFor(bobTablet, 'read', 2))[1]).toEqual({ t: 'read', conv: 'g:p', user: 'bob', seq: 4, private: true });
      await settle(alice);
      expect(received(alice, 'read').map((f) => f['seq'])).toEqual([2]);
      expect(await alice.request({ t: 'info', conv: 'g:p' })).toMatchObject({ t: 'info', members: ['alice', 'bob'], last: 4, read: { alice: 4, bob: 2 } });
      expect(rows(await bob.request({ t: 'convs' }))[0]).toMatchObject({ read: 4, unread: 0 });
    });

    it('one’s own sends move one’s read position, with no read push beside the message push', async () => {
      const alice = await t.connect('alice');
      const bob = await t.connect('bob');
      await alice.request({ t: 'create', conv: 'g:o', members: ['bob'] });
      await sender(bob).send('g:o', 'from bob');
      await sender(alice).send('g:o', 'from alice');
      expect(rows(await alice.request({ t: 'convs' }))[0]).toMatchObject({ read: 3, unread: 0, last: 3 });
      expect(rows(await bob.request({ t: 'convs' }))[0]).toMatchObject({ read: 2, unread: 1 });
      await settle(bob);
      expect(received(bob, 'read')).toEqual([]);
      expect(await bob.request({ t: 'info', conv: 'g:o' })).toMatchObject({ read: { alice: 3, bob: 2 } });
    });

    it('unread counts others’ messages only: never edits, reactions, deletes, system entries or deleted messages; the reply sums it', async () => {
      const alice = await t.connect('alice');
      const bob = await t.connect('bob');
      await alice.request({ t: 'create', conv: 'g:u', members: ['bob'] });
      const a = sender(alice);
      await a.send('g:u', 'one');
      await a.send('g:u', 'two');
      await a.send('g:u', 'one!', { kind: 'edit', ref: 2 });
      await a.send('g:u', { key: 'k', on: true }, { kind: 'react', ref: 3 });
      await alice.request({ t: 'members', conv: 'g:u', add: ['carol'] });
      await sender(bob).send('dm:alice:bob', 'dm');
      let reply = await bob.request({ t: 'convs' });
      expect(rows(reply).map((r) => [r.conv, r.unread])).toEqual([['dm:alice:bob', 0], ['g:u', 2]]);
      expect(reply['unread']).toBe(2);
      await a.send('g:u', null, { kind: 'delete', ref: 2 });
      await sender(alice).send('dm:alice:bob', 'back');
      reply = await bob.request({ t: 'convs' });
      expect(rows(reply).map((r) => [r.conv, r.unread])).toEqual([['dm:alice:bob', 1], ['g:u', 1]]);
      expect(reply['unread']).toBe(2);
    });
  });

  describe(`the list version (${backend.name})`, () => {
    let t: TestServer;
    beforeEach(async () => {
      t = await backend.start();
    });
    afterEach(async () => {
      await t.stop();
    });

    it('convs since returns exactly the rows changed after a version, oldest change first, paged with more', async () => {
      const alice = await t.connect('alice');
      const bob = await t.connect('bob');
      for (const conv of ['g:1', 'g:2', 'g:3', 'g:4']) await alice.request({ t: 'create', conv, members: ['bob'] });
      const full = await bob.request({ t: 'convs' });
      const v0 = full['version'] as number;
      expect(v0).toBeGreaterThan(0);
      expect(await bob.request({ t: 'convs', since: v0 })).toMatchObject({ convs: [], version: v0, more: false });
      const a = sender(alice);
      await a.send('g:3', 'x');
      await a.send('g:1', 'y');
      // a read from another device of bob's changes his row too
      const tablet = await t.connect('bob', 'tablet');
      await tablet.request({ t: 'read', conv: 'g:4', seq: 1 });
      const page1 = await bob.request({ t: 'convs', since: v0, limit: 2 });
      expect(rows(page1).map((r) => r.conv)).toEqual(['g:3', 'g:1']);
      expect(page1).toMatchObject({ more: true, unread: 2 });
      const page2 = await bob.request({ t: 'convs', since: page1['version'], limit: 2 });
      expect(rows(page2).map((r) => r.conv)).toEqual(['g:4']);
      expect(page2['more']).toBe(false);
      expect(page2['version']).toBeGreaterThan(page1['version'] as number);
      expect(await bob.request({ t: 'convs', since: page2['version'] })).toMatchObject({ convs: [] });
      // being removed changes the row once
      await alice.request({ t: 'members', conv: 'g:2', remove: ['bob'] });
      const removed = await bob.request({ t: 'convs', since: page2['version'] });
      expect(rows(removed)).toMatchObject([{ conv: 'g:2', until: 2 }]);
      await a.send('g:2', 'bob does not see this');
      expect(await bob.request({ t: 'convs', since: removed['version'] })).toMatchObject({ convs: [] });
      // alice's list is alice's: bob's read did not change it
      const aliceV = (await alice.request({ t: 'convs' }))['version'] as number;
      await bob.request({ t: 'read', conv: 'g:1', seq: 2 });
      expect(await alice.request({ t: 'convs', since: aliceV })).toMatchObject({ convs: [] });
    });

    it('a since the server never issued answers the full list with full: true', async () => {
      const alice = await t.connect('alice');
      await alice.request({ t: 'create', conv: 'g:f', members: [] });
      const reply = await alice.request({ t: 'convs', since: 1_000_000_000 });
      expect(reply).toMatchObject({ t: 'convs', full: true, convs: [{ conv: 'g:f', read: 1, unread: 0 }] });
      expect(reply['version']).toBeLessThan(1_000_000_000);
      expect((await alice.request({ t: 'convs' }))['full']).toBeUndefined();
    });
  });

  describe(`info and typing (${backend.name})`, () => {
    let t: TestServer;
    beforeEach(async () => {
      t = await backend.start();
    });
    afterEach(async () => {
      await t.stop();
    });

    it('info lists the current members and their public read positions, to members only', async () => {
      const alice = await t.connect('alice');
      await alice.request({ t: 'create', conv: 'g:i', members: ['bob', 'carol'] });
      await alice.request({ t: 'members', conv: 'g:i', remove: ['carol'] });
      const info = await alice.request({ t: 'info', conv: 'g:i' });
      expect(info).toEqual({ t: 'info', id: info['id'], conv: 'g:i', members: ['alice', 'bob'], last: 2, read: { alice: 2, bob: 0 } });
      const carol = await t.connect('carol');
      expect(await carol.request({ t: 'info', conv: 'g:i' })).toMatchObject({ t: 'error', code: 'forbidden' });
      expect(await carol.request({ t: 'info', conv: 'g:nope' })).toMatchObject({ t: 'error', code: 'not_found' });
      expect(await carol.request({ t: 'info', conv: 'dm:alice:bob' })).toMatchObject({ t: 'error', code: 'forbidden' });
    });

    it('typing reaches the other members’ devices at most once a second, is never stored, and is for members only', async () => {
      const alice = await t.connect('alice', 'phone');
      const aliceTablet = await t.connect('alice', 'tablet');
      const bob = await t.connect('bob');
      await alice.request({ t: 'create', conv: 'g:t', members: ['bob'] });
      expect(await alice.request({ t: 'typing', conv: 'g:t' })).toMatchObject({ t: 'ok', conv: 'g:t', seq: 1 });
      expect(await alice.request({ t: 'typing', conv: 'g:t' })).toMatchObject({ t: 'ok' });
      expect((await waitFor(bob, 'typing'))[0]).toEqual({ t: 'typing', conv: 'g:t', user: 'alice' });
      await settle(bob);
      expect(received(bob, 'typing')).toHaveLength(1);
      expect(received(aliceTablet, 'typing')).toHaveLength(0);
      await new Promise((resolve) => setTimeout(resolve, 1050));
      await alice.request({ t: 'typing', conv: 'g:t' });
      await waitFor(bob, 'typing', 2);
      expect((await bob.syncAll('g:t')).last).toBe(1);
      const carol = await t.connect('carol');
      expect(await carol.request({ t: 'typing', conv: 'g:t' })).toMatchObject({ t: 'error', code: 'forbidden' });
      expect(await carol.request({ t: 'typing', conv: 'g:none' })).toMatchObject({ t: 'error', code: 'not_found' });
    });
  });
}
