/** The history format: stamped on one monotonic clock, round-trips through JSON Lines. */
import { describe, expect, it } from 'vitest';
import { bodyDigest, HistoryRecorder, parseJsonLines, toHistoryEntry, toJsonLines, type SendEvent } from '../../packages/server/src/chaos/history.js';

describe('history', () => {
  it('stamps events with a clock that never goes back, even if the source does', () => {
    const readings = [100, 105, 103, 110];
    const recorder = new HistoryRecorder(() => readings.shift() ?? 200);
    recorder.record<SendEvent>({ type: 'send', user: 'u1', device: 'd1', conv: 'g:a', cmid: 'c1', dseq: 1 });
    recorder.record({ type: 'server-kill' });
    recorder.record({ type: 'server-start' });
    expect(recorder.events.map((e) => e.at)).toEqual([5, 5, 10]);
  });

  it('round-trips through JSON Lines and refuses a line that is not an event', () => {
    const recorder = new HistoryRecorder(() => 0);
    recorder.record({ type: 'client-kill', user: 'u1', device: 'd1' });
    recorder.record({ type: 'final-log', user: 'u1', device: 'd1', conv: 'g:a', entries: [], last: 0 });
    const text = toJsonLines(recorder.events);
    expect(text.split('\n')).toHaveLength(3);
    expect(parseJsonLines(text)).toEqual(recorder.events);
    expect(() => parseJsonLines('{"type":"send"}\n')).toThrow(/line 1/);
  });

  it('keeps system bodies and digests message bodies', () => {
    const base = { seq: 3, mid: '9', ts: 1, from: 'u1', dev: 'd1' };
    const system = toHistoryEntry({ ...base, kind: 'system', body: { op: 'members', add: ['u2'], remove: [] } });
    expect(system.body).toEqual({ op: 'members', add: ['u2'], remove: [] });
    const message = toHistoryEntry({ ...base, kind: 'msg', cmid: 'c', dseq: 2, body: { text: 'hi' } });
    expect(message).toEqual({ ...base, kind: 'msg', cmid: 'c', dseq: 2, body: bodyDigest({ text: 'hi' }) });
    expect(bodyDigest({ text: 'hi' })).not.toBe(bodyDigest({ text: 'ho' }));
  });
});
