import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeAck, encodeBatch, encodeMsgFrame, type AckFrame, type Entry } from '../../packages/client/src/protocol/index.js';

const text = fc.string({ unit: 'binary', maxLength: 40 });
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -0, 2 ** 53 - 1, 1e21));

/** Entries with their members in the order the server builds them, optional ones sometimes absent. */
const entryArb: fc.Arbitrary<Entry> = fc
  .record({
    conv: text,
    seq: number,
    kind: fc.constantFrom('msg' as const, 'system' as const, 'edit' as const, 'delete' as const, 'react' as const),
    mid: text,
    ts: number,
    from: text,
    dev: text,
    body: fc.jsonValue(),
    cmid: fc.option(text, { nil: undefined }),
    dseq: fc.option(number, { nil: undefined }),
    ctx: fc.option(fc.record({ seen: number }, { requiredKeys: [] }), { nil: undefined }),
    ref: fc.option(number, { nil: undefined }),
    edited: fc.option(number, { nil: undefined }),
    deleted: fc.option(number, { nil: undefined }),
  })
  .map(({ cmid, dseq, ctx, ref, edited, deleted, ...required }) => {
    const entry: Entry = { ...required };
    if (cmid !== undefined) entry.cmid = cmid;
    if (dseq !== undefined) entry.dseq = dseq;
    if (ctx !== undefined) entry.ctx = ctx;
    if (ref !== undefined) entry.ref = ref;
    if (edited !== undefined) entry.edited = edited;
    if (deleted !== undefined) entry.deleted = deleted;
    return entry;
  });

describe('frame encoding', () => {
  it('spells a push exactly as JSON.stringify does, with or without the body text given', () => {
    fc.assert(
      fc.property(entryArb, (entry) => {
        const bodyJson = JSON.stringify(entry.body);
        expect(encodeMsgFrame(entry)).toBe(JSON.stringify({ t: 'msg', ...entry }));
        expect(encodeMsgFrame(entry, bodyJson)).toBe(JSON.stringify({ t: 'msg', ...entry }));
      }),
      { numRuns: 500 },
    );
  });

  it('uses the body text it is given, so the push carries the body as the send spelled it', () => {
    const entry: Entry = { conv: 'g:a', seq: 1, kind: 'msg', mid: '1', ts: 2, from: 'u', dev: 'd', body: { a: 1 } };
    expect(encodeMsgFrame(entry, '{"a":1}')).toBe('{"t":"msg","conv":"g:a","seq":1,"kind":"msg","mid":"1","ts":2,"from":"u","dev":"d","body":{"a":1}}');
    expect(JSON.parse(encodeMsgFrame(entry, '[2]')).body).toEqual([2]);
  });

  it('leaves out a body JSON cannot hold, as JSON.stringify does', () => {
    const entry = { conv: 'g:a', seq: 1, kind: 'msg', mid: '1', ts: 2, from: 'u', dev: 'd', body: undefined } as Entry;
    expect(encodeMsgFrame(entry)).toBe(JSON.stringify({ t: 'msg', ...entry }));
  });

  it('spells an ack exactly as JSON.stringify does', () => {
    fc.assert(
      fc.property(fc.record({ id: number, conv: text, cmid: text, dseq: number, seq: number, mid: text, ts: number }), (fields) => {
        const ack: AckFrame = { t: 'ack', ...fields };
        expect(encodeAck(ack)).toBe(JSON.stringify(ack));
      }),
      { numRuns: 500 },
    );
  });
});

describe('batch encoding', () => {
  it('spells a sync reply around its entry texts exactly as JSON.stringify spells the frame', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0 }), text, fc.array(entryArb, { maxLength: 5 }), fc.integer({ min: 0 }), (id, conv, msgs, last) => {
        const texts = msgs.map((entry) => JSON.stringify(entry));
        expect(encodeBatch(id, conv, texts, last)).toBe(JSON.stringify({ t: 'batch', id, conv, msgs, last }));
      }),
      { numRuns: 300 },
    );
  });
});
