/**
 * The rules a cluster adds to the checker, and the takeover times it measures,
 * judged in the same streaming pass as checker.ts:
 *
 * - `epoch-decrease`: along a conversation's log, the lease epoch each entry was
 *   committed under never decreases (an `epochs` event, read from the database at
 *   the end of the run). A lower epoch after a higher one is a write of an old
 *   owner after a takeover: the fence failed.
 * - `head-regress`: a conversation's head as a client observed it (a sync page's
 *   `last`, a `convs` row's `last`) is never below a seq acked before that request
 *   went out (a message's ack, or an acked membership change's seq), for a user
 *   who was a member right after that seq — a cache or a
 *   node answering from state older than what it acked (turms #1569). A sync page
 *   asked from below that seq is `sync-stale`'s when it misses it; this rule
 *   judges the pages from at or above it, and every `convs` row.
 * - `not-live`: once the faults stopped (`faults-stop`, with its bound), every send
 *   is acked (or read back by its own device) within the bound of the later of the
 *   stop and its first try; one still sending at the end is not live either. A send
 *   refused for good, or blocked behind one, is not this rule's.
 *
 * - `node-restart`: a node killed -9 starts again under its name (the harness
 *   tries 5 times, as a supervisor would; each failed try is in the history and
 *   the report, and only a node that never came back is a violation).
 *
 * Takeover times: from a `node-hurt` (a kill, a pause, a PostgreSQL drop of a node,
 * with the conversations whose slots it held) to the first ack of one of those
 * conversations after it. Pure, like the checker.
 */
import type { HistoryEvent } from './history.js';

export const CLUSTER_RULES = [
  /** an entry's lease epoch is below the epoch of an entry before it in the same log */
  'epoch-decrease',
  /** an observed head (sync or convs `last`) is below a seq acked before the request went out */
  'head-regress',
  /** after the faults stopped, a send was not acked within the bound */
  'not-live',
  /** a killed node could not be started again under its name */
  'node-restart',
] as const;
export type ClusterRule = (typeof CLUSTER_RULES)[number];

export interface ClusterFinding {
  kind: ClusterRule;
  message: string;
  conv: string;
  seqs: number[];
  evidence: number[];
}

export interface TakeoverTime {
  node: string;
  fault: string;
  /** ms from the fault to the first ack in a conversation of a slot the node held; undefined when none came */
  ms: number | undefined;
  convs: number;
}

/** Answers "was user a member of conv right after seq" from the main checker's membership timelines. */
export type MemberAfter = (conv: string, user: string, seq: number) => boolean;

interface HeadObservation {
  user: string;
  conv: string;
  /** when the request went out */
  sentAt: number;
  last: number;
  /** only acks up to this seq are judged here (a sync page below an ack is sync-stale's to judge) */
  upTo: number;
  index: number;
}

const msgKey = (user: string, device: string, conv: string, cmid: string): string => `${user}/${device}/${conv}/${cmid}`;

/** Send errors the SDK retries (checker.ts RETRY_CODES): not a final answer. */
const RETRY = new Set(['unavailable', 'internal', 'rate_limited', 'out_of_order']);

export class ClusterChecker {
  readonly findings: ClusterFinding[] = [];
  readonly judged = Object.fromEntries(CLUSTER_RULES.map((r) => [r, 0])) as Record<ClusterRule, number>;
  readonly takeovers: TakeoverTime[] = [];
  /** failed tries to start a killed node again, given up on or not */
  startFailures = 0;

  /** first ack per conversation, in time order: { at, seq, index } */
  private readonly acks = new Map<string, { at: number; seq: number; index: number }[]>();
  /** the highest seq acked so far per conversation, to keep only suspicious observations */
  private readonly maxAcked = new Map<string, number>();
  private readonly acked = new Set<string>();
  private readonly syncStarts = new Map<string, number>();
  private readonly suspects: HeadObservation[] = [];
  private readonly messages = new Map<string, { firstAt: number; index: number; doneAt?: number; doneIndex?: number; final?: boolean; pending?: { state: string; index: number } }>();
  private stop: { at: number; boundMs: number; index: number } | undefined;
  private readonly open: { node: string; fault: string; at: number; convs: Set<string>; result: TakeoverTime }[] = [];

  add(e: HistoryEvent, index: number): void {
    switch (e.type) {
      case 'send': {
        const key = msgKey(e.user, e.device, e.conv, e.cmid);
        if (!this.messages.has(key)) this.messages.set(key, { firstAt: e.at, index });
        return;
      }
      case 'ack': {
        const key = msgKey(e.user, e.device, e.conv, e.cmid);
        this.settle(key, e.at, index);
        for (const t of this.open) {
          if (t.result.ms === undefined && t.convs.has(e.conv) && e.at >= t.at) t.result.ms = e.at - t.at;
        }
        if (this.acked.has(key)) return;
        this.acked.add(key);
        this.ackedSeq(e.conv, e.at, e.seq, index);
        return;
      }
      case 'membership':
        // An acked change's seq (the change's entry, or the head when it changed nothing) is a floor for every later head.
        if (e.seq !== undefined && e.code === undefined) this.ackedSeq(e.conv, e.at, e.seq, index);
        return;
      case 'error': {
        const m = this.messages.get(msgKey(e.user, e.device, e.conv, e.cmid));
        if (m && !RETRY.has(e.code)) m.final = true;
        return;
      }
      case 'pending': {
        const m = this.messages.get(msgKey(e.user, e.device, e.conv, e.cmid));
        if (m) m.pending = { state: e.state, index };
        return;
      }
      case 'push':
        if (e.entry.cmid !== undefined && e.entry.from === e.user && e.entry.dev === e.device) this.settle(msgKey(e.user, e.device, e.conv, e.entry.cmid), e.at, index);
        return;
      case 'sync-start':
        this.syncStarts.set(e.sync, e.at);
        return;
      case 'sync-result': {
        for (const x of e.entries) if (x.cmid !== undefined && x.from === e.user && x.dev === e.device) this.settle(msgKey(e.user, e.device, e.conv, x.cmid), e.at, index);
        const sentAt = this.syncStarts.get(e.sync);
        this.syncStarts.delete(e.sync);
        // An older-history page says nothing about the head.
        // A page from below an acked seq that misses it is `sync-stale` (checker.ts); this rule takes the pages from above it.
        if (sentAt !== undefined && e.before === undefined) this.observeHead(e.user, e.conv, sentAt, e.last, e.after, index);
        return;
      }
      case 'convs-result':
        for (const row of e.rows) this.observeHead(e.user, row.conv, e.sentAt, row.last, Number.POSITIVE_INFINITY, index);
        return;
      case 'epochs':
        return this.checkEpochs(e.conv, e.seqs, e.epochs, index);
      case 'faults-stop':
        this.stop = { at: e.at, boundMs: e.boundMs, index };
        return;
      case 'node-start-failed':
        this.startFailures++;
        if (e.gaveUp) {
          this.judged['node-restart']++;
          this.findings.push({ kind: 'node-restart', message: `node ${e.node} did not start again after ${e.attempt} tries: ${e.error}`, conv: '', seqs: [], evidence: [index] });
        }
        return;
      case 'node-healed':
        if (e.fault === 'server-kill') this.judged['node-restart']++;
        return;
      case 'node-hurt': {
        const result: TakeoverTime = { node: e.node, fault: e.fault, ms: undefined, convs: e.convs.length };
        this.takeovers.push(result);
        this.open.push({ node: e.node, fault: e.fault, at: e.at, convs: new Set(e.convs), result });
        return;
      }
      default:
        return;
    }
  }

  private ackedSeq(conv: string, at: number, seq: number, index: number): void {
    let list = this.acks.get(conv);
    if (!list) this.acks.set(conv, (list = []));
    list.push({ at, seq, index });
    this.maxAcked.set(conv, Math.max(this.maxAcked.get(conv) ?? 0, seq));
  }

  private settle(key: string, at: number, index: number): void {
    const m = this.messages.get(key);
    if (m && m.doneAt === undefined) {
      m.doneAt = at;
      m.doneIndex = index;
    }
  }

  private observeHead(user: string, conv: string, sentAt: number, last: number, upTo: number, index: number): void {
    this.judged['head-regress']++;
    // Only an observation below some ack can break the rule; the rest need not be kept.
    if (last < Math.min(upTo, this.maxAcked.get(conv) ?? 0)) this.suspects.push({ user, conv, sentAt, last, upTo, index });
  }

  private checkEpochs(conv: string, seqs: readonly number[], epochs: readonly number[], index: number): void {
    for (let i = 1; i < seqs.length; i++) {
      this.judged['epoch-decrease']++;
      const [a, b] = [epochs[i - 1]!, epochs[i]!];
      if (b < a) {
        this.findings.push({ kind: 'epoch-decrease', message: `${conv}: seq ${seqs[i]} was committed under epoch ${b}, after seq ${seqs[i - 1]} under epoch ${a}`, conv, seqs: [seqs[i - 1]!, seqs[i]!], evidence: [index] });
        return;
      }
    }
  }

  finish(memberAfter: MemberAfter): void {
    for (const o of this.suspects) {
      // The highest seq acked before the request went out that this user could read.
      const before = (this.acks.get(o.conv) ?? []).filter((a) => a.at < o.sentAt && a.seq > o.last && a.seq <= o.upTo && memberAfter(o.conv, o.user, a.seq));
      if (before.length === 0) continue;
      const worst = before.reduce((x, y) => (y.seq > x.seq ? y : x));
      this.findings.push({ kind: 'head-regress', message: `${o.user} was told ${o.conv}'s last is ${o.last} by a request sent after seq ${worst.seq} was acked`, conv: o.conv, seqs: [o.last, worst.seq], evidence: [worst.index, o.index] });
    }
    const stop = this.stop;
    if (!stop) return;
    for (const [key, m] of this.messages) {
      this.judged['not-live']++;
      const deadline = Math.max(stop.at, m.firstAt) + stop.boundMs;
      const conv = key.split('/')[2]!;
      if (m.doneAt !== undefined) {
        if (m.doneAt > deadline) this.findings.push({ kind: 'not-live', message: `${key}: first sent at ${m.firstAt} ms, acked at ${m.doneAt} ms, ${Math.round(m.doneAt - Math.max(stop.at, m.firstAt))} ms after the faults stopped or it was sent (bound ${stop.boundMs} ms)`, conv, seqs: [], evidence: [m.index, m.doneIndex!] });
        continue;
      }
      if (m.final || m.pending?.state !== 'sending') continue;
      this.findings.push({ kind: 'not-live', message: `${key}: first sent at ${m.firstAt} ms, still not acked at the end, ${stop.boundMs} ms bound after the faults stopped at ${stop.at} ms`, conv, seqs: [], evidence: [m.index, m.pending.index] });
    }
  }
}

/** p50, p99 and the largest of a list of ms (nearest rank), undefined when empty. */
export function percentiles(values: readonly number[]): { p50: number; p99: number; max: number; n: number } | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1)!, n: sorted.length };
}
