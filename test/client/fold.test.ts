/**
 * The folded conversation (edits, deletes, reactions) is a function of the set
 * of entries alone: any arrival order, any duplicates, any mix of pushed copies
 * and synced copies taken at any moment give what the reference fold gives for
 * the whole log.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConversationFold, type FoldEntry } from '../../packages/client/src/client/fold.js';
import { buildLog, referenceFold, stepArb, syncedCopy } from './chat-log.js';

/** A log and the copies a client receives: each seq at least once, some twice or more, pushed or synced later, shuffled. */
const scenario = fc
  .array(stepArb, { minLength: 1, maxLength: 60 })
  .map(buildLog)
  .filter((log) => log.length > 0)
  .chain((log) =>
    fc
      .array(
        fc.record({ seq: fc.integer({ min: 1, max: log.length }), synced: fc.boolean(), lateness: fc.nat(log.length) }),
        { maxLength: log.length * 2 },
      )
      .chain((extra) => {
        const copies = [...log.map((e) => ({ seq: e.seq, synced: false, lateness: 0 })), ...extra].map(({ seq, synced, lateness }) =>
          synced ? syncedCopy(log, seq, Math.min(log.length, seq + lateness)) : { ...(log[seq - 1] as FoldEntry) },
        );
        return fc.tuple(fc.constant(log), fc.shuffledSubarray(copies, { minLength: copies.length, maxLength: copies.length }));
      }),
  );

function fold(copies: readonly FoldEntry[]): ConversationFold {
  const folded = new ConversationFold();
  for (const copy of copies) folded.add(copy);
  return folded;
}

describe('ConversationFold', () => {
  it('equals the reference fold for any order and duplication of pushed and synced copies', () => {
    fc.assert(
      fc.property(scenario, ([log, copies]) => {
        expect(fold(copies).messages()).toEqual(referenceFold(log));
      }),
      { numRuns: 300 },
    );
  });

  it('reading messages() half way does not change the end result', () => {
    fc.assert(
      fc.property(scenario, fc.nat(), ([log, copies], cut) => {
        const folded = new ConversationFold();
        const at = cut % (copies.length + 1);
        copies.slice(0, at).forEach((copy) => folded.add(copy));
        folded.messages();
        copies.slice(at).forEach((copy) => folded.add(copy));
        expect(folded.messages()).toEqual(referenceFold(log));
      }),
      { numRuns: 100 },
    );
  });

  it('a delete wins over an edit with a higher seq of another copy, and a tombstone keeps its seq', () => {
    const base = { mid: '1', ts: 1, dev: 'd' };
    const folded = fold([
      { ...base, seq: 3, kind: 'delete', from: 'ann', ref: 1, body: null },
      { ...base, seq: 2, kind: 'edit', from: 'ann', ref: 1, body: 'b' },
      { ...base, seq: 1, kind: 'msg', from: 'ann', body: 'a' },
      { ...base, seq: 4, kind: 'msg', from: 'ben', body: 'c' },
    ]);
    expect(folded.messages().map((m) => [m.seq, m.body, m.deleted, m.edited])).toEqual([
      [1, null, 3, 2],
      [4, 'c', undefined, undefined],
    ]);
  });

  it("ignores another user's edit or delete, malformed reactions and unknown kinds", () => {
    const base = { mid: '1', ts: 1, dev: 'd' };
    const folded = fold([
      { ...base, seq: 1, kind: 'msg', from: 'ann', body: 'a' },
      { ...base, seq: 2, kind: 'edit', from: 'ben', ref: 1, body: 'hacked' },
      { ...base, seq: 3, kind: 'delete', from: 'ben', ref: 1, body: null },
      { ...base, seq: 4, kind: 'react', from: 'ben', ref: 1, body: { key: '', on: true } },
      { ...base, seq: 5, kind: 'react', from: 'ben', ref: 1, body: 'x' },
      { ...base, seq: 6, kind: 'pin', from: 'ben', ref: 1, body: {} },
      { ...base, seq: 7, kind: 'react', from: 'cat', ref: 1, body: { key: '+1', on: true } },
    ]);
    expect(folded.messages()).toEqual([{ seq: 1, kind: 'msg', mid: '1', ts: 1, from: 'ann', dev: 'd', body: 'a', reactions: [{ key: '+1', users: ['cat'] }] }]);
    expect(folded.size).toBe(7);
  });
});
