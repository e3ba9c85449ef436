/** SeqRanges against a plain Set: the same members, the same gaps, whatever order seqs come in. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeqRanges } from '../../packages/server/src/chaos/seq-ranges.js';

describe('SeqRanges', () => {
  it('holds exactly the seqs added, in few ranges, and names the missing ones', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 80 }), (seqs) => {
        const set = new Set<number>();
        const ranges = new SeqRanges();
        for (const s of seqs) expect(ranges.add(s)).toBe(!set.has(s) && (set.add(s), true));
        expect(ranges.size).toBe(set.size);
        for (let s = 0; s <= 61; s++) expect(ranges.has(s)).toBe(set.has(s));
        const flat = [...ranges.ranges()].flatMap(([lo, hi]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i));
        expect(flat).toEqual([...set].sort((a, b) => a - b));
        const missing = Array.from({ length: 60 }, (_, i) => i + 1).filter((s) => !set.has(s));
        expect(ranges.missing(1, 60, 1000)).toEqual({ seqs: missing, count: missing.length });
      }),
    );
  });
});
