/** The cluster's rules (epochs, observed heads, liveness after the faults) and takeover times, on hand-made histories. */
import { describe, expect, it } from 'vitest';
import { ClusterChecker, percentiles, type MemberAfter } from '../../packages/server/src/chaos/cluster-checker.js';
import type { HistoryEvent } from '../../packages/server/src/chaos/history.js';

const C = 'g:c';
const D = 'g:d';
const everyone: MemberAfter = () => true;

function judge(events: Record<string, unknown>[], memberAfter: MemberAfter = everyone): ClusterChecker {
  const checker = new ClusterChecker();
  events.forEach((e, i) => checker.add(e as unknown as HistoryEvent, i));
  checker.finish(memberAfter);
  return checker;
}
const send = (at: number, cmid: string, conv = C, user = 'u1') => ({ type: 'send', at, user, device: 'd1', conv, cmid, dseq: 1 });
const ack = (at: number, cmid: string, seq: number, conv = C, user = 'u1') => ({ type: 'ack', at, user, device: 'd1', conv, cmid, dseq: 1, seq, mid: `m${seq}`, ts: seq });
const convs = (at: number, sentAt: number, last: number, user = 'u2') => ({ type: 'convs-result', at, user, device: 'd1', sentAt, version: 1, full: true, more: false, rows: [{ conv: C, last }] });

describe('epoch-decrease', () => {
  it('accepts equal and growing epochs, and names the first seq whose epoch fell', () => {
    expect(judge([{ type: 'epochs', at: 1, conv: C, seqs: [1, 2, 3, 4], epochs: [0, 3, 3, 5] }]).findings).toEqual([]);
    const found = judge([{ type: 'epochs', at: 1, conv: C, seqs: [1, 2, 3, 4], epochs: [3, 4, 2, 1] }]).findings;
    expect(found.map((f) => [f.kind, f.seqs])).toEqual([['epoch-decrease', [2, 3]]]);
  });
});

describe('head-regress', () => {
  it('finds a convs row below a seq acked before the request went out, not one sent before the ack', () => {
    expect(judge([send(1, 'a'), ack(5, 'a', 7), convs(9, 4, 6)]).findings).toEqual([]);
    const found = judge([send(1, 'a'), ack(5, 'a', 7), convs(9, 6, 6)]).findings;
    expect(found.map((f) => [f.kind, f.seqs])).toEqual([['head-regress', [6, 7]]]);
  });

  it('does not blame a head a former member is told (its readable range ends at its removal)', () => {
    const removedAt6: MemberAfter = (_conv, user, seq) => user !== 'u2' || seq < 6;
    expect(judge([send(1, 'a'), ack(5, 'a', 7), convs(9, 6, 6)], removedAt6).findings).toEqual([]);
  });

  it('judges a sync page asked from at or above the acked seq', () => {
    const sync = (after: number, last: number) => [
      { type: 'sync-start', at: 6, sync: 's', user: 'u2', device: 'd1', conv: C, after, limit: 10 },
      { type: 'sync-result', at: 7, sync: 's', user: 'u2', device: 'd1', conv: C, after, limit: 10, entries: [], last },
    ];
    expect(judge([send(1, 'a'), ack(5, 'a', 7), ...sync(7, 6)]).findings.map((f) => f.kind)).toEqual(['head-regress']);
    // from below it, a page that misses seq 7 is sync-stale's (checker.ts)
    expect(judge([send(1, 'a'), ack(5, 'a', 7), ...sync(3, 6)]).findings).toEqual([]);
  });
});

describe('not-live', () => {
  const stop = { type: 'faults-stop', at: 100, boundMs: 50 };
  it('accepts sends acked within the bound of the stop, or of their own first try when later', () => {
    expect(judge([send(10, 'a'), stop, ack(140, 'a', 1), send(300, 'b'), ack(340, 'b', 2)]).findings).toEqual([]);
  });
  it('finds a send acked later than the bound, and one still sending at the end', () => {
    const found = judge([send(10, 'a'), stop, ack(160, 'a', 1), send(200, 'b'), { type: 'pending', at: 900, user: 'u1', device: 'd1', conv: C, cmid: 'b', dseq: 2, state: 'sending', reason: 'settle' }]).findings;
    expect(found.map((f) => f.kind)).toEqual(['not-live', 'not-live']);
    expect(found[0]!.message).toContain('acked at 160 ms');
  });
  it('takes the own device reading it back for its ack, and leaves refused or blocked sends to the other rules', () => {
    const own = { type: 'push', at: 120, user: 'u1', device: 'd1', conn: 'x', conv: C, entry: { seq: 1, kind: 'msg', mid: 'm1', ts: 1, from: 'u1', dev: 'd1', cmid: 'a', dseq: 1 } };
    const refused = { type: 'error', at: 130, user: 'u1', device: 'd1', conv: C, cmid: 'b', dseq: 2, code: 'forbidden' };
    const blocked = { type: 'pending', at: 900, user: 'u1', device: 'd1', conv: D, cmid: 'c', dseq: 1, state: 'failed', reason: 'blocked' };
    expect(judge([send(10, 'a'), stop, own, send(110, 'b'), refused, send(120, 'c', D), blocked]).findings).toEqual([]);
  });
  it('judges nothing without a faults-stop', () => {
    const c = judge([send(10, 'a')]);
    expect(c.judged['not-live']).toBe(0);
  });
});

describe('takeover times', () => {
  it('from a node fault to the first ack in a conversation of its slots; none when no such ack came', () => {
    const c = judge([
      { type: 'node-hurt', at: 100, node: 'n2', fault: 'server-kill', slots: 3, convs: [C] },
      send(90, 'x', D), ack(150, 'x', 1, D),
      send(95, 'a'), ack(420, 'a', 1), ack(500, 'a', 1),
      { type: 'node-hurt', at: 600, node: 'n1', fault: 'pg-drop', slots: 1, convs: [D] },
    ]);
    expect(c.takeovers).toEqual([
      { node: 'n2', fault: 'server-kill', ms: 320, convs: 1 },
      { node: 'n1', fault: 'pg-drop', ms: undefined, convs: 1 },
    ]);
  });
  it('percentiles by nearest rank', () => {
    expect(percentiles([])).toBeUndefined();
    expect(percentiles([30, 10, 20])).toEqual({ p50: 20, p99: 30, max: 30, n: 3 });
  });
});

describe('head-regress after a membership change', () => {
  it('takes an acked change\'s seq (even a no-op answered with the head) as a floor for later heads', () => {
    const change = { type: 'membership', at: 5, user: 'u1', conv: C, op: 'members', add: [], remove: ['u3'], seq: 9 };
    expect(judge([change, convs(9, 6, 9)]).findings).toEqual([]);
    expect(judge([change, convs(9, 6, 8)]).findings.map((f) => [f.kind, f.seqs])).toEqual([['head-regress', [8, 9]]]);
    // a refused change says nothing about the head
    expect(judge([{ ...change, code: 'forbidden' }, convs(9, 6, 8)]).findings).toEqual([]);
  });
});
