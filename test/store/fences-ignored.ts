/**
 * Single-node stores (memory, SQLite) take a batch's fences and ignore them: one
 * node holds every conversation, there is no lease to check, and the Store
 * contract stays one for every adapter. Their other refusals still apply.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CommitBatch, Store } from '../../packages/server/src/store/index.js';
import { msg, system } from './conformance.js';

export function describeFencesIgnored(name: string, open: () => Promise<{ store: Store; dispose(): Promise<void> }>): void {
  describe(`fences on a single-node store: ${name}`, () => {
    let fixture: { store: Store; dispose(): Promise<void> } | undefined;
    afterEach(async () => {
      await fixture?.store.close();
      await fixture?.dispose();
      fixture = undefined;
    });

    it('commits a fenced batch as an unfenced one, whatever the epochs, and keeps refusing a gap', async () => {
      fixture = await open();
      const { store } = fixture;
      await store.init();
      // an epoch no lease ever had: a single node has no lease to check it against
      const fences = new Map([['g:f', { slot: 3, epoch: 0 }]]);
      const created: CommitBatch = {
        newConvs: [{ conv: 'g:f', kind: 'group' }],
        entries: [system('g:f', 1, 'alice', { op: 'create', members: [] })],
        memberships: [{ op: 'add', conv: 'g:f', user: 'alice', seq: 1 }],
        fences,
      };
      await store.commit(created);
      await store.commit({ newConvs: [], entries: [msg('g:f', 2, 'alice', 'phone', 'c1', 1, 'hi')], memberships: [], fences: new Map() });
      expect((await store.read('g:f', 0, 10, 10)).map((e) => e.body)).toEqual([{ op: 'create', members: [] }, 'hi']);
      await expect(store.commit({ newConvs: [], entries: [msg('g:f', 4, 'alice', 'phone', 'c2', 2, 'gap')], memberships: [], fences })).rejects.toMatchObject({
        name: 'StoreConflictError',
      });
      expect((await store.getConv('g:f'))?.last).toBe(2);
    });
  });
}
