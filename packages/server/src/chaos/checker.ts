/**
 * Judges a recorded history against the protocol's promises. It trusts no
 * client bookkeeping: every acked message, push, sync page and final log is
 * compared with every other observation of the same seq. Each violation names
 * a stable kind, one line of explanation and the smallest evidence: the
 * conversation, the seqs and the few events involved (entry lists cut down to
 * those seqs). Pure: no Node built-ins.
 *
 * One pass, bounded memory: events are fed one at a time (`HistoryChecker.add`)
 * and none is kept. What stays is one entry per seq of each conversation, one
 * record per message, ranges of seqs per (user, conversation) and per final
 * log — it grows with the messages, not with the pushes and pages that repeat
 * them. A violation keeps the positions of its evidence (or a predicate that
 * finds it), and only when there are violations is the history read a second
 * time to fetch those few events.
 */
import type {
  AckEvent,
  FinalLogEvent,
  HistoryEntry,
  HistoryEvent,
  MembershipEvent,
  SyncResultEvent,
} from './history.js';
import { buildTimeline, type Interval, type MembershipTimeline } from './membership.js';
import { SeqRanges } from './seq-ranges.js';
import { CHAT_STATE_RULES, ChatStateChecker } from './chat-state-checker.js';
import { CLUSTER_RULES, ClusterChecker, type TakeoverTime } from './cluster-checker.js';

export const VIOLATION_KINDS = [
  /** an acked message (or membership change) is not at its acked seq in a final log that should hold it */
  'ack-lost',
  /** two answers to one (device, conv, cmid) disagree on seq, mid or ts */
  'ack-conflict',
  /** one message stored at two seqs, or one seq listed twice in a log */
  'duplicate',
  /** a log or sync page skips seqs it should hold */
  'gap',
  /** two observations of one seq of a conversation show different entries */
  'divergent',
  /** for one device and conversation, seq order is not dseq order */
  'dseq-order',
  /** ts decreases as seq grows */
  'ts-decrease',
  /** one mid names two messages */
  'mid-duplicate',
  /** pushes of one conversation on one connection do not strictly increase */
  'push-order',
  /** a user received, read or wrote an entry after the entry that removed it */
  'after-removal',
  /** a user received, read or wrote an entry before the entry that added it */
  'before-join',
  /** a sync that started after an ack returned does not contain that message */
  'sync-stale',
  /** a device that took part has no final log of a conversation its user is a member of */
  'no-final-log',
  /** the run judged fewer operations than the floor: "nothing checked" is not "all good" */
  'too-little',
  /** a push or sync returned a message before its first send went out */
  'future-read',
  /** a message first sent after another one's ack took a lower seq than it */
  'realtime-order',
  /** a send that was neither acked (or read back by its own device), refused with a final code, nor listed as pending with a reason */
  'unaccounted',
  ...CHAT_STATE_RULES,
  ...CLUSTER_RULES,
] as const;

export type ViolationKind = (typeof VIOLATION_KINDS)[number];

export interface Violation {
  kind: ViolationKind;
  message: string;
  conv?: string;
  seqs: number[];
  /** The few events involved; entry lists are cut down to the seqs concerned. */
  events: HistoryEvent[];
}

export interface CheckOptions {
  /** Fewer acks or final logs than this is a `too-little` violation (default 1 each). */
  floor?: { acks?: number; finalLogs?: number };
}

export interface CheckResult {
  violations: Violation[];
  /** How much was judged, so that an empty history cannot pass unnoticed. */
  checked: { conversations: number; acks: number; pushes: number; syncs: number; finalLogs: number; entries: number };
  /** How many operations each rule judged (an ack compared with one final log is one). */
  perRule: Record<ViolationKind, number>;
  /** Violations beyond the ones listed (kept out to bound memory), counted only. */
  notListed: number;
  /** Cluster runs: from each node fault to the first ack in a conversation of a slot the node held. */
  takeovers: TakeoverTime[];
}

/** Where a violation's evidence is: a position in the history, or the first event a predicate accepts. */
export type Evidence = number | ((event: HistoryEvent) => boolean);

export interface FoundViolation extends Omit<Violation, 'events'> {
  evidence: Evidence[];
}

/** Violations listed with evidence; more are only counted. */
const MAX_LISTED = 200;
/** Only this many get their evidence fetched by predicate (each predicate is tried on every event). */
const MAX_SEARCHED = 50;
/** Answers that mean "try again": a send refused with one of these is not settled. */
/** Send errors the SDK retries: not a final answer. */
export const RETRY_CODES = new Set(['unavailable', 'internal', 'rate_limited', 'out_of_order']);

const devKey = (user: string, device: string): string => `${user}/${device}`;
const msgKey = (user: string, device: string, conv: string, cmid: string): string => `${user}/${device}/${conv}/${cmid}`;
const pair = (a: string, b: string): string => `${a}\n${b}`;

/**
 * What two observations of one seq must agree on. The body only while neither
 * says the entry was deleted: a delete takes the body of its target (and of the
 * target's edits) away from every later read, which is the rule, not a divergence.
 */
function entryKey(e: HistoryEntry): string {
  return JSON.stringify([e.mid, e.ts, e.kind, e.from, e.dev, e.cmid ?? null, e.dseq ?? null, e.ref ?? null]);
}

function sameEntry(a: HistoryEntry, b: HistoryEntry): boolean {
  if (entryKey(a) !== entryKey(b)) return false;
  return a.deleted !== undefined || b.deleted !== undefined || JSON.stringify(a.body ?? null) === JSON.stringify(b.body ?? null);
}

function ranges(seqs: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < seqs.length; ) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === (seqs[j] ?? 0) + 1) j++;
    parts.push(i === j ? `${seqs[i]}` : `${seqs[i]}..${seqs[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

/** True when the event shows that user that seq of conv. */
function shows(e: HistoryEvent, user: string, conv: string, seq: number): boolean {
  if (e.type === 'push') return e.user === user && e.conv === conv && e.entry.seq === seq;
  if (e.type === 'sync-result' || e.type === 'final-log') return e.user === user && e.conv === conv && e.entries.some((x) => x.seq === seq);
  return false;
}

/** A user's membership right after seq (a change at seq already applied). */
function memberAfter(t: MembershipTimeline, user: string, seq: number): boolean {
  return t.of(user).some((i) => i.from <= seq && seq < i.until);
}

interface Seen {
  entry: HistoryEntry;
  index: number;
}

interface AckRecord {
  ack: AckEvent;
  index: number;
  conflicted: boolean;
}

interface FinalRecord {
  user: string;
  device: string;
  conv: string;
  seqs: SeqRanges;
  index: number;
}

interface SyncStart {
  index: number;
  /** first acks of the conversation recorded before it */
  ackCount: number;
  maxAcked: number;
}

interface SyncCandidate {
  user: string;
  device: string;
  conv: string;
  after: number;
  last: number;
  complete: boolean;
  got: SeqRanges;
  start: SyncStart;
  index: number;
}

interface SentRecord {
  index: number;
  /** the highest seq of the conversation acked before this message was first sent */
  floorSeq: number;
  floorIndex: number;
}

/** Feed it every event in order, then call finish(). */
export class HistoryChecker {
  private index = -1;
  private readonly found: FoundViolation[] = [];
  private notListed = 0;
  private readonly perRule = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as Record<ViolationKind, number>;
  private readonly counts = { acks: 0, pushes: 0, syncs: 0, finalLogs: 0 };

  private readonly merged = new Map<string, Map<number, Seen>>();
  private readonly divergentSeen = new Set<string>();
  private readonly firstAck = new Map<string, AckRecord>();
  private readonly acksByConv = new Map<string, { seq: number; ts: number; index: number }[]>();
  private readonly maxAcked = new Map<string, { seq: number; index: number }>();
  private readonly lastPush = new Map<string, { seq: number; index: number }>();
  private readonly readSeen = new Map<string, SeqRanges>();
  private readonly finals: FinalRecord[] = [];
  private readonly starts = new Map<string, SyncStart>();
  private readonly staleCandidates: SyncCandidate[] = [];
  private readonly firstEntryCandidates: { user: string; conv: string; after: number; first: number; index: number; start: number | undefined }[] = [];
  private readonly memberships: { event: MembershipEvent; index: number }[] = [];
  private readonly sent = new Map<string, SentRecord>();
  private readonly futureCandidates = new Map<string, number>();
  private readonly refusedCode = new Map<string, { code: string; index: number }>();
  private readonly pendingReason = new Map<string, string>();
  private readonly ownSeen = new Set<string>();
  private readonly devices = new Map<string, { user: string; device: string; index: number }>();
  private readonly finalRefusals: { user: string; device: string; conv: string | undefined; index: number }[] = [];
  private readonly chat = new ChatStateChecker();
  private readonly cluster = new ClusterChecker();

  constructor(private readonly options: CheckOptions = {}) {}

  private report(kind: ViolationKind, message: string, conv: string | undefined, seqs: number[], evidence: Evidence[]): void {
    if (this.found.length >= MAX_LISTED) {
      this.notListed++;
      return;
    }
    this.found.push({ kind, message, ...(conv === undefined ? {} : { conv }), seqs, evidence });
  }

  add(e: HistoryEvent): void {
    const index = ++this.index;
    this.chat.add(e, index);
    this.cluster.add(e, index);
    switch (e.type) {
      case 'connect':
      case 'client-start':
        if (!this.devices.has(devKey(e.user, e.device))) this.devices.set(devKey(e.user, e.device), { user: e.user, device: e.device, index });
        return;
      case 'send':
        return this.onSend(e.user, e.device, e.conv, e.cmid, index);
      case 'ack':
        return this.onAck(e, index);
      case 'error': {
        const key = msgKey(e.user, e.device, e.conv, e.cmid);
        if (!RETRY_CODES.has(e.code)) this.refusedCode.set(key, { code: e.code, index });
        return;
      }
      case 'pending':
        this.pendingReason.set(msgKey(e.user, e.device, e.conv, e.cmid), `${e.state}: ${e.reason}`);
        return;
      case 'push':
        this.counts.pushes++;
        this.observe(e.conv, e.user, e.entry, index, e.device);
        if (e.injected === undefined) this.pushOrder(e.conn, e.conv, e.entry.seq, index);
        return;
      case 'sync-start':
        this.starts.set(e.sync, { index, ackCount: this.acksByConv.get(e.conv)?.length ?? 0, maxAcked: this.maxAcked.get(e.conv)?.seq ?? 0 });
        return;
      case 'sync-result':
        this.counts.syncs++;
        for (const entry of e.entries) this.observe(e.conv, e.user, entry, index, e.device);
        return this.onSyncResult(e, index);
      case 'final-log':
        this.counts.finalLogs++;
        for (const entry of e.entries) this.observe(e.conv, e.user, entry, index);
        return this.onFinal(e, index);
      case 'membership':
        this.memberships.push({ event: e, index });
        return;
      case 'final-refused':
        this.finalRefusals.push({ user: e.user, device: e.device, conv: e.conv, index });
        return;
      default:
        return;
    }
  }

  private onSend(user: string, device: string, conv: string, cmid: string, index: number): void {
    if (!this.devices.has(devKey(user, device))) this.devices.set(devKey(user, device), { user, device, index });
    const key = msgKey(user, device, conv, cmid);
    if (this.sent.has(key)) return;
    const floor = this.maxAcked.get(conv);
    this.sent.set(key, { index, floorSeq: floor?.seq ?? 0, floorIndex: floor?.index ?? -1 });
  }

  private onAck(a: AckEvent, index: number): void {
    this.counts.acks++;
    const key = msgKey(a.user, a.device, a.conv, a.cmid);
    const max = this.maxAcked.get(a.conv);
    if (max === undefined || a.seq > max.seq) this.maxAcked.set(a.conv, { seq: a.seq, index });
    const first = this.firstAck.get(key);
    if (first) {
      // A second answer to the same message (a resend, or a duplicated frame): it must say the same.
      this.perRule['ack-conflict']++;
      const f = first.ack;
      if (!first.conflicted && (a.seq !== f.seq || a.mid !== f.mid || a.ts !== f.ts)) {
        first.conflicted = true;
        this.report('ack-conflict', `${f.conv}: cmid ${f.cmid} of ${devKey(f.user, f.device)} acked as seq ${f.seq} mid ${f.mid} ts ${f.ts}, then seq ${a.seq} mid ${a.mid} ts ${a.ts}`, f.conv, [f.seq, a.seq], [first.index, index]);
      }
      return;
    }
    const record: AckRecord = { ack: a, index, conflicted: false };
    this.firstAck.set(key, record);
    const list = this.acksByConv.get(a.conv) ?? [];
    list.push({ seq: a.seq, ts: a.ts, index });
    this.acksByConv.set(a.conv, list);
  }

  /** One observation of one seq: merged into the conversation's view, and noted as read by that user. */
  private observe(conv: string, user: string, entry: HistoryEntry, index: number, device?: string): void {
    let log = this.merged.get(conv);
    if (!log) this.merged.set(conv, (log = new Map()));
    const known = log.get(entry.seq);
    if (!known) log.set(entry.seq, { entry, index });
    else {
      this.perRule['divergent']++;
      if (!sameEntry(known.entry, entry) && !this.divergentSeen.has(`${conv}#${entry.seq}`)) {
        this.divergentSeen.add(`${conv}#${entry.seq}`);
        this.report('divergent', `${conv} seq ${entry.seq}: mid ${known.entry.mid} from ${known.entry.from}/${known.entry.dev} in one view, mid ${entry.mid} from ${entry.from}/${entry.dev} in another`, conv, [entry.seq], [known.index, index]);
      }
    }
    const k = pair(user, conv);
    let seen = this.readSeen.get(k);
    if (!seen) this.readSeen.set(k, (seen = new SeqRanges()));
    seen.add(entry.seq);
    if (entry.kind !== 'system' && entry.cmid !== undefined) {
      this.perRule['future-read']++;
      const key = msgKey(entry.from, entry.dev, conv, entry.cmid);
      if (!this.sent.has(key) && !this.futureCandidates.has(key)) this.futureCandidates.set(key, index);
      // The sender's own device read it in the log: as good as an ack (the SDK settles it so).
      if (entry.from === user && entry.dev === device) this.ownSeen.add(key);
    }
  }

  private pushOrder(conn: string, conv: string, seq: number, index: number): void {
    const k = pair(conn, conv);
    const prev = this.lastPush.get(k);
    if (prev !== undefined) {
      this.perRule['push-order']++;
      if (seq <= prev.seq) this.report('push-order', `connection ${conn} got ${conv} seq ${seq} after seq ${prev.seq}`, conv, [prev.seq, seq], [prev.index, index]);
    }
    this.lastPush.set(k, { seq, index });
  }

  private onSyncResult(r: SyncResultEvent, index: number): void {
    const who = devKey(r.user, r.device);
    this.perRule['gap']++;
    const start = this.starts.get(r.sync);
    let contiguous = true;
    for (let i = 1; i < r.entries.length; i++) {
      const [prev, cur] = [r.entries[i - 1]!, r.entries[i]!];
      if (cur.seq !== prev.seq + 1) {
        contiguous = false;
        this.report('gap', `${who}'s sync page of ${r.conv} goes from seq ${prev.seq} to seq ${cur.seq}`, r.conv, [prev.seq, cur.seq], [index]);
      }
    }
    // An older-history page (before) is judged for holes only: where it starts depends on the readable range below it.
    if (r.before !== undefined) {
      const top = r.entries.at(-1)?.seq;
      if (top !== undefined && top >= r.before) this.report('gap', `${who}'s page of ${r.conv} before ${r.before} holds seq ${top}`, r.conv, [top], [index]);
      return;
    }
    const first = r.entries[0];
    if (first !== undefined && first.seq !== r.after + 1) {
      contiguous = false;
      // A newcomer's page starts at the entry that added it: judged once the membership is known.
      this.firstEntryCandidates.push({ user: r.user, conv: r.conv, after: r.after, first: first.seq, index, start: start?.index });
    }
    const reached = r.entries.at(-1)?.seq ?? r.after;
    const complete = r.entries.length < r.limit;
    if (complete && reached < r.last) this.report('gap', `${who}'s sync page of ${r.conv} ends at seq ${reached} below last ${r.last} with room left (${r.entries.length} < limit ${r.limit})`, r.conv, [reached, r.last], [index]);
    if (!start) return;
    this.perRule['sync-stale']++;
    // Only a page that could have missed an ack acked before it started is kept for the final judgment.
    if (start.maxAcked > r.after && (!contiguous || (start.maxAcked > reached && (complete || start.maxAcked > r.last)))) {
      const got = new SeqRanges();
      for (const e of r.entries) got.add(e.seq);
      this.staleCandidates.push({ user: r.user, device: r.device, conv: r.conv, after: r.after, last: r.last, complete, got, start, index });
    }
  }

  private onFinal(f: FinalLogEvent, index: number): void {
    const seqs = new SeqRanges();
    const twice: number[] = [];
    for (const e of f.entries) if (!seqs.add(e.seq)) twice.push(e.seq);
    this.perRule['duplicate']++;
    if (twice.length > 0) this.report('duplicate', `${devKey(f.user, f.device)}'s final log of ${f.conv} lists seq ${ranges(twice)} more than once`, f.conv, twice.slice(0, 5), [index]);
    this.finals.push({ user: f.user, device: f.device, conv: f.conv, seqs, index });
  }

  /** Everything that needs the whole history: membership, final logs, and the rules over all messages. */
  finish(): { found: FoundViolation[]; result: Omit<CheckResult, 'violations'> } {
    const convs = new Set<string>([...this.merged.keys(), ...this.acksByConv.keys(), ...this.finals.map((f) => f.conv), ...this.memberships.map((m) => m.event.conv)]);
    const end = new Map<string, number>();
    const timelines = new Map<string, MembershipTimeline>();
    for (const conv of convs) {
      const log = this.merged.get(conv) ?? new Map<number, Seen>();
      let max = 0;
      for (const seq of log.keys()) max = Math.max(max, seq);
      for (const a of this.acksByConv.get(conv) ?? []) max = Math.max(max, a.seq);
      const changes = this.memberships.filter((m) => m.event.conv === conv).map((m) => m.event);
      for (const m of changes) max = Math.max(max, m.seq ?? 0);
      end.set(conv, max);
      timelines.set(conv, buildTimeline(conv, new Map([...log].map(([seq, o]) => [seq, o.entry] as const)), changes));
    }
    const timeline = (conv: string): MembershipTimeline => timelines.get(conv) ?? buildTimeline(conv, new Map(), []);

    const cmidAt = this.checkLogs(timeline);
    this.checkAcks(timeline, cmidAt);
    this.checkMemberships(timeline);
    this.checkFinals(timeline, end);
    this.checkReadable(timeline);
    this.checkSyncs(timeline);
    this.checkDevices(timeline, convs);
    this.checkTiming(cmidAt);
    this.checkSettled(cmidAt);
    this.checkFloor();
    this.chat.finish();
    for (const f of this.chat.findings) this.report(f.kind, f.message, f.conv === '' ? undefined : f.conv, f.seqs, f.evidence);
    for (const rule of CHAT_STATE_RULES) this.perRule[rule] += this.chat.judged[rule];
    this.cluster.finish((conv, user, seq) => memberAfter(timeline(conv), user, seq));
    for (const f of this.cluster.findings) this.report(f.kind, f.message, f.conv === '' ? undefined : f.conv, f.seqs, f.evidence);
    for (const rule of CLUSTER_RULES) this.perRule[rule] += this.cluster.judged[rule];

    return {
      found: this.found,
      result: {
        checked: {
          conversations: convs.size,
          acks: this.firstAck.size,
          pushes: this.counts.pushes,
          syncs: this.counts.syncs,
          finalLogs: this.counts.finalLogs,
          entries: [...this.merged.values()].reduce((n, log) => n + log.size, 0),
        },
        perRule: this.perRule,
        notListed: this.notListed,
        takeovers: this.cluster.takeovers,
      },
    };
  }

  /** Per conversation: ts order, unique mids and cmids, dseq order, writers were members. Returns where each message is. */
  private checkLogs(timeline: (conv: string) => MembershipTimeline): Map<string, number> {
    const cmidAt = new Map<string, number>();
    const midAt = new Map<string, { where: string; index: number }>();
    for (const [conv, log] of this.merged) {
      const sorted = [...log.entries()].sort((a, b) => a[0] - b[0]);
      const points: { seq: number; ts: number; index: number }[] = [
        ...sorted.map(([seq, o]) => ({ seq, ts: o.entry.ts, index: o.index })),
        ...(this.acksByConv.get(conv) ?? []).filter((a) => !log.has(a.seq)),
      ].sort((a, b) => a.seq - b.seq);
      for (let i = 1; i < points.length; i++) {
        const [prev, cur] = [points[i - 1]!, points[i]!];
        this.perRule['ts-decrease']++;
        if (cur.ts < prev.ts) this.report('ts-decrease', `${conv}: ts ${cur.ts} at seq ${cur.seq} is below ts ${prev.ts} at seq ${prev.seq}`, conv, [prev.seq, cur.seq], [prev.index, cur.index]);
      }
      const t = timeline(conv);
      const bySender = new Map<string, { seq: number; dseq: number | undefined; index: number }[]>();
      for (const [seq, o] of sorted) {
        this.perRule['mid-duplicate']++;
        const seen = midAt.get(o.entry.mid);
        if (seen) this.report('mid-duplicate', `mid ${o.entry.mid} names ${seen.where} and ${conv} seq ${seq}`, conv, [seq], [seen.index, o.index]);
        else midAt.set(o.entry.mid, { where: `${conv} seq ${seq}`, index: o.index });
        this.perRule['after-removal']++;
        if (!t.canRead(o.entry.from, seq)) this.report(t.why(o.entry.from, seq), `${o.entry.from} wrote ${conv} seq ${seq} while not a member`, conv, [seq], [o.index]);
        if (o.entry.kind === 'system' || o.entry.cmid === undefined) continue;
        this.perRule['duplicate']++;
        const key = msgKey(o.entry.from, o.entry.dev, conv, o.entry.cmid);
        const first = cmidAt.get(key);
        if (first !== undefined) {
          this.report('duplicate', `${conv}: cmid ${o.entry.cmid} of ${devKey(o.entry.from, o.entry.dev)} stored at seq ${first} and seq ${seq}`, conv, [first, seq], [log.get(first)!.index, o.index]);
          continue;
        }
        cmidAt.set(key, seq);
        const list = bySender.get(devKey(o.entry.from, o.entry.dev)) ?? [];
        list.push({ seq, dseq: o.entry.dseq, index: o.index });
        bySender.set(devKey(o.entry.from, o.entry.dev), list);
      }
      for (const [dev, list] of bySender) this.checkDseq(conv, dev, list);
    }
    return cmidAt;
  }

  private readonly dseqReported = new Set<string>();
  private checkDseq(conv: string, dev: string, items: { seq: number; dseq: number | undefined; index: number }[]): void {
    if (this.dseqReported.has(`${dev}/${conv}`)) return;
    const sorted = items.filter((i) => i.dseq !== undefined).sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < sorted.length; i++) {
      const [prev, cur] = [sorted[i - 1]!, sorted[i]!];
      this.perRule['dseq-order']++;
      if ((cur.dseq ?? 0) > (prev.dseq ?? 0)) continue;
      this.dseqReported.add(`${dev}/${conv}`);
      this.report('dseq-order', `${dev} in ${conv}: dseq ${prev.dseq} took seq ${prev.seq} but dseq ${cur.dseq} took seq ${cur.seq}`, conv, [prev.seq, cur.seq], [prev.index, cur.index]);
      return;
    }
  }

  private finalsOf(conv: string): FinalRecord[] {
    return this.finals.filter((f) => f.conv === conv);
  }

  /** Acks: in dseq order, and at their seq in every final log that should hold them. */
  private checkAcks(timeline: (conv: string) => MembershipTimeline, cmidAt: Map<string, number>): void {
    const byDevConv = new Map<string, AckRecord[]>();
    for (const r of this.firstAck.values()) {
      const k = `${devKey(r.ack.user, r.ack.device)}/${r.ack.conv}`;
      const list = byDevConv.get(k) ?? [];
      list.push(r);
      byDevConv.set(k, list);
    }
    const ackMid = new Map<string, AckRecord>();
    for (const r of this.firstAck.values()) {
      const a = r.ack;
      this.perRule['mid-duplicate']++;
      const seen = ackMid.get(a.mid);
      if (seen) {
        const s = seen.ack;
        this.report('mid-duplicate', `mid ${a.mid} acked for cmid ${s.cmid} (${s.conv} seq ${s.seq}) and cmid ${a.cmid} (${a.conv} seq ${a.seq})`, a.conv, [s.seq, a.seq], [seen.index, r.index]);
      } else ackMid.set(a.mid, r);
    }
    for (const list of byDevConv.values()) {
      const a = list[0]!.ack;
      this.checkDseq(a.conv, devKey(a.user, a.device), list.map((r) => ({ seq: r.ack.seq, dseq: r.ack.dseq, index: r.index })));
    }
    const finalsByConv = new Map<string, FinalRecord[]>();
    for (const f of this.finals) finalsByConv.set(f.conv, [...(finalsByConv.get(f.conv) ?? []), f]);
    for (const { ack: a, index } of this.firstAck.values()) {
      const t = timeline(a.conv);
      const e = this.merged.get(a.conv)?.get(a.seq)?.entry;
      const there = e !== undefined && e.mid === a.mid && e.ts === a.ts && e.from === a.user && e.dev === a.device && e.cmid === a.cmid;
      const elsewhere = cmidAt.get(msgKey(a.user, a.device, a.conv, a.cmid));
      const bad: FinalRecord[] = [];
      const how: string[] = [];
      for (const f of finalsByConv.get(a.conv) ?? []) {
        const cur = t.current(f.user);
        const expects = t.known ? cur !== undefined && a.seq >= cur.from && a.seq <= cur.until : (f.seqs.min ?? Infinity) <= a.seq;
        if (!expects) continue;
        this.perRule['ack-lost']++;
        const has = f.seqs.has(a.seq);
        if (has && there) continue;
        bad.push(f);
        const moved = elsewhere !== undefined && elsewhere !== a.seq && f.seqs.has(elsewhere) ? `, cmid at seq ${elsewhere}` : '';
        how.push(`${devKey(f.user, f.device)}: ${has && e ? `seq ${a.seq} holds mid ${e.mid}` : `no seq ${a.seq}`}${moved}`);
      }
      if (bad.length > 0) {
        this.report('ack-lost', `${a.conv}: cmid ${a.cmid} of ${devKey(a.user, a.device)} acked at seq ${a.seq} (mid ${a.mid}) is not there in ${bad.length} final log(s) — ${how.slice(0, 3).join('; ')}`, a.conv, [a.seq], [index, ...bad.slice(0, 2).map((f) => f.index)]);
      }
    }
  }

  /**
   * An acked membership change must be a system entry at its seq — unless it changed
   * nothing: the server answers a no-op (adding a member, removing a non-member, e.g.
   * the retry of a change whose first answer was lost) with the current seq, which
   * may be a message's. It is a no-op only if the membership right after that seq is
   * already what it asked for.
   */
  private checkMemberships(timeline: (conv: string) => MembershipTimeline): void {
    for (const { event: m, index } of this.memberships) {
      if (m.seq === undefined) continue;
      const o = this.merged.get(m.conv)?.get(m.seq);
      if (o === undefined) continue;
      this.perRule['ack-lost']++;
      if (o.entry.kind === 'system') continue;
      const t = timeline(m.conv);
      const noop = m.op === 'members' && t.known && m.add.every((u) => memberAfter(t, u, m.seq!)) && m.remove.every((u) => !memberAfter(t, u, m.seq!));
      if (noop) continue;
      const what = [...m.add.map((u) => `add ${u}`), ...m.remove.map((u) => `remove ${u}`)].join(', ') || m.op;
      this.report('ack-lost', `${m.conv}: the ${m.op} by ${m.user} (${what}) acked at seq ${m.seq} is not a system entry there, and the membership after it is not what it asked for`, m.conv, [m.seq], [index, o.index]);
    }
  }

  /** Final logs: gapless over the member's readable range. */
  private checkFinals(timeline: (conv: string) => MembershipTimeline, end: Map<string, number>): void {
    for (const f of this.finals) {
      const t = timeline(f.conv);
      let from = f.seqs.min ?? 1;
      let upTo = f.seqs.max ?? 0;
      if (t.known) {
        const cur = t.current(f.user);
        from = cur?.from ?? 1;
        upTo = cur === undefined ? 0 : Math.min(cur.until, end.get(f.conv) ?? 0);
      }
      this.perRule['gap']++;
      const missing = f.seqs.missing(from, upTo, 5);
      if (missing.count > 0) {
        const all = f.seqs.missing(from, upTo, 200).seqs;
        this.report('gap', `${devKey(f.user, f.device)}'s final log of ${f.conv} lacks seq ${ranges(all)}${missing.count > all.length ? ' …' : ''} of its readable ${from}..${upTo}`, f.conv, missing.seqs, [f.index]);
      }
    }
  }

  /** Nothing pushed to, synced or read by a user outside its membership. */
  private checkReadable(timeline: (conv: string) => MembershipTimeline): void {
    for (const [k, seen] of this.readSeen) {
      const [user, conv] = k.split('\n') as [string, string];
      const t = timeline(conv);
      this.perRule['after-removal'] += seen.size;
      this.perRule['before-join'] += seen.size;
      if (!t.known) continue;
      const bad: Record<'after-removal' | 'before-join', number[]> = { 'after-removal': [], 'before-join': [] };
      for (const [lo, hi] of seen.ranges()) {
        for (const seq of outside(lo, hi, t.of(user))) {
          const list = bad[t.why(user, seq)];
          if (list.length < 200) list.push(seq);
        }
      }
      for (const kind of ['after-removal', 'before-join'] as const) {
        const seqs = bad[kind];
        if (seqs.length === 0) continue;
        const first = seqs[0]!;
        this.report(kind, `${user} saw ${conv} seq ${ranges(seqs)} while not a member (${t.of(user).map((i) => `${i.from}..${i.until}`).join(', ') || 'never a member'})`, conv, seqs.slice(0, 5), [(e) => shows(e, user, conv, first)]);
      }
    }
  }

  /** Sync pages that start late or missed an ack that came before them. */
  private checkSyncs(timeline: (conv: string) => MembershipTimeline): void {
    for (const c of this.firstEntryCandidates) {
      const t = timeline(c.conv);
      const joinedAt = t.of(c.user).find((i) => c.first >= i.from && c.first <= i.until)?.from;
      const expected = Math.max(c.after + 1, t.known && joinedAt !== undefined ? joinedAt : c.after + 1);
      if (c.first !== expected) this.report('gap', `${c.user}'s sync of ${c.conv} after ${c.after} starts at seq ${c.first}, not ${expected}`, c.conv, [c.first], c.start === undefined ? [c.index] : [c.start, c.index]);
    }
    for (const c of this.staleCandidates) {
      const t = timeline(c.conv);
      // The membership the server applied to this sync: the user's latest interval begun by `last`.
      const applied: Interval | undefined = t.known ? t.of(c.user).filter((i) => i.from <= Math.max(c.last, c.after + 1)).at(-1) : { from: 1, until: Infinity };
      if (applied === undefined) continue;
      const stale = (this.acksByConv.get(c.conv) ?? [])
        .slice(0, c.start.ackCount)
        .filter((a) => a.seq > c.after && a.seq >= applied.from && a.seq <= applied.until)
        .filter((a) => a.seq > c.last || (c.complete && !c.got.has(a.seq)))
        .sort((a, b) => b.seq - a.seq)[0];
      if (stale) {
        this.report('sync-stale', `${devKey(c.user, c.device)}'s sync of ${c.conv} after ${c.after} started after seq ${stale.seq} was acked, yet ${stale.seq > c.last ? `reported last ${c.last}` : 'does not contain it'}`, c.conv, [stale.seq], [stale.index, c.start.index, c.index]);
      }
    }
  }

  /** Every device that took part has a final log of every conversation its user is a member of at the end. */
  private checkDevices(timeline: (conv: string) => MembershipTimeline, convs: Set<string>): void {
    const have = new Set(this.finals.map((f) => `${devKey(f.user, f.device)}\n${f.conv}`));
    for (const conv of convs) {
      const t = timeline(conv);
      if (!t.known) continue;
      for (const d of this.devices.values()) {
        if (t.current(d.user)?.until !== Infinity) continue;
        this.perRule['no-final-log']++;
        if (have.has(`${devKey(d.user, d.device)}\n${conv}`)) continue;
        const refusal = this.finalRefusals.find((r) => r.user === d.user && r.device === d.device && (r.conv === undefined || r.conv === conv));
        this.report('no-final-log', `${devKey(d.user, d.device)} is a member of ${conv} but has no final log of it${refusal ? ' (its final read was refused)' : ''}`, conv, [], refusal ? [refusal.index] : [d.index]);
      }
    }
  }

  /** Real time: nothing is read before it was sent, and a message sent after another's ack comes after it. */
  private checkTiming(cmidAt: Map<string, number>): void {
    for (const [key, index] of this.futureCandidates) {
      const sent = this.sent.get(key);
      // A message no recorded device ever sent is not this rule's to judge (the history may be partial).
      if (!sent) continue;
      const [user, device, conv, ...rest] = key.split('/') as [string, string, string, ...string[]];
      const cmid = rest.join('/');
      const seq = cmidAt.get(key) ?? this.firstAck.get(key)?.ack.seq ?? 0;
      this.report('future-read', `${conv} seq ${seq} (cmid ${cmid} of ${devKey(user, device)}) was read before it was first sent`, conv, [seq], [index, sent.index]);
    }
    for (const [key, s] of this.sent) {
      if (s.floorSeq === 0) continue;
      const ack = this.firstAck.get(key);
      const seq = ack?.ack.seq ?? cmidAt.get(key);
      if (seq === undefined) continue;
      this.perRule['realtime-order']++;
      if (seq > s.floorSeq) continue;
      const conv = key.split('/')[2]!;
      this.report('realtime-order', `${conv}: a message first sent after seq ${s.floorSeq} was acked took seq ${seq}, below it`, conv, [s.floorSeq, seq], [s.floorIndex, s.index, ...(ack ? [ack.index] : [])]);
    }
  }

  /** Every send ends acked, refused with a final code, or listed as pending with its reason. */
  private checkSettled(cmidAt: Map<string, number>): void {
    for (const [key, s] of this.sent) {
      this.perRule['unaccounted']++;
      if (this.firstAck.has(key) || this.ownSeen.has(key) || this.refusedCode.has(key) || this.pendingReason.has(key)) continue;
      const conv = key.split('/')[2]!;
      const seq = cmidAt.get(key);
      this.report('unaccounted', `${key.split('/').slice(0, 2).join('/')} sent cmid ${key.split('/').slice(3).join('/')} to ${conv}: never acked, never refused, not listed as pending${seq === undefined ? '' : ` (yet at seq ${seq})`}`, conv, seq === undefined ? [] : [seq], [s.index]);
    }
  }

  private checkFloor(): void {
    const floor = { acks: this.options.floor?.acks ?? 1, finalLogs: this.options.floor?.finalLogs ?? 1 };
    this.perRule['too-little']++;
    const short = [
      this.firstAck.size < floor.acks ? `${this.firstAck.size} acked messages (floor ${floor.acks})` : '',
      this.counts.finalLogs < floor.finalLogs ? `${this.counts.finalLogs} final logs (floor ${floor.finalLogs})` : '',
    ].filter((s) => s !== '');
    if (short.length > 0) this.report('too-little', `the history holds too little to judge: ${short.join(', ')}`, undefined, [], this.index >= 0 ? [0, this.index] : []);
  }
}

/** Seqs of [lo, hi] outside every interval. */
function* outside(lo: number, hi: number, intervals: readonly Interval[]): Generator<number> {
  for (let s = lo; s <= hi; s++) {
    const inside = intervals.find((i) => s >= i.from && s <= i.until);
    if (inside) {
      if (inside.until === Infinity) return;
      s = inside.until;
      continue;
    }
    yield s;
  }
}

/** The event with its entry list cut down to the given seqs. */
function excerpt(event: HistoryEvent, seqs: readonly number[]): HistoryEvent {
  if (event.type === 'final-log' || event.type === 'sync-result') return { ...event, entries: event.entries.filter((e) => seqs.includes(e.seq)) };
  return event;
}

/** Fetches the evidence of found violations in one more pass over the history (sync or async source). */
export class EvidenceResolver {
  private readonly slots: { v: number; e: number; evidence: Evidence }[] = [];
  private readonly events: (HistoryEvent | undefined)[][];
  private index = -1;

  constructor(private readonly found: readonly FoundViolation[]) {
    this.events = found.map((v) => v.evidence.map(() => undefined));
    found.forEach((v, i) => v.evidence.forEach((evidence, j) => {
      if (typeof evidence === 'number' || i < MAX_SEARCHED) this.slots.push({ v: i, e: j, evidence });
    }));
  }

  get needed(): boolean {
    return this.slots.length > 0;
  }

  add(event: HistoryEvent): void {
    const index = ++this.index;
    for (const slot of this.slots) {
      if (this.events[slot.v]![slot.e] !== undefined) continue;
      if (typeof slot.evidence === 'number' ? slot.evidence === index : slot.evidence(event)) this.events[slot.v]![slot.e] = event;
    }
  }

  violations(): Violation[] {
    return this.found.map(({ evidence: _evidence, ...v }, i) => ({
      ...v,
      events: this.events[i]!.filter((e): e is HistoryEvent => e !== undefined).slice(0, 3).map((e) => excerpt(e, v.seqs)),
    }));
  }
}

/** Judges a history held in memory (tests, small files). */
export function checkHistory(history: Iterable<HistoryEvent>, options: CheckOptions = {}): CheckResult {
  const checker = new HistoryChecker(options);
  for (const event of history) checker.add(event);
  const { found, result } = checker.finish();
  const resolver = new EvidenceResolver(found);
  if (found.length > 0) for (const event of history) resolver.add(event);
  return { violations: resolver.violations(), ...result };
}

export function check(history: Iterable<HistoryEvent>, options: CheckOptions = {}): Violation[] {
  return checkHistory(history, options).violations;
}

/** Judges a history that is read as a stream (a file): one pass to judge, a second only to fetch evidence. */
export async function checkHistoryStream(open: () => AsyncIterable<HistoryEvent>, options: CheckOptions = {}, alsoFeed?: (event: HistoryEvent) => void): Promise<CheckResult> {
  const checker = new HistoryChecker(options);
  for await (const event of open()) {
    checker.add(event);
    alsoFeed?.(event);
  }
  const { found, result } = checker.finish();
  const resolver = new EvidenceResolver(found);
  if (found.length > 0) for await (const event of open()) resolver.add(event);
  return { violations: resolver.violations(), ...result };
}
