/** The chat-state rules on hand-made logs: folding, the unread rule, read positions in real time, and the final judgement. */
import { describe, expect, it } from 'vitest';
import { foldEntries, judgeFinals, ReadPositions, unreadBounds, unreadOf, type ChatEntry } from '../../packages/server/src/chaos/chat-state-checker.js';

let mid = 0;
const entry = (seq: number, kind: string, from: string, body: unknown, ref?: number): ChatEntry => ({
  seq,
  kind,
  mid: `m${++mid}`,
  ts: 1000 + seq,
  from,
  dev: 'd1',
  body,
  ...(ref === undefined ? {} : { ref }),
});

/** 1 create · 2 alice "hi" · 3 bob "yo" · 4 alice edits 2 · 5 bob +1 on 2 · 6 alice edits 2 again · 7 bob deletes 3 · 8 carol +1 on 2 · 9 bob un-+1 on 2 · 10 a future kind */
const LOG: ChatEntry[] = [
  entry(1, 'system', 'alice', { op: 'create', members: ['alice', 'bob', 'carol'] }),
  entry(2, 'msg', 'alice', 'hi'),
  { ...entry(3, 'msg', 'bob', null), deleted: 7 }, // "yo" until 7 deleted it: the server returns it without a body
  entry(4, 'edit', 'alice', 'hi all', 2),
  entry(5, 'react', 'bob', { key: '+1', on: true }, 2),
  entry(6, 'edit', 'alice', 'hi everyone', 2),
  entry(7, 'delete', 'bob', null, 3),
  entry(8, 'react', 'carol', { key: '+1', on: true }, 2),
  entry(9, 'react', 'bob', { key: '+1', on: false }, 2),
  entry(10, 'poll', 'carol', { q: '?' }, 2),
];

describe('foldEntries', () => {
  it('applies effects in seq order whatever order the entries came in: newest edit, delete over edits, last word per reaction', () => {
    const expected = [
      { seq: 2, from: 'alice', body: 'hi everyone', deleted: false, reactions: { '+1': ['carol'] } },
      { seq: 3, from: 'bob', body: null, deleted: true, reactions: {} },
    ];
    expect(foldEntries(LOG)).toEqual(expected);
    expect(foldEntries([...LOG].reverse())).toEqual(expected);
  });

  it('keeps a deleted message a tombstone even when an edit with a higher seq follows (the server refuses it; a fold must not resurrect it)', () => {
    const log = [entry(1, 'msg', 'alice', 'a'), entry(2, 'delete', 'alice', null, 1), entry(3, 'edit', 'alice', 'back', 1)];
    expect(foldEntries(log)).toEqual([{ seq: 1, from: 'alice', body: null, deleted: true, reactions: {} }]);
  });
});

describe('unreadOf', () => {
  it("counts others' messages in (read, last], never own ones, edits, reactions or deleted ones", () => {
    // bob: alice's 2 is unread, his own 3 never; for carol both, until 3's delete at 7 is within last
    expect(unreadOf('bob', LOG, 1, 10)).toBe(1);
    expect(unreadOf('carol', LOG, 1, 6)).toBe(2);
    expect(unreadOf('carol', LOG, 1, 7)).toBe(1);
    expect(unreadOf('carol', LOG, 2, 10)).toBe(0);
  });
});

describe('unreadBounds', () => {
  it("lets a former member's row count a message either way when only the annotation tells of its delete, after the row's last", () => {
    // dave was removed at 4: he may not read the delete at 7, his log shows 3 with the annotation only.
    const daves = LOG.filter((e) => e.seq <= 4);
    expect(unreadBounds('dave', daves, 1, 4)).toEqual({ min: 1, max: 2 });
    // with the delete's entry in the log, a delete above last came after the row: counted
    expect(unreadBounds('carol', LOG, 1, 6)).toEqual({ min: 2, max: 2 });
    // an annotation at or below last is a delete before the row, entry or not
    expect(unreadBounds('dave', daves.map((e) => (e.seq === 3 ? { ...e, deleted: 4 } : e)), 1, 4)).toEqual({ min: 1, max: 1 });
  });
});

describe('ReadPositions', () => {
  it('holds an answer to the highest answer that arrived before its request went out, not to later ones', () => {
    const reads = new ReadPositions();
    expect(reads.observe('bob', 'g:t', 0, { at: 10, value: 5 })).toBe(0);
    expect(reads.observe('bob', 'g:t', 5, { at: 20, value: 3 })).toBe(0); // overlapped the first: no order between them
    expect(reads.observe('bob', 'g:t', 21, { at: 30, value: 4 })).toBe(5);
    expect(reads.observe('bob', 'g:other', 21, { at: 30, value: 0 })).toBe(0);
  });
});

describe('judgeFinals', () => {
  const finals = new Map([[`carol\ng:t`, { entries: LOG, index: 99 }]]);
  const view = foldEntries(LOG);

  it('passes rows and views that match the log, and counts what it judged', () => {
    const { findings, judged } = judgeFinals(finals, [{ user: 'carol', conv: 'g:t', read: 1, last: 7, unread: 1, index: 5 }], [{ user: 'carol', device: 'd1', conv: 'g:t', items: view, index: 98 }]);
    expect(findings).toEqual([]);
    expect(judged).toEqual({ 'unread-wrong': 1, 'view-divergent': 1, 'deleted-body': 1, 'action-invalid': 6 });
  });

  it('finds a wrong unread count, a view that missed an edit, and a final log that kept a deleted body', () => {
    const stale = view.map((item) => (item.seq === 2 ? { ...item, body: 'hi all' } : item));
    const leaky = new Map([[`carol\ng:t`, { entries: LOG.map((e) => (e.seq === 3 ? { ...e, body: 'yo' } : e)), index: 99 }]]);
    const { findings } = judgeFinals(leaky, [{ user: 'carol', conv: 'g:t', read: 1, last: 7, unread: 2, index: 5 }], [{ user: 'carol', device: 'd2', conv: 'g:t', items: stale, index: 98 }]);
    expect(findings.map((f) => [f.kind, f.seqs])).toEqual([
      ['unread-wrong', [1, 7]],
      ['deleted-body', [3]],
      ['view-divergent', [2]],
    ]);
  });
});
