/**
 * What a chaos run tells its reader: counts, ack latency percentiles, a text
 * summary and an SVG chart of ack latency over the run with the server kills
 * and client restarts marked. The SVG is written by hand (no dependency) so it
 * opens in any browser.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RETRY_CODES, type CheckResult, type Violation } from './checker.js';
import { CLUSTER_FAULT_KINDS, FAULT_KINDS, type HistoryEvent } from './history.js';
import { SeqRanges } from './seq-ranges.js';

export interface ReportCounts {
  /** distinct messages sent (device, conv, cmid) */
  sent: number;
  /** send frames beyond the first of each message */
  resent: number;
  /** distinct messages acked */
  acked: number;
  /** sent, never acked */
  unacked: number;
  /** of those, not listed as pending but read back by their own device in a push or sync (the ack was lost; the SDK settled the send from the log) */
  readBack: number;
  /** of those, refused with a final code (an edit or delete of another's message, an action on a deleted one) and dropped by their device */
  refused: number;
  /** of those, neither listed as pending, refused, nor read back by their own device: each one is a send nobody can account for */
  unaccounted: number;
  /** resends the server answered from its dedup table (runner's count; else acks beyond the first) */
  dedupHits: number;
  outOfOrder: number;
  /** other errors answering sends */
  sendErrors: number;
  /** sends still unacked at the end, each listed with its reason */
  pending: number;
  /** resends on the connection of the attempt before (after an ack timeout, not a reconnect) */
  sameConnectionResends: number;
  /** entries a client learned by sync that no push had brought (runner's count) */
  gapsFilled: number;
  pushes: number;
  syncs: number;
  serverKills: number;
  clientRestarts: number;
  /** connections the fault proxy cut (runner's count) */
  connectionsCut: number;
}

export interface LatencyStats {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** One message's ack latency: from its first send to its first ack, placed at the send's time. */
export interface LatencySample {
  at: number;
  ms: number;
}

export interface ChaosReport {
  seed?: number;
  durationMs: number;
  counts: ReportCounts;
  /** Faults that fired, by kind (FAULT_KINDS), and per minute of the run. */
  faults: Record<string, number>;
  faultsPerMinute: Record<string, number>;
  /** Sends in flight when the server was killed: fewest, median, most over the kills. */
  inFlightAtKill: { min: number; median: number; max: number };
  latency: LatencyStats;
  checked?: CheckResult['checked'];
  /** Operations each checker rule judged. */
  perRule?: CheckResult['perRule'];
  violations: number;
  /** What the runner measured about itself (peak memory, history size). */
  run?: Record<string, number | string>;
}

export interface ReportInput {
  seed?: number;
  /** What the runner counted itself; each given count replaces the one read from the history. */
  counters?: Partial<ReportCounts>;
  check?: CheckResult;
  run?: Record<string, number | string>;
  /** The time faults were fired over (the run without its settling end); default: the whole history. */
  faultWindowMs?: number;
}

const keyOf = (e: { user: string; device: string; conv: string; cmid: string }): string => `${e.user}/${e.device}/${e.conv}/${e.cmid}`;

/** Nearest-rank percentile of an ascending list (0 for an empty one). */
export function percentile(sortedAsc: readonly number[], p: number): number {
  if (sortedAsc.length === 0) return 0;
  const rank = Math.min(sortedAsc.length, Math.max(1, Math.ceil((p / 100) * sortedAsc.length)));
  return sortedAsc[rank - 1] ?? 0;
}

export function latencyStats(values: readonly number[]): LatencyStats {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 };
}

type Mark = { at: number; type: 'server-kill' } | { at: number; type: 'client-start'; user: string; device: string };

/**
 * Everything the report needs, gathered one event at a time (the history of a
 * long run is read from disk as a stream): per message its sends and acks, one
 * latency sample each, the kill and restart marks, fault counts.
 */
export class ReportBuilder {
  private readonly sends = new Map<string, number>();
  private readonly firstSend = new Map<string, number>();
  private readonly acks = new Map<string, number>();
  readonly samples: LatencySample[] = [];
  readonly marks: Mark[] = [];
  private readonly killed = new Set<string>();
  private readonly faultCounts = new Map<string, number>();
  private readonly lastConn = new Map<string, string | undefined>();
  private sameConnectionResends = 0;
  private readonly inFlight: number[] = [];
  private outOfOrder = 0;
  private sendErrors = 0;
  private pending = 0;
  private readonly pendingKeys = new Set<string>();
  private readonly refusedKeys = new Set<string>();
  /** sends their own device saw stored, in a push or a sync */
  private readonly ownSeen = new Set<string>();
  private pushes = 0;
  private syncs = 0;
  private serverKills = 0;
  private clientRestarts = 0;
  /** Per device and conversation, the seqs a push or an ack brought: a sync entry outside them filled a gap. */
  private readonly seen = new Map<string, SeqRanges>();
  private gapsFilled = 0;
  endMs = 0;

  private seenBy(device: string, conv: string): SeqRanges {
    const key = `${device}\n${conv}`;
    let seqs = this.seen.get(key);
    if (!seqs) this.seen.set(key, (seqs = new SeqRanges()));
    return seqs;
  }

  private noteOwn(user: string, device: string, conv: string, entry: { from?: string; dev?: string; cmid?: string }): void {
    if (entry.from === user && entry.dev === device && entry.cmid !== undefined) this.ownSeen.add(keyOf({ user, device, conv, cmid: entry.cmid }));
  }

  add(e: HistoryEvent): void {
    this.endMs = Math.max(this.endMs, e.at);
    switch (e.type) {
      case 'send': {
        const key = keyOf(e);
        this.sends.set(key, (this.sends.get(key) ?? 0) + 1);
        if (!this.firstSend.has(key)) this.firstSend.set(key, e.at);
        else if (e.conn !== undefined && this.lastConn.get(key) === e.conn) this.sameConnectionResends++;
        this.lastConn.set(key, e.conn);
        return;
      }
      case 'ack': {
        const key = keyOf(e);
        const n = this.acks.get(key) ?? 0;
        this.acks.set(key, n + 1);
        const sentAt = this.firstSend.get(key);
        if (n === 0 && sentAt !== undefined) this.samples.push({ at: sentAt, ms: e.at - sentAt });
        this.seenBy(e.device, e.conv).add(e.seq);
        return;
      }
      case 'error':
        if (e.code === 'out_of_order') this.outOfOrder++;
        else this.sendErrors++;
        if (!RETRY_CODES.has(e.code)) this.refusedKeys.add(keyOf(e));
        return;
      case 'pending':
        this.pending++;
        this.pendingKeys.add(keyOf(e));
        return;
      case 'push':
        this.pushes++;
        this.seenBy(e.device, e.conv).add(e.entry.seq);
        this.noteOwn(e.user, e.device, e.conv, e.entry);
        return;
      case 'sync-result': {
        this.syncs++;
        const seen = this.seenBy(e.device, e.conv);
        for (const entry of e.entries) {
          if (seen.add(entry.seq)) this.gapsFilled++;
          this.noteOwn(e.user, e.device, e.conv, entry);
        }
        return;
      }
      case 'server-kill':
        this.serverKills++;
        this.marks.push({ at: e.at, type: 'server-kill' });
        return;
      case 'client-kill':
        this.killed.add(`${e.user}/${e.device}`);
        return;
      case 'client-start':
        if (this.killed.delete(`${e.user}/${e.device}`)) {
          this.clientRestarts++;
          this.marks.push({ at: e.at, type: 'client-start', user: e.user, device: e.device });
        }
        return;
      case 'fault': {
        this.faultCounts.set(e.kind, (this.faultCounts.get(e.kind) ?? 0) + 1);
        const inFlight = e.kind === 'server-kill' ? /^(\d+) sends in flight/.exec(e.detail ?? '') : null;
        if (inFlight) this.inFlight.push(Number(inFlight[1]));
        return;
      }
      default:
        return;
    }
  }

  counts(counters: Partial<ReportCounts> = {}): ReportCounts {
    const sum = (m: Map<string, number>): number => [...m.values()].reduce((n, v) => n + v, 0);
    const unacked = [...this.sends.keys()].filter((k) => !this.acks.has(k));
    const fromHistory: ReportCounts = {
      sent: this.sends.size,
      resent: sum(this.sends) - this.sends.size,
      acked: this.acks.size,
      unacked: unacked.length,
      readBack: unacked.filter((k) => !this.pendingKeys.has(k) && this.ownSeen.has(k)).length,
      refused: unacked.filter((k) => !this.pendingKeys.has(k) && !this.ownSeen.has(k) && this.refusedKeys.has(k)).length,
      unaccounted: unacked.filter((k) => !this.pendingKeys.has(k) && !this.ownSeen.has(k) && !this.refusedKeys.has(k)).length,
      dedupHits: sum(this.acks) - this.acks.size,
      outOfOrder: this.outOfOrder,
      sendErrors: this.sendErrors,
      pending: this.pending,
      sameConnectionResends: this.sameConnectionResends,
      gapsFilled: this.gapsFilled,
      pushes: this.pushes,
      syncs: this.syncs,
      serverKills: this.serverKills,
      clientRestarts: this.clientRestarts,
      connectionsCut: 0,
    };
    const given = Object.fromEntries(Object.entries(counters).filter(([, v]) => typeof v === 'number'));
    return { ...fromHistory, ...given };
  }

  faults(): Record<string, number> {
    // A cluster's own kinds only where they fired: a single server's report reads as before.
    const kinds = [...FAULT_KINDS, ...CLUSTER_FAULT_KINDS.filter((k) => this.faultCounts.has(k))];
    return Object.fromEntries(kinds.map((k) => [k, this.faultCounts.get(k) ?? 0]));
  }

  report(input: ReportInput = {}): ChaosReport {
    const faults = this.faults();
    const minutes = (input.faultWindowMs ?? this.endMs) / 60_000;
    return {
      ...(input.seed === undefined ? {} : { seed: input.seed }),
      durationMs: this.endMs,
      counts: this.counts(input.counters),
      faults,
      faultsPerMinute: Object.fromEntries(Object.entries(faults).map(([k, n]) => [k, minutes > 0 ? Math.round((n / minutes) * 10) / 10 : 0])),
      inFlightAtKill: (() => {
        const sorted = [...this.inFlight].sort((a, b) => a - b);
        return { min: sorted[0] ?? 0, median: percentile(sorted, 50), max: sorted.at(-1) ?? 0 };
      })(),
      latency: latencyStats(this.samples.map((s) => s.ms)),
      ...(input.check ? { checked: input.check.checked, perRule: input.check.perRule } : {}),
      violations: (input.check?.violations.length ?? 0) + (input.check?.notListed ?? 0),
      ...(input.run ? { run: input.run } : {}),
    };
  }

  svg(title?: string): string {
    return renderSvgFrom(this.samples, this.marks, this.endMs, title);
  }
}

function built(history: Iterable<HistoryEvent>): ReportBuilder {
  const builder = new ReportBuilder();
  for (const e of history) builder.add(e);
  return builder;
}

export function latencySamples(history: Iterable<HistoryEvent>): LatencySample[] {
  return built(history).samples;
}

export function countHistory(history: Iterable<HistoryEvent>, counters: Partial<ReportCounts> = {}): ReportCounts {
  return built(history).counts(counters);
}

export function buildReport(history: Iterable<HistoryEvent>, input: ReportInput = {}): ChaosReport {
  return built(history).report(input);
}

/** One violation for a terminal: kind and message, then each evidence event on its own line. */
export function formatViolation(v: Violation, maxEventChars = 400): string {
  const events = v.events.map((e) => {
    const text = JSON.stringify(e);
    return `    ${text.length > maxEventChars ? `${text.slice(0, maxEventChars)}…` : text}`;
  });
  return [`[${v.kind}] ${v.message}`, ...events].join('\n');
}

export function renderSummary(report: ChaosReport, violations: readonly Violation[] = [], maxShown = 10): string {
  const c = report.counts;
  const l = report.latency;
  const lines = [
    `sequent-server chaos${report.seed === undefined ? '' : ` — seed ${report.seed}`}, ${(report.durationMs / 1000).toFixed(1)} s`,
    `sent ${c.sent} (resent ${c.resent}), acked ${c.acked}, unacked ${c.unacked} (read back ${c.readBack}, refused ${c.refused}, unaccounted ${c.unaccounted}), dedup hits ${c.dedupHits}, out_of_order ${c.outOfOrder}, other send errors ${c.sendErrors}`,
    `pushes ${c.pushes}, syncs ${c.syncs}, gaps filled ${c.gapsFilled}`,
    `server kills ${c.serverKills}, client restarts ${c.clientRestarts}, connections cut ${c.connectionsCut}, pending at the end ${c.pending}`,
    `sends in flight at a server kill: min ${report.inFlightAtKill.min}, median ${report.inFlightAtKill.median}, max ${report.inFlightAtKill.max}; resends on the same connection ${c.sameConnectionResends}`,
    `faults fired: ${Object.entries(report.faults).map(([k, n]) => `${k} ${n} (${report.faultsPerMinute[k] ?? 0}/min)`).join(', ')}`,
    `ack latency ms: p50 ${fmt(l.p50)} · p90 ${fmt(l.p90)} · p99 ${fmt(l.p99)} · max ${fmt(l.max)} (${l.count} acks)`,
  ];
  const k = report.checked;
  if (k) lines.push(`checked: ${k.conversations} conversations, ${k.entries} entries, ${k.acks} acks, ${k.pushes} pushes, ${k.syncs} syncs, ${k.finalLogs} final logs`);
  if (report.perRule) lines.push(`operations judged per rule: ${Object.entries(report.perRule).map(([rule, n]) => `${rule} ${n}`).join(', ')}`);
  if (report.run) lines.push(`run: ${Object.entries(report.run).map(([name, v]) => `${name} ${v}`).join(', ')}`);
  if (report.violations === 0) lines.push('result: OK — no violation');
  else {
    lines.push(`result: FAILED — ${report.violations} violation(s)`);
    for (const v of violations.slice(0, maxShown)) lines.push(formatViolation(v));
    if (violations.length > maxShown) lines.push(`… and ${violations.length - maxShown} more`);
  }
  return lines.join('\n') + '\n';
}

const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round step for about `target` ticks over [0, max]. */
function tickStep(max: number, target: number): number {
  const raw = max / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

const WIDTH = 960;
const HEIGHT = 420;
const PAD = { left: 70, right: 20, top: 40, bottom: 50 };

/** Ack latency over the run: one point per message (thinned per pixel column), kills and restarts as vertical marks. */
export function renderSvg(history: Iterable<HistoryEvent>, title = 'sequent-server chaos: ack latency'): string {
  return built(history).svg(title);
}

function renderSvgFrom(samples: readonly LatencySample[], marks: readonly Mark[], end: number, title = 'sequent-server chaos: ack latency'): string {
  const endMs = Math.max(1, end);
  const maxLatency = samples.reduce((m, s) => Math.max(m, s.ms), 1);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (ms: number): number => PAD.left + (ms / endMs) * plotW;
  const y = (ms: number): number => PAD.top + plotH - (ms / maxLatency) * plotH;
  const n = (v: number): string => v.toFixed(1);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="white"/>`);
  parts.push(`<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`);
  // Axes and ticks.
  parts.push(`<g class="axes" stroke="#333">`);
  parts.push(`<line x1="${PAD.left}" y1="${PAD.top + plotH}" x2="${PAD.left + plotW}" y2="${PAD.top + plotH}"/>`);
  parts.push(`<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${PAD.top + plotH}"/>`);
  parts.push(`</g>`);
  parts.push(`<g class="ticks" fill="#333">`);
  const xStep = tickStep(endMs / 1000, 10);
  for (let s = 0; s <= endMs / 1000 + 1e-9; s += xStep) {
    parts.push(`<line x1="${n(x(s * 1000))}" y1="${PAD.top + plotH}" x2="${n(x(s * 1000))}" y2="${PAD.top + plotH + 5}" stroke="#333"/>`);
    parts.push(`<text x="${n(x(s * 1000))}" y="${PAD.top + plotH + 18}" text-anchor="middle">${+s.toFixed(3)}</text>`);
  }
  const yStep = tickStep(maxLatency, 6);
  for (let v = 0; v <= maxLatency + 1e-9; v += yStep) {
    parts.push(`<line x1="${PAD.left - 5}" y1="${n(y(v))}" x2="${PAD.left}" y2="${n(y(v))}" stroke="#333"/>`);
    parts.push(`<text x="${PAD.left - 8}" y="${n(y(v) + 4)}" text-anchor="end">${+v.toFixed(3)}</text>`);
  }
  parts.push(`</g>`);
  parts.push(`<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">time since start (s)</text>`);
  parts.push(`<text transform="translate(16 ${PAD.top + plotH / 2}) rotate(-90)" text-anchor="middle">ack latency (ms)</text>`);
  // Marks behind the points.
  parts.push(`<g class="marks">`);
  for (const m of marks) {
    const kill = m.type === 'server-kill';
    const label = m.type === 'server-kill' ? 'server kill' : `restart of ${m.user}/${m.device}`;
    parts.push(
      `<g class="${kill ? 'kill server-kill' : 'restart client-restart'}"><title>${escapeXml(`${label} at ${(m.at / 1000).toFixed(2)} s`)}</title>` +
        `<line x1="${n(x(m.at))}" y1="${PAD.top}" x2="${n(x(m.at))}" y2="${PAD.top + plotH}" stroke="${kill ? '#d62728' : '#ff7f0e'}" stroke-width="${kill ? 2 : 1}" stroke-dasharray="${kill ? '6 3' : '2 3'}"/></g>`,
    );
  }
  parts.push(`</g>`);
  // Reference lines at the median and p99, since a few slow acks around a kill set the scale.
  const stats = latencyStats(samples.map((s) => s.ms));
  parts.push(`<g class="percentiles" stroke="#888" stroke-dasharray="4 4">`);
  for (const [name, value] of [['p50', stats.p50], ['p99', stats.p99]] as const) {
    if (stats.count === 0) break;
    parts.push(`<line x1="${PAD.left}" y1="${n(y(value))}" x2="${PAD.left + plotW}" y2="${n(y(value))}"/>`);
    parts.push(`<text x="${PAD.left + plotW - 4}" y="${n(y(value) - 4)}" text-anchor="end" stroke="none" fill="#555">${name} ${fmt(value)} ms</text>`);
  }
  parts.push(`</g>`);
  // Points, thinned to the lowest and highest latency per pixel column so outliers stay visible.
  const columns = new Map<number, LatencySample[]>();
  for (const s of samples) {
    const col = Math.round(x(s.at));
    const list = columns.get(col) ?? [];
    list.push(s);
    columns.set(col, list);
  }
  parts.push(`<g class="points" fill="#1f77b4" fill-opacity="0.6">`);
  for (const list of columns.values()) {
    const sorted = list.sort((a, b) => a.ms - b.ms);
    const keep = sorted.length <= 3 ? sorted : [sorted[0]!, sorted[Math.floor(sorted.length / 2)]!, sorted.at(-1)!];
    for (const s of keep) parts.push(`<circle cx="${n(x(s.at))}" cy="${n(y(s.ms))}" r="1.8"/>`);
  }
  parts.push(`</g>`);
  // Legend.
  parts.push(
    `<g class="legend" transform="translate(${PAD.left + 10} ${PAD.top + 8})">` +
      `<circle cx="0" cy="0" r="3" fill="#1f77b4"/><text x="8" y="4">ack latency of one message</text>` +
      `<line x1="190" y1="0" x2="210" y2="0" stroke="#d62728" stroke-width="2" stroke-dasharray="6 3"/><text x="215" y="4">server kill</text>` +
      `<line x1="300" y1="0" x2="320" y2="0" stroke="#ff7f0e" stroke-dasharray="2 3"/><text x="325" y="4">client restart</text></g>`,
  );
  parts.push(`</svg>`);
  return parts.join('\n') + '\n';
}

export interface WrittenReport {
  report: ChaosReport;
  summary: string;
  svgPath: string;
  summaryPath: string;
  jsonPath: string;
}

/** Writes latency.svg, summary.txt and report.json into dir (created if needed). */
export async function writeReport(dir: string, history: Iterable<HistoryEvent> | ReportBuilder, input: ReportInput = {}): Promise<WrittenReport> {
  await mkdir(dir, { recursive: true });
  const builder = history instanceof ReportBuilder ? history : built(history);
  const report = builder.report(input);
  const violations = input.check?.violations ?? [];
  const summary = renderSummary(report, violations);
  const svgPath = join(dir, 'latency.svg');
  const summaryPath = join(dir, 'summary.txt');
  const jsonPath = join(dir, 'report.json');
  await writeFile(svgPath, builder.svg(`sequent-server chaos${input.seed === undefined ? '' : ` (seed ${input.seed})`}: ack latency`));
  await writeFile(summaryPath, summary);
  await writeFile(jsonPath, JSON.stringify({ ...report, violationList: violations }, null, 2) + '\n');
  return { report, summary, svgPath, summaryPath, jsonPath };
}
