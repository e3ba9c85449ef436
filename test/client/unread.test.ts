/**
 * countUnread against the server's rule applied to the whole log: from any
 * anchor (a server row taken at any moment), with the entries after the
 * anchor's read position in any order and duplicated, and a read position moved
 * anywhere later, it gives the count a fresh row would; with entries missing it
 * either says it is not exact or is right anyway.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConversationFold, type FoldEntry } from '../../packages/client/src/client/fold.js';
import { countUnread } from '../../packages/client/src/client/unread.js';
import { USERS, buildLog, stepArb, syncedCopy } from './chat-log.js';

/** The server's count: msg entries in (read, upTo] by others, not deleted by a delete at or below upTo. */
function serverUnread(log: readonly FoldEntry[], upTo: number, read: number, self: string): number {
  const deleted = new Set(log.slice(0, upTo).filter((e) => e.kind === 'delete').map((e) => e.ref));
  return log.slice(read, upTo).filter((e) => e.kind === 'msg' && e.from !== self && !deleted.has(e.seq)).length;
}

/** Sending moves the sender's read position to its entry. */
function readAfter(log: readonly FoldEntry[], upTo: number, marked: number, self: string): number {
  const own = log.slice(0, upTo).filter((e) => e.from === self).at(-1)?.seq ?? 0;
  return Math.min(upTo, Math.max(marked, own));
}

const scenario = fc
  .tuple(fc.array(stepArb, { minLength: 1, maxLength: 50 }), fc.nat(2), fc.nat(), fc.nat(), fc.nat(), fc.nat())
  .map(([steps, user, a, r0, r1, drop]) => {
    const log = buildLog(steps);
    const self = USERS[user] as string;
    const anchorLast = log.length === 0 ? 0 : a % (log.length + 1);
    const anchorRead = readAfter(log, anchorLast, r0 % (anchorLast + 1), self);
    const finalRead = readAfter(log, log.length, anchorRead + (r1 % (log.length - anchorRead + 1)), self);
    return { log, self, anchorLast, anchorRead, finalRead, drop };
  });

describe('countUnread', () => {
  it('from any anchor, with every entry after its read position, equals a fresh server count', () => {
    fc.assert(
      fc.property(scenario, fc.infiniteStream(fc.nat()), ({ log, self, anchorLast, anchorRead, finalRead }, order) => {
        const anchor = { read: anchorRead, last: anchorLast, unread: serverUnread(log, anchorLast, anchorRead, self) };
        const copies = log.slice(anchorRead).flatMap((e) => [syncedCopy(log, e.seq, e.seq), syncedCopy(log, e.seq, log.length)]);
        const keys = [...order.take(copies.length)];
        const fold = new ConversationFold();
        copies.map((copy, i) => [keys[i] as number, copy] as const).sort((x, y) => x[0] - y[0]).forEach(([, copy]) => fold.add(copy));
        expect(countUnread(anchor, finalRead, fold, self)).toEqual({ count: serverUnread(log, log.length, finalRead, self), exact: true });
      }),
      { numRuns: 300 },
    );
  });

  it('with entries missing between the read positions, an exact answer is a right one', () => {
    fc.assert(
      fc.property(scenario, ({ log, self, anchorLast, anchorRead, finalRead, drop }) => {
        const anchor = { read: anchorRead, last: anchorLast, unread: serverUnread(log, anchorLast, anchorRead, self) };
        const fold = new ConversationFold();
        const missing = anchorRead + 1 + (drop % Math.max(1, finalRead - anchorRead));
        for (const entry of log.slice(anchorRead)) if (entry.seq !== missing || entry.seq > anchorLast) fold.add(entry);
        const result = countUnread(anchor, finalRead, fold, self);
        if (result.exact) expect(result.count).toBe(serverUnread(log, log.length, finalRead, self));
        else expect(missing <= Math.min(finalRead, anchorLast)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
