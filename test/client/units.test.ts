/** The SDK's small parts on their own: backoff, options, the transport tap, ids, the reorder buffer. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fullJitter } from '../../packages/client/src/client/backoff.js';
import { newCmid, newDeviceId, timePrefix } from '../../packages/client/src/client/ids.js';
import { resolveClientOptions } from '../../packages/client/src/client/options.js';
import { ReorderBuffer } from '../../packages/client/src/client/reorder.js';
import { tapTransport } from '../../packages/client/src/client/transport.js';
import type { Entry } from '../../packages/client/src/protocol/frames.js';
import { FakeServer } from './fake-server.js';
import { eventually } from './helpers.js';

const entry = (seq: number): Entry => ({ conv: 'g:a', seq, kind: 'msg', mid: String(seq), ts: seq, from: 'u', dev: 'd', body: seq });

describe('fullJitter', () => {
  it('stays below a ceiling that doubles per attempt up to maxMs', () => {
    const options = { baseMs: 100, maxMs: 1000 };
    expect([0, 1, 2, 3, 4, 10, 100].map((attempt) => fullJitter(attempt, options, () => 0.999_999))).toEqual([99, 199, 399, 799, 999, 999, 999]);
    expect(fullJitter(5, options, () => 0)).toBe(0);
    expect(fullJitter(1, options, () => 0.5)).toBe(100);
  });
});

describe('client options', () => {
  const base = { url: 'ws://h/v1/ws', token: 't' };
  it('are validated at construction, naming the bad option', () => {
    expect(() => resolveClientOptions({ ...base, url: 'http://h' })).toThrow(/option url/);
    expect(() => resolveClientOptions({ url: base.url })).toThrow(/option token/);
    expect(() => resolveClientOptions({ ...base, delivery: 'fast' as 'ordered' })).toThrow(/option delivery/);
    expect(() => resolveClientOptions({ ...base, gapWaitMs: -1 })).toThrow(/option gapWaitMs/);
    expect(() => resolveClientOptions({ ...base, syncPageSize: 5000 })).toThrow(/option syncPageSize/);
    expect(() => resolveClientOptions({ ...base, backoff: { baseMs: 100, maxMs: 10 } })).toThrow(/option backoff.maxMs/);
    expect(() => resolveClientOptions({ ...base, ackTimeoutMs: Number.POSITIVE_INFINITY })).toThrow(/option ackTimeoutMs/);
  });

  it('are frozen, with defaults filled in', () => {
    const options = resolveClientOptions({ ...base, sendDeadlineMs: Number.POSITIVE_INFINITY });
    expect(Object.isFrozen(options)).toBe(true);
    expect(options).toMatchObject({ delivery: 'ordered', gapWaitMs: 1000, ackTimeoutMs: 5000, sendDeadlineMs: Number.POSITIVE_INFINITY });
  });
});

describe('ids', () => {
  it('are protocol names of fixed length, and do not repeat', () => {
    const cmids = new Set(Array.from({ length: 2000 }, () => newCmid()));
    expect(cmids.size).toBe(2000);
    for (const cmid of cmids) expect(cmid).toMatch(/^[A-Za-z0-9]{22}$/);
    expect(newDeviceId()).toMatch(/^[A-Za-z0-9]{20}$/);
  });

  it('make cmids that sort by the time they were made, whatever the random part', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 47 }), fc.integer({ min: 1, max: 2 ** 40 }), (earlier, gap) => {
        const first = newCmid(earlier);
        const second = newCmid(earlier + gap);
        expect(first < second).toBe(true);
        expect(timePrefix(earlier + gap) > timePrefix(earlier)).toBe(true);
      }),
    );
    expect(timePrefix(0)).toBe('00000000');
    expect(timePrefix(61)).toBe('0000000z');
    expect(timePrefix(62)).toBe('00000010');
  });
});

describe('tapTransport', () => {
  it('sees every frame both ways, per connection, and passes them on unchanged', async () => {
    const fake = new FakeServer();
    const seen: string[] = [];
    const transport = tapTransport(fake.transport, {
      opened: (n) => seen.push(`${n} open`),
      sent: (n, text) => seen.push(`${n} > ${(JSON.parse(text) as { t: string }).t}`),
      received: (n, text) => seen.push(`${n} < ${(JSON.parse(text) as { t: string }).t}`),
      closed: (n, code) => seen.push(`${n} closed ${code}`),
    });
    const connection = transport.open('ws://x');
    const got: string[] = [];
    connection.onopen = () => connection.send(JSON.stringify({ t: 'hello', id: 1, proto: 1, token: 'a/b' }));
    connection.onmessage = (text) => {
      got.push(text);
      connection.close(1000);
    };
    await eventually(() => expect(seen).toEqual(['1 open', '1 > hello', '1 < welcome', '1 closed 1000']));
    expect(JSON.parse(got[0] ?? '{}')).toMatchObject({ t: 'welcome', user: 'a', device: 'b' });
  });
});

describe('ReorderBuffer', () => {
  function buffer(mode: 'ordered' | 'immediate', cursor = 0): { buffer: ReorderBuffer; delivered: number[]; cursors: number[] } {
    const delivered: number[] = [];
    const cursors: number[] = [];
    const b = new ReorderBuffer('g:a', cursor, mode, 60_000, {
      deliver: (e) => delivered.push(e.seq),
      cursor: (c) => cursors.push(c),
      gap: () => undefined,
    });
    return { buffer: b, delivered, cursors };
  }

  it('ordered: holds what is ahead, releases it when the gap fills, drops what it has', () => {
    const { buffer: b, delivered, cursors } = buffer('ordered', 3);
    expect([b.accept(entry(6)), b.accept(entry(5)), b.accept(entry(3)), b.accept(entry(6))]).toEqual([true, true, false, false]);
    expect(delivered).toEqual([]);
    expect(b.hasGap).toBe(true);
    b.accept(entry(4));
    expect(delivered).toEqual([4, 5, 6]);
    expect(cursors).toEqual([6]);
    expect(b.hasGap).toBe(false);
    b.stop();
  });

  it('skipTo passes over unreadable history but delivers what did arrive', () => {
    const { buffer: b, delivered } = buffer('ordered');
    b.accept(entry(3));
    b.accept(entry(7));
    b.skipTo(5);
    expect(delivered).toEqual([3]);
    expect(b.cursor).toBe(5);
    b.accept(entry(6));
    expect(delivered).toEqual([3, 6, 7]);
    b.stop();
  });

  it('immediate: delivers at once, once, and moves the cursor over what is contiguous', () => {
    const { buffer: b, delivered } = buffer('immediate');
    for (const seq of [3, 1, 3, 2, 5]) b.accept(entry(seq));
    expect(delivered).toEqual([3, 1, 2, 5]);
    expect(b.cursor).toBe(3);
    expect(b.hasGap).toBe(true);
    b.stop();
  });
});
