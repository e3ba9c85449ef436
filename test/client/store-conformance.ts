/**
 * The ClientStore contract, as one suite every adapter runs: memory, file,
 * IndexedDB, and any store an app brings.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ChatState, ClientStore, OutboxEntry } from '../../packages/client/src/client/store.js';

export interface StoreFactory {
  /** A fresh, empty store. */
  create(): Promise<ClientStore>;
  /** A second store over the same persisted data (what a restarted app opens); undefined for memory-only stores. */
  reopen?(store: ClientStore): Promise<ClientStore>;
}

function entry(conv: string, dseq: number, extra: Partial<OutboxEntry> = {}): OutboxEntry {
  return { conv, cmid: `c${dseq}`, dseq, body: { text: `m${dseq}`, nested: [1, 'two', null] }, createdAt: 1000 + dseq, tries: 0, ...extra };
}

function chat(version: number | undefined, reads: Record<string, number>): ChatState {
  return {
    ...(version === undefined ? {} : { version }),
    convs: Object.entries(reads).map(([conv, read], i) => ({
      conv,
      last: read + i,
      ts: 1000 + i,
      from: 1,
      ...(i === 1 ? { until: read + i } : {}),
      read,
      readConfirmed: Math.max(0, read - 1),
      anchor: { read: Math.max(0, read - 1), last: read + i, unread: i },
    })),
  };
}

export function clientStoreConformance(name: string, factory: StoreFactory): void {
  describe(`ClientStore conformance: ${name}`, () => {
    const opened: ClientStore[] = [];
    const create = async (): Promise<ClientStore> => {
      const store = await factory.create();
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    it('starts empty', async () => {
      const store = await create();
      expect(await store.load()).toEqual({ identity: undefined, convs: [], outbox: [] });
    });

    it('keeps the identity', async () => {
      const store = await create();
      await store.setIdentity({ device: 'dev1' });
      expect((await store.load()).identity).toEqual({ device: 'dev1' });
      await store.setIdentity({ device: 'dev1', user: 'alice' });
      expect((await store.load()).identity).toEqual({ device: 'dev1', user: 'alice' });
    });

    it('enqueue stores the entry and raises the next dseq of its conversation', async () => {
      const store = await create();
      await store.enqueue(entry('g:a', 1, { seen: 4 }));
      await store.enqueue(entry('g:a', 2));
      await store.enqueue(entry('dm:a:b', 1));
      const snapshot = await store.load();
      const byKey = (a: OutboxEntry, b: OutboxEntry): number => `${a.conv}/${a.dseq}`.localeCompare(`${b.conv}/${b.dseq}`);
      expect(snapshot.outbox.sort(byKey)).toEqual([entry('dm:a:b', 1), entry('g:a', 1, { seen: 4 }), entry('g:a', 2)]);
      expect(snapshot.convs.sort((a, b) => a.conv.localeCompare(b.conv))).toEqual([
        { conv: 'dm:a:b', nextDseq: 2, cursor: 0 },
        { conv: 'g:a', nextDseq: 3, cursor: 0 },
      ]);
    });

    it('keeps the next dseq when entries are removed', async () => {
      const store = await create();
      await store.enqueue(entry('g:a', 1));
      await store.removeOutbox('g:a', 'c1');
      await store.removeOutbox('g:a', 'missing');
      expect(await store.load()).toMatchObject({ outbox: [], convs: [{ conv: 'g:a', nextDseq: 2 }] });
    });

    it('updates an entry in place and ignores updates of removed ones', async () => {
      const store = await create();
      await store.enqueue(entry('g:a', 1));
      await store.updateOutbox(entry('g:a', 1, { tries: 3, failed: { code: 'deadline', message: 'late' } }));
      await store.updateOutbox(entry('g:a', 9));
      expect((await store.load()).outbox).toEqual([entry('g:a', 1, { tries: 3, failed: { code: 'deadline', message: 'late' } })]);
    });

    it('replaceOutbox swaps one conversation\'s entries and sets its next dseq, lower too, keeping its cursor and other conversations', async () => {
      const store = await create();
      for (const dseq of [1, 2, 3]) await store.enqueue(entry('g:a', dseq));
      await store.enqueue(entry('g:b', 1));
      await store.setCursor('g:a', 9);
      // dseq 1 discarded: the ones behind it move down by one, same cmids.
      await store.replaceOutbox!('g:a', [entry('g:a', 1, { cmid: 'c2' }), entry('g:a', 2, { cmid: 'c3' })], 3);
      const snapshot = await store.load();
      const ofA = snapshot.outbox.filter((e) => e.conv === 'g:a').sort((a, b) => a.dseq - b.dseq);
      expect(ofA).toEqual([entry('g:a', 1, { cmid: 'c2' }), entry('g:a', 2, { cmid: 'c3' })]);
      expect(snapshot.outbox.filter((e) => e.conv === 'g:b')).toEqual([entry('g:b', 1)]);
      expect(snapshot.convs.find((c) => c.conv === 'g:a')).toEqual({ conv: 'g:a', nextDseq: 3, cursor: 9 });
      await store.replaceOutbox!('g:a', [], 1);
      expect((await store.load()).outbox.filter((e) => e.conv === 'g:a')).toEqual([]);
    });

    it('raises cursors and never lowers them', async () => {
      const store = await create();
      await store.setCursor('g:a', 5);
      await store.setCursor('g:a', 3);
      await store.enqueue(entry('g:a', 1));
      await store.setCursor('g:b', 2);
      const convs = (await store.load()).convs.sort((a, b) => a.conv.localeCompare(b.conv));
      expect(convs).toEqual([
        { conv: 'g:a', nextDseq: 2, cursor: 5 },
        { conv: 'g:b', nextDseq: 1, cursor: 2 },
      ]);
    });

    it('applies concurrent writes in call order', async () => {
      const store = await create();
      await Promise.all([store.enqueue(entry('g:a', 1)), store.setCursor('g:a', 7), store.removeOutbox('g:a', 'c1'), store.enqueue(entry('g:a', 2))]);
      expect(await store.load()).toEqual({ identity: undefined, convs: [{ conv: 'g:a', nextDseq: 3, cursor: 7 }], outbox: [entry('g:a', 2)] });
    });

    it('returns copies: changing what load() gave back changes nothing stored', async () => {
      const store = await create();
      const original = entry('g:a', 1);
      await store.enqueue(original);
      original.tries = 99;
      const first = await store.load();
      (first.outbox[0] as OutboxEntry).tries = 42;
      expect((await store.load()).outbox[0]?.tries).toBe(0);
    });

    it('saveChat keeps the newest chat state (version, rows, read positions) apart from cursors and outbox', async () => {
      const store = await create();
      if (!store.saveChat) return;
      await store.enqueue(entry('g:a', 1));
      await store.saveChat(chat(undefined, { 'g:a': 3 }));
      expect((await store.load()).chat).toEqual(chat(undefined, { 'g:a': 3 }));
      await store.saveChat(chat(41, { 'g:a': 5, 'dm:a:b': 2 }));
      await store.setCursor('g:a', 4);
      const snapshot = await store.load();
      expect(snapshot.chat).toEqual(chat(41, { 'g:a': 5, 'dm:a:b': 2 }));
      expect(snapshot.outbox).toEqual([entry('g:a', 1)]);
      expect(snapshot.convs).toEqual([{ conv: 'g:a', nextDseq: 2, cursor: 4 }]);
    });

    it('saveChat writes issued at once land in call order', async () => {
      const store = await create();
      if (!store.saveChat) return;
      await Promise.all([1, 2, 3].map((version) => store.saveChat!(chat(version, { 'g:a': version }))));
      expect((await store.load()).chat).toEqual(chat(3, { 'g:a': 3 }));
      const copy = (await store.load()).chat as ChatState;
      (copy.convs[0] as { read: number }).read = 99;
      expect((await store.load()).chat?.convs[0]?.read).toBe(3);
    });

    if (factory.reopen) {
      const reopen = factory.reopen;
      it('gives a reopened store everything written before', async () => {
        const store = await create();
        await store.setIdentity({ device: 'dev1', user: 'alice' });
        await store.enqueue(entry('g:a', 1));
        await store.enqueue(entry('g:a', 2));
        await store.removeOutbox('g:a', 'c1');
        await store.setCursor('g:a', 11);
        await store.saveChat?.(chat(7, { 'g:a': 9 }));
        const again = await reopen(store);
        opened.push(again);
        expect(await again.load()).toEqual({
          identity: { device: 'dev1', user: 'alice' },
          convs: [{ conv: 'g:a', nextDseq: 3, cursor: 11 }],
          outbox: [entry('g:a', 2)],
          ...(store.saveChat ? { chat: chat(7, { 'g:a': 9 }) } : {}),
        });
        await again.replaceOutbox!('g:a', [entry('g:a', 1, { cmid: 'c2' })], 2);
        const third = await reopen(again);
        opened.push(third);
        expect(await third.load()).toMatchObject({ convs: [{ conv: 'g:a', nextDseq: 2 }], outbox: [entry('g:a', 1, { cmid: 'c2' })] });
      });
    }
  });
}
