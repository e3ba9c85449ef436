/**
 * The store conformance suite's part for readJson (optional in the contract):
 * each text is JSON.stringify of the entry read() gives at that seq, for every
 * kind of entry and every chat-state annotation, and a page ends where read()'s
 * does. A store without readJson skips it.
 */
import { describe, expect, it } from 'vitest';
import type { Entry } from '../../packages/client/src/protocol/index.js';
import type { CommitBatch, Store } from '../../packages/server/src/store/index.js';

let mids = 9_000_000_000_000_000_000n;
const mid = () => (mids += 1n).toString();

function entry(seq: number, from: string, kind: Entry['kind'], body: unknown, extra: Partial<Entry> = {}): Entry {
  const e: Entry = { conv: 'g:json', seq, kind, mid: mid(), ts: 1_700_000_000_000 + seq, from, dev: 'd', body };
  if (kind !== 'system') {
    e.cmid = `c-${from}-${seq}`;
    e.dseq = seq;
  }
  return { ...e, ...extra };
}

const b = (x: Partial<CommitBatch>): CommitBatch => ({ newConvs: x.newConvs ?? [], entries: x.entries ?? [], memberships: x.memberships ?? [] });

/** Every kind of entry, annotations from later edits and deletes, and cmids and bodies that are awkward to spell. */
async function fill(store: Store): Promise<number> {
  await store.commit(
    b({
      newConvs: [{ conv: 'g:json', kind: 'group' }],
      entries: [entry(1, 'alice', 'system', { op: 'create', members: ['bob'] })],
      memberships: ['alice', 'bob'].map((user) => ({ op: 'add' as const, conv: 'g:json', user, seq: 1 })),
    }),
  );
  const awkward = ['a"b\\c', 'tab\there\nnl', '\u0001marker first', 'nul\u0000inside', 'lone \ud800 high', 'lone \udc00 low', 'é ✓ 😀 \u2028', '\u007f\u0080'];
  const entries: Entry[] = [
    entry(2, 'alice', 'msg', { text: 'hello', n: 1.5, big: 1e21, neg: -0, list: [true, null, { k: 'v' }] }, { ctx: { seen: 1 } }),
    entry(3, 'alice', 'edit', { text: 'hello all' }, { ref: 2 }),
    entry(4, 'bob', 'react', { key: '+1', on: true }, { ref: 2 }),
    entry(5, 'bob', 'msg', 'plain string body'),
    entry(6, 'alice', 'msg', { text: 'to be deleted' }),
    entry(7, 'alice', 'edit', { text: 'edited, then deleted' }, { ref: 6 }),
    entry(8, 'alice', 'delete', null, { ref: 6 }),
    entry(9, 'alice', 'system', { op: 'members', add: ['carol'], remove: [] }),
    ...awkward.map((text, i) => entry(10 + i, 'bob', 'msg', { text }, { cmid: `${text} ${i}` })),
  ];
  for (const e of entries) await store.commit(b({ entries: [e] }));
  return 9 + awkward.length;
}

export function describeReadJsonConformance(store: () => Store): void {
  describe('readJson', () => {
    it('spells each entry exactly as JSON.stringify of what read gives: msgs, edits, deletes, reactions, system entries', async (t) => {
      const s = store();
      if (!s.readJson) return t.skip();
      const last = await fill(s);
      const entries = await s.read('g:json', 0, last, 1000);
      expect(entries).toHaveLength(last);
      // The annotations are there to be spelled: an edited msg, a deleted one and its deleted edit without bodies.
      expect(entries[1]).toMatchObject({ edited: 3 });
      expect(entries[5]).toMatchObject({ body: null, deleted: 8 });
      expect(entries[6]).toMatchObject({ body: null, deleted: 8 });
      const texts = await s.readJson('g:json', 0, last, 1000);
      expect(texts).toEqual(entries.map((e) => JSON.stringify(e)));
      expect(texts.map((text) => JSON.parse(text) as unknown)).toEqual(entries);
    });

    it('reads the same range as read: after, until, limit and the byte budget', async (t) => {
      const s = store();
      if (!s.readJson) return t.skip();
      const last = await fill(s);
      for (const [after, until, limit, maxBytes] of [
        [0, last, 5, undefined],
        [3, 9, 100, undefined],
        [4, last, 100, 1],
        [0, last, 100, 700],
        [5, 5, 10, undefined],
        [2, last, 0, undefined],
      ] as const) {
        const entries = await s.read('g:json', after, until, limit, maxBytes);
        expect(await s.readJson('g:json', after, until, limit, maxBytes)).toEqual(entries.map((e) => JSON.stringify(e)));
      }
      expect(await s.readJson('g:unknown', 0, 10, 10)).toEqual([]);
    });
  });
}
