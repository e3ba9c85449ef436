/** The report: counts from the history and the runner, exact percentiles, a well-formed SVG with the kills marked. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HistoryEvent } from '../../packages/server/src/chaos/history.js';
import { checkHistory } from '../../packages/server/src/chaos/checker.js';
import { countHistory, latencySamples, latencyStats, percentile, renderSvg, renderSummary, buildReport, writeReport } from '../../packages/server/src/chaos/report.js';

/** A tiny XML well-formedness check: balanced tags, quoted attributes, escaped text. */
function assertWellFormedXml(text: string): void {
  const stack: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/gy;
  let match: RegExpExecArray | null;
  let rootSeen = false;
  const body = text.replace(/^<\?xml[^>]*\?>\s*/, '').trim();
  while (token.lastIndex < body.length && (match = token.exec(body)) !== null) {
    const [, closing, name, , selfClosing, chars, stray] = match;
    if (stray !== undefined) throw new Error(`unparsable markup at ${match.index}: ${body.slice(match.index, match.index + 40)}`);
    if (chars !== undefined) {
      if (stack.length === 0 && chars.trim() !== '') throw new Error('text outside the root element');
      if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(chars)) throw new Error(`unescaped & in ${chars}`);
      continue;
    }
    if (closing) {
      if (stack.pop() !== name) throw new Error(`</${name}> does not close the open element`);
    } else if (!selfClosing) {
      if (stack.length === 0 && rootSeen) throw new Error('two root elements');
      rootSeen = true;
      stack.push(name!);
    } else rootSeen = true;
  }
  if (token.lastIndex !== body.length && body.length > 0) throw new Error(`stopped at ${token.lastIndex}`);
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (!rootSeen) throw new Error('no element');
}

function history(): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  // 100 messages with latencies 1..100 ms; the 10th is resent once and acked twice (a dedup hit).
  for (let i = 1; i <= 100; i++) {
    const base = { user: 'u1', device: 'd1', conv: 'g:a&b', cmid: `c${i}`, dseq: i };
    events.push({ type: 'send', at: i * 200, ...base, attempt: 1, conn: 'u1/d1#1' });
    // resent on the same connection (an ack timeout), then on a new one (a reconnect)
    if (i === 10) events.push({ type: 'send', at: i * 200 + 5, ...base, attempt: 2, conn: 'u1/d1#1' }, { type: 'send', at: i * 200 + 6, ...base, attempt: 3, conn: 'u1/d1#2' });
    events.push({ type: 'ack', at: i * 200 + i, ...base, seq: i, mid: `m${i}`, ts: i });
    if (i === 10) events.push({ type: 'ack', at: i * 200 + i + 1, ...base, seq: i, mid: `m${i}`, ts: i });
  }
  events.push({ type: 'send', at: 20_100, user: 'u1', device: 'd1', conv: 'g:a&b', cmid: 'lost', dseq: 101 });
  events.push({ type: 'error', at: 20_150, user: 'u1', device: 'd1', conv: 'g:a&b', cmid: 'lost', dseq: 101, code: 'out_of_order', expected: 101 });
  events.push({ type: 'pending', at: 20_160, user: 'u1', device: 'd1', conv: 'g:a&b', cmid: 'lost', dseq: 101, state: 'sending', reason: 'settle timeout' });
  events.push({ type: 'fault', at: 4_990, kind: 'server-kill', detail: '7 sends in flight' }, { type: 'fault', at: 11_990, kind: 'server-kill', detail: '30 sends in flight' }, { type: 'fault', at: 8_000, kind: 'cut' });
  events.push({ type: 'server-kill', at: 5_000 }, { type: 'server-start', at: 5_500 }, { type: 'server-kill', at: 12_000 });
  events.push({ type: 'client-kill', at: 7_000, user: 'u2', device: 'd1' }, { type: 'client-start', at: 7_800, user: 'u2', device: 'd1' });
  // A first start is not a restart.
  events.push({ type: 'client-start', at: 1, user: 'u3', device: 'd1' });
  return events.sort((a, b) => a.at - b.at);
}

describe('report', () => {
  it('computes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted on purpose
    expect(latencyStats(values)).toEqual({ count: 100, p50: 50, p90: 90, p99: 99, max: 100 });
    expect(latencyStats([7])).toEqual({ count: 1, p50: 7, p90: 7, p99: 7, max: 7 });
    expect(latencyStats([])).toEqual({ count: 0, p50: 0, p90: 0, p99: 0, max: 0 });
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 51)).toBe(3);
  });

  it('measures each message from its first send to its first ack', () => {
    const samples = latencySamples(history());
    expect(samples).toHaveLength(100);
    expect(samples[9]).toEqual({ at: 2000, ms: 10 });
    expect(buildReport(history()).latency).toEqual({ count: 100, p50: 50, p90: 90, p99: 99, max: 100 });
  });

  it('counts from the history, and lets the runner override what it knows better', () => {
    const counts = countHistory(history());
    expect(counts).toMatchObject({ sent: 101, resent: 2, sameConnectionResends: 1, acked: 100, unacked: 1, dedupHits: 1, outOfOrder: 1, sendErrors: 0, pending: 1, serverKills: 2, clientRestarts: 1, gapsFilled: 0 });
    expect(countHistory(history(), { gapsFilled: 7, dedupHits: 3, connectionsCut: 4 })).toMatchObject({ gapsFilled: 7, dedupHits: 3, connectionsCut: 4, sent: 101 });
  });

  it('draws a well-formed SVG with every server kill and client restart marked', () => {
    const svg = renderSvg(history(), 'latency <seed 1> & more');
    assertWellFormedXml(svg);
    expect(svg.match(/class="kill server-kill"/g)).toHaveLength(2);
    expect(svg.match(/class="restart client-restart"/g)).toHaveLength(1);
    expect(svg).toContain('time since start (s)');
    expect(svg).toContain('ack latency (ms)');
    expect(svg).toContain('>p50 50.0 ms<');
    expect(svg).toContain('>p99 99.0 ms<');
    expect(svg).toContain('latency &lt;seed 1&gt; &amp; more');
    expect(svg.match(/<circle /g)!.length).toBeGreaterThanOrEqual(100); // every message (plus the legend)
    // The checker itself can tell a broken document.
    expect(() => assertWellFormedXml('<svg><g></svg>')).toThrow();
    expect(() => assertWellFormedXml('<svg><text>a & b</text></svg>')).toThrow();
  });

  it('writes the chart, the summary and the JSON report, and the summary says what failed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sequent-report-'));
    try {
      const events = history();
      // no final logs in this history: the floor is lowered to judge the rest
      const check = checkHistory(events, { floor: { finalLogs: 0 } });
      const written = await writeReport(join(dir, 'out'), events, { seed: 9, check, counters: { connectionsCut: 2 } });
      assertWellFormedXml(readFileSync(written.svgPath, 'utf8'));
      const summary = readFileSync(written.summaryPath, 'utf8');
      expect(summary).toContain('seed 9');
      expect(summary).toContain('p50 50.0 · p90 90.0 · p99 99.0 · max 100');
      expect(summary).toContain('server kills 2, client restarts 1, connections cut 2, pending at the end 1');
      expect(summary).toMatch(/faults fired: server-kill 2 \(6\/min\), .*cut 1 \(3\/min\)/);
      expect(summary).toMatch(/operations judged per rule: ack-lost \d+, /);
      expect(summary).toContain('sends in flight at a server kill: min 7, median 7, max 30; resends on the same connection 1');
      expect(summary).toContain('result: OK');
      expect(JSON.parse(readFileSync(written.jsonPath, 'utf8'))).toMatchObject({ seed: 9, violations: 0, counts: { sent: 101 } });
      const failed = renderSummary({ ...written.report, violations: 1 }, [{ kind: 'gap', message: 'g:a lacks seq 3', conv: 'g:a', seqs: [3], events: [{ type: 'server-kill', at: 1 }] }]);
      expect(failed).toContain('result: FAILED — 1 violation(s)');
      expect(failed).toContain('[gap] g:a lacks seq 3\n    {"type":"server-kill","at":1}');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
