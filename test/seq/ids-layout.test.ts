import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_MID_EPOCH_MS,
  MID_MAX_SEQUENCE,
  MID_MAX_TIME,
  MID_MAX_WORKER,
  MID_SEQUENCE_BITS,
  MID_TIME_BITS,
  MID_WORKER_BITS,
  decodeMid,
  encodeMid,
} from '../../packages/server/src/seq/ids.js';

const E = DEFAULT_MID_EPOCH_MS;

/** The layout computed the slow, obviously right way, to check the double-based decimal composition. */
function reference(time: number, worker: number, sequence: number): string {
  return ((BigInt(time) << 21n) | (BigInt(worker) << 14n) | BigInt(sequence)).toString();
}

describe('mid layout', () => {
  it('is 1 + 42 + 7 + 14 = 64 bits, the time field lasting past 70 years from 2025-01-01', () => {
    expect(1 + MID_TIME_BITS + MID_WORKER_BITS + MID_SEQUENCE_BITS).toBe(64);
    expect(E).toBe(Date.UTC(2025, 0, 1));
    const end = new Date(E + MID_MAX_TIME);
    expect(end.toISOString()).toBe('2164-05-15T07:35:11.103Z');
    expect(end.getUTCFullYear() - 2025).toBeGreaterThanOrEqual(70);
  });

  it('round-trips every combination of field edges, matching the BigInt reference', () => {
    for (const time of [0, 1, 9_999, 10_000, 2 ** 32, MID_MAX_TIME - 1, MID_MAX_TIME]) {
      for (const worker of [0, 1, MID_MAX_WORKER - 1, MID_MAX_WORKER]) {
        for (const sequence of [0, 1, 9_999, 10_000, MID_MAX_SEQUENCE - 1, MID_MAX_SEQUENCE]) {
          const mid = encodeMid({ time: E + time, worker, sequence });
          expect(mid).toBe(reference(time, worker, sequence));
          expect(decodeMid(mid)).toEqual({ time: E + time, worker, sequence });
        }
      }
    }
  });

  it('puts the largest fields at 2^63 - 1 exactly: positive, never wrapped', () => {
    const top = encodeMid({ time: E + MID_MAX_TIME, worker: MID_MAX_WORKER, sequence: MID_MAX_SEQUENCE });
    expect(top).toBe('9223372036854775807');
    expect(decodeMid(top)).toEqual({ time: E + MID_MAX_TIME, worker: MID_MAX_WORKER, sequence: MID_MAX_SEQUENCE });
  });

  it('property: decode(encode(fields)) is the identity and the string equals the BigInt reference', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MID_MAX_TIME }),
        fc.integer({ min: 0, max: MID_MAX_WORKER }),
        fc.integer({ min: 0, max: MID_MAX_SEQUENCE }),
        (time, worker, sequence) => {
          const mid = encodeMid({ time: E + time, worker, sequence });
          expect(mid).toBe(reference(time, worker, sequence));
          expect(decodeMid(mid)).toEqual({ time: E + time, worker, sequence });
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('property: ids order like (time, worker, sequence) when compared as numbers', () => {
    const fields = fc.tuple(fc.integer({ min: 0, max: MID_MAX_TIME }), fc.integer({ min: 0, max: MID_MAX_WORKER }), fc.integer({ min: 0, max: MID_MAX_SEQUENCE }));
    fc.assert(
      fc.property(fields, fields, (a, b) => {
        const ma = BigInt(encodeMid({ time: E + a[0], worker: a[1], sequence: a[2] }));
        const mb = BigInt(encodeMid({ time: E + b[0], worker: b[1], sequence: b[2] }));
        const byFields = a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
        expect(Math.sign(Number(ma - mb))).toBe(Math.sign(byFields));
      }),
    );
  });

  it('refuses a field one past its width instead of spilling into the next field', () => {
    expect(() => encodeMid({ time: E, worker: MID_MAX_WORKER + 1, sequence: 0 })).toThrow(/worker must be an integer in 0..127/);
    expect(() => encodeMid({ time: E, worker: 0, sequence: MID_MAX_SEQUENCE + 1 })).toThrow(/sequence must be an integer in 0..16383/);
    expect(() => encodeMid({ time: E, worker: -1, sequence: 0 })).toThrow(RangeError);
    expect(() => encodeMid({ time: E, worker: 0.5, sequence: 0 })).toThrow(RangeError);
    expect(() => encodeMid({ time: E - 1, worker: 0, sequence: 0 })).toThrow(RangeError);
  });

  it('refuses a time past the end of the range with a clear error', () => {
    let error: unknown;
    try {
      encodeMid({ time: E + MID_MAX_TIME + 1, worker: 0, sequence: 0 });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'mid_time_exhausted' });
    expect(String(error)).toContain('2164-05-15T07:35:11.103Z');
  });

  it('honours another epoch on both sides', () => {
    const epoch = Date.UTC(2030, 0, 1);
    const mid = encodeMid({ time: epoch + 5, worker: 3, sequence: 4 }, epoch);
    expect(mid).toBe(reference(5, 3, 4));
    expect(decodeMid(mid, epoch)).toEqual({ time: epoch + 5, worker: 3, sequence: 4 });
  });

  it('decode refuses what is not the decimal form of a non-negative 63-bit integer', () => {
    for (const bad of ['', '-1', '01', '1.5', ' 1', 'abc', '9223372036854775808', '99999999999999999999', '1e5']) {
      expect(() => decodeMid(bad), bad).toThrow(RangeError);
    }
  });
});
