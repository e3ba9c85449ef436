/**
 * Judges a recorded history against the protocol's promises. It trusts no
 * client bookkeeping: every acked message, push, sync page and final log is
 * compared with every other observation of the same seq. Each violation names
 * a stable kind, one line of explanation and the smallest evidence: the
 * conversation, the seqs and the few events involved (entry lists cut down to
 * those seqs). Pure: no Node built-ins.
 */
import type {
  AckEvent,
  FinalLogEvent,
  History,
  HistoryEntry,
  HistoryEvent,
  SyncResultEvent,
  SyncStartEvent,
} from './history.js';
import { buildTimeline, type MembershipTimeline } from './membership.js';

export const VIOLATION_KINDS = [
  /** an acked message is not at its acked seq (same mid, ts, sender) in a final log that should hold it */
  'ack-lost',
  /** two acks of one (device, conv, cmid) disagree on seq, mid or ts */
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

export interface CheckResult {
  violations: Violation[];
  /** How much was judged, so that an empty history cannot pass unnoticed. */
  checked: { conversations: number; acks: number; pushes: number; syncs: number; finalLogs: number; entries: number };
}

interface Observed {
  entry: HistoryEntry;
  event: HistoryEvent;
}

const devKey = (user: string, device: string): string => `${user}/${device}`;
const msgKey = (user: string, device: string, conv: string, cmid: string): string => `${user}/${device}/${conv}/${cmid}`;

function entryKey(e: HistoryEntry): string {
  return JSON.stringify([e.mid, e.ts, e.kind, e.from, e.dev, e.cmid ?? null, e.dseq ?? null, e.body ?? null]);
}

/** The event with its entry list cut down to the given seqs. */
function excerpt(event: HistoryEvent, seqs: readonly number[]): HistoryEvent {
  if (event.type === 'final-log' || event.type === 'sync-result') {
    return { ...event, entries: event.entries.filter((e) => seqs.includes(e.seq)) };
  }
  return event;
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

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

export function check(history: History): Violation[] {
  return checkHistory(history).violations;
}

export function checkHistory(history: History): CheckResult {
  const of = <T extends HistoryEvent['type']>(type: T) => history.filter((e): e is Extract<HistoryEvent, { type: T }> => e.type === type);
  const acks = of('ack');
  const pushes = of('push');
  const results = of('sync-result');
  const finals = of('final-log');
  const memberships = of('membership');
  const starts = new Map<string, SyncStartEvent>(of('sync-start').map((s) => [s.sync, s]));
  const out: Violation[] = [];
  const report = (kind: ViolationKind, message: string, conv: string | undefined, seqs: number[], events: HistoryEvent[]): void => {
    out.push({ kind, message, ...(conv === undefined ? {} : { conv }), seqs, events: events.map((e) => excerpt(e, seqs)) });
  };

  // ---- one view of each conversation, from every observation of every seq ----
  const merged = new Map<string, Map<number, Observed>>();
  const dseqReported = new Set<string>();
  const divergentSeen = new Set<string>();
  const observe = (conv: string, entry: HistoryEntry, event: HistoryEvent): void => {
    let log = merged.get(conv);
    if (!log) merged.set(conv, (log = new Map()));
    const known = log.get(entry.seq);
    if (!known) return void log.set(entry.seq, { entry, event });
    if (entryKey(known.entry) !== entryKey(entry) && !divergentSeen.has(`${conv}#${entry.seq}`)) {
      divergentSeen.add(`${conv}#${entry.seq}`);
      report('divergent', `${conv} seq ${entry.seq}: mid ${known.entry.mid} from ${known.entry.from}/${known.entry.dev} in one view, mid ${entry.mid} from ${entry.from}/${entry.dev} in another`, conv, [entry.seq], [known.event, event]);
    }
  };
  for (const f of finals) for (const e of f.entries) observe(f.conv, e, f);
  for (const r of results) for (const e of r.entries) observe(r.conv, e, r);
  for (const p of pushes) observe(p.conv, p.entry, p);

  const convs = new Set<string>([...merged.keys(), ...acks.map((a) => a.conv), ...finals.map((f) => f.conv), ...memberships.map((m) => m.conv)]);
  const end = new Map<string, number>();
  const timelines = new Map<string, MembershipTimeline>();
  for (const conv of convs) {
    const log = merged.get(conv) ?? new Map<number, Observed>();
    const seqs = [...log.keys(), ...acks.filter((a) => a.conv === conv).map((a) => a.seq), ...memberships.filter((m) => m.conv === conv).map((m) => m.seq ?? 0)];
    end.set(conv, Math.max(0, ...seqs));
    const entries = new Map([...log].map(([seq, o]) => [seq, o.entry] as const));
    timelines.set(conv, buildTimeline(conv, entries, memberships.filter((m) => m.conv === conv)));
  }
  const timeline = (conv: string): MembershipTimeline => timelines.get(conv) ?? buildTimeline(conv, new Map(), []);

  // ---- per conversation: order of ts, uniqueness of messages, who wrote ----
  const midAt = new Map<string, { where: string; observed: Observed; conv: string }>();
  const allAcksByConv = groupBy(acks, (a) => a.conv);
  for (const [conv, log] of merged) {
    const sorted = [...log.entries()].sort((a, b) => a[0] - b[0]);
    const ackTs = new Map((allAcksByConv.get(conv) ?? []).filter((a) => !log.has(a.seq)).map((a) => [a.seq, a] as const));
    const points: { seq: number; ts: number; event: HistoryEvent }[] = [
      ...sorted.map(([seq, o]) => ({ seq, ts: o.entry.ts, event: o.event })),
      ...[...ackTs.values()].map((a) => ({ seq: a.seq, ts: a.ts, event: a as HistoryEvent })),
    ].sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < points.length; i++) {
      const [prev, cur] = [points[i - 1]!, points[i]!];
      if (cur.ts < prev.ts) report('ts-decrease', `${conv}: ts ${cur.ts} at seq ${cur.seq} is below ts ${prev.ts} at seq ${prev.seq}`, conv, [prev.seq, cur.seq], [prev.event, cur.event]);
    }
    const bySender = new Map<string, Observed[]>();
    const cmidAt = new Map<string, Observed>();
    for (const [seq, o] of sorted) {
      const seen = midAt.get(o.entry.mid);
      if (seen) report('mid-duplicate', `mid ${o.entry.mid} names ${seen.where} and ${conv} seq ${seq}`, conv, [seq], [seen.observed.event, o.event]);
      else midAt.set(o.entry.mid, { where: `${conv} seq ${seq}`, observed: o, conv });
      if (!timeline(conv).canRead(o.entry.from, seq)) {
        report(timeline(conv).why(o.entry.from, seq), `${o.entry.from} wrote ${conv} seq ${seq} while not a member`, conv, [seq], [o.event]);
      }
      if (o.entry.kind !== 'msg' || o.entry.cmid === undefined) continue;
      const key = msgKey(o.entry.from, o.entry.dev, conv, o.entry.cmid);
      const first = cmidAt.get(key);
      if (first) {
        report('duplicate', `${conv}: cmid ${o.entry.cmid} of ${devKey(o.entry.from, o.entry.dev)} stored at seq ${first.entry.seq} and seq ${seq}`, conv, [first.entry.seq, seq], [first.event, o.event]);
        continue;
      }
      cmidAt.set(key, o);
      const list = bySender.get(devKey(o.entry.from, o.entry.dev)) ?? [];
      list.push(o);
      bySender.set(devKey(o.entry.from, o.entry.dev), list);
    }
    for (const [dev, list] of bySender) checkDseq(conv, dev, list.map((o) => ({ seq: o.entry.seq, dseq: o.entry.dseq, event: o.event })));
  }

  // ---- acks: idempotent, in dseq order, and in every final log that should hold them ----
  function checkDseq(conv: string, dev: string, items: { seq: number; dseq: number | undefined; event: HistoryEvent }[]): void {
    if (dseqReported.has(`${dev}/${conv}`)) return;
    const sorted = items.filter((i) => i.dseq !== undefined).sort((a, b) => a.seq - b.seq);
    for (let i = 1; i < sorted.length; i++) {
      const [prev, cur] = [sorted[i - 1]!, sorted[i]!];
      if ((cur.dseq ?? 0) > (prev.dseq ?? 0)) continue;
      dseqReported.add(`${dev}/${conv}`);
      report('dseq-order', `${dev} in ${conv}: dseq ${prev.dseq} took seq ${prev.seq} but dseq ${cur.dseq} took seq ${cur.seq}`, conv, [prev.seq, cur.seq], [prev.event, cur.event]);
      return;
    }
  }
  const firstAcks: AckEvent[] = [];
  for (const group of groupBy(acks, (a) => msgKey(a.user, a.device, a.conv, a.cmid)).values()) {
    const first = group[0]!;
    firstAcks.push(first);
    const other = group.find((a) => a.seq !== first.seq || a.mid !== first.mid || a.ts !== first.ts);
    if (other) report('ack-conflict', `${first.conv}: cmid ${first.cmid} of ${devKey(first.user, first.device)} acked as seq ${first.seq} mid ${first.mid} ts ${first.ts}, then seq ${other.seq} mid ${other.mid} ts ${other.ts}`, first.conv, [first.seq, other.seq], [first, other]);
  }
  const ackMid = new Map<string, AckEvent>();
  for (const a of firstAcks) {
    const seen = ackMid.get(a.mid);
    if (seen) report('mid-duplicate', `mid ${a.mid} acked for cmid ${seen.cmid} (${seen.conv} seq ${seen.seq}) and cmid ${a.cmid} (${a.conv} seq ${a.seq})`, a.conv, [seen.seq, a.seq], [seen, a]);
    else ackMid.set(a.mid, a);
  }
  for (const group of groupBy(firstAcks, (a) => `${devKey(a.user, a.device)}/${a.conv}`).values()) {
    const a = group[0]!;
    const byDseq = [...group].sort((x, y) => x.seq - y.seq);
    checkDseq(a.conv, devKey(a.user, a.device), byDseq.map((x) => ({ seq: x.seq, dseq: x.dseq, event: x })));
  }
  const finalsByConv = groupBy(finals, (f) => f.conv);
  const expects = (f: FinalLogEvent, seq: number): boolean => {
    const t = timeline(f.conv);
    if (!t.known) return f.entries.some((e) => e.seq <= seq);
    const cur = t.current(f.user);
    return cur !== undefined && seq >= cur.from && seq <= cur.until;
  };
  const finalBySeq = new Map(finals.map((f) => [f, new Map(f.entries.map((e) => [e.seq, e] as const))] as const));
  for (const a of firstAcks) {
    const bad: FinalLogEvent[] = [];
    const how: string[] = [];
    for (const f of finalsByConv.get(a.conv) ?? []) {
      if (!expects(f, a.seq)) continue;
      const e = finalBySeq.get(f)?.get(a.seq);
      if (e && e.mid === a.mid && e.ts === a.ts && e.from === a.user && e.dev === a.device && e.cmid === a.cmid) continue;
      bad.push(f);
      const elsewhere = f.entries.find((x) => x.cmid === a.cmid && x.from === a.user && x.dev === a.device);
      how.push(`${devKey(f.user, f.device)}: ${e ? `seq ${a.seq} holds mid ${e.mid}` : `no seq ${a.seq}`}${elsewhere ? `, cmid at seq ${elsewhere.seq}` : ''}`);
    }
    if (bad.length > 0) {
      report('ack-lost', `${a.conv}: cmid ${a.cmid} of ${devKey(a.user, a.device)} acked at seq ${a.seq} (mid ${a.mid}) is not there in ${bad.length} final log(s) — ${how.slice(0, 3).join('; ')}`, a.conv, [a.seq], [a, ...bad.slice(0, 2)]);
    }
  }
  for (const m of memberships) {
    const o = m.seq === undefined ? undefined : merged.get(m.conv)?.get(m.seq);
    if (m.seq !== undefined && o && o.entry.kind !== 'system') report('ack-lost', `${m.conv}: the ${m.op} by ${m.user} acked at seq ${m.seq} is not a system entry there`, m.conv, [m.seq], [m, o.event]);
  }

  // ---- final logs: gapless over the member's readable range, nothing it may not read ----
  const checkReadable = (user: string, conv: string, entries: readonly HistoryEntry[], event: HistoryEvent, verb: string): void => {
    const t = timeline(conv);
    for (const kind of ['after-removal', 'before-join'] as const) {
      const seqs = entries.filter((e) => !t.canRead(user, e.seq) && t.why(user, e.seq) === kind).map((e) => e.seq);
      if (seqs.length > 0) report(kind, `${user} ${verb} ${conv} seq ${ranges(seqs)} while not a member (${t.of(user).map((i) => `${i.from}..${i.until}`).join(', ') || 'never a member'})`, conv, seqs.slice(0, 5), [event]);
    }
  };
  for (const f of finals) {
    const who = devKey(f.user, f.device);
    const seen = new Set<number>();
    const twice = f.entries.filter((e) => seen.has(e.seq) || !seen.add(e.seq)).map((e) => e.seq);
    if (twice.length > 0) report('duplicate', `${who}'s final log of ${f.conv} lists seq ${ranges(twice)} more than once`, f.conv, twice.slice(0, 5), [f]);
    checkReadable(f.user, f.conv, f.entries, f, 'can read');
    const t = timeline(f.conv);
    const have = [...seen].sort((a, b) => a - b);
    let from = have[0] ?? 1;
    let upTo = have.at(-1) ?? 0;
    if (t.known) {
      const cur = t.current(f.user);
      from = cur?.from ?? 1;
      upTo = cur === undefined ? 0 : Math.min(cur.until, end.get(f.conv) ?? 0);
    }
    const missing: number[] = [];
    for (let s = from; s <= upTo; s++) if (!seen.has(s)) missing.push(s);
    if (missing.length > 0) report('gap', `${who}'s final log of ${f.conv} lacks seq ${ranges(missing)} of its readable ${from}..${upTo}`, f.conv, missing.slice(0, 5), [f]);
  }

  // ---- pushes: strictly increasing per connection and conversation, only to members ----
  for (const list of groupBy(pushes, (p) => `${p.conn}\n${p.conv}`).values()) {
    for (let i = 1; i < list.length; i++) {
      const [prev, cur] = [list[i - 1]!, list[i]!];
      if (cur.entry.seq <= prev.entry.seq) report('push-order', `connection ${cur.conn} got ${cur.conv} seq ${cur.entry.seq} after seq ${prev.entry.seq}`, cur.conv, [prev.entry.seq, cur.entry.seq], [prev, cur]);
    }
  }
  for (const p of pushes) checkReadable(p.user, p.conv, [p.entry], p, 'was pushed');

  // ---- sync pages: gapless, complete up to `last`, and never behind an ack that came before ----
  const acksByConv = groupBy(firstAcks, (a) => a.conv);
  for (const r of results) checkSync(r, starts.get(r.sync));
  function checkSync(r: SyncResultEvent, start: SyncStartEvent | undefined): void {
    const who = devKey(r.user, r.device);
    const t = timeline(r.conv);
    checkReadable(r.user, r.conv, r.entries, r, 'synced');
    const first = r.entries[0];
    const joinedAt = first === undefined ? undefined : t.of(r.user).find((i) => first.seq >= i.from && first.seq <= i.until)?.from;
    const expectedFirst = Math.max(r.after + 1, t.known && joinedAt !== undefined ? joinedAt : r.after + 1);
    if (first !== undefined && first.seq !== expectedFirst) {
      report('gap', `${who}'s sync of ${r.conv} after ${r.after} starts at seq ${first.seq}, not ${expectedFirst}`, r.conv, [first.seq], start ? [start, r] : [r]);
    }
    for (let i = 1; i < r.entries.length; i++) {
      const [prev, cur] = [r.entries[i - 1]!, r.entries[i]!];
      if (cur.seq !== prev.seq + 1) report('gap', `${who}'s sync page of ${r.conv} goes from seq ${prev.seq} to seq ${cur.seq}`, r.conv, [prev.seq, cur.seq], [r]);
    }
    const reached = r.entries.at(-1)?.seq ?? r.after;
    const complete = r.entries.length < r.limit;
    if (complete && reached < r.last) report('gap', `${who}'s sync page of ${r.conv} ends at seq ${reached} below last ${r.last} with room left (${r.entries.length} < limit ${r.limit})`, r.conv, [reached, r.last], [r]);
    if (!start) return;
    // The membership the server applied to this sync: the user's latest interval begun by `last`.
    const applied = t.known ? t.of(r.user).filter((i) => i.from <= Math.max(r.last, r.after + 1)).at(-1) : { from: 1, until: Infinity };
    if (applied === undefined) return;
    const got = new Set(r.entries.map((e) => e.seq));
    const stale = (acksByConv.get(r.conv) ?? [])
      .filter((a) => a.at < start.at && a.seq > r.after && a.seq >= applied.from && a.seq <= applied.until)
      .filter((a) => a.seq > r.last || (complete && !got.has(a.seq)))
      .sort((a, b) => b.seq - a.seq)[0];
    if (stale) {
      report('sync-stale', `${who}'s sync of ${r.conv} after ${r.after} started at ${start.at} ms, after seq ${stale.seq} was acked at ${stale.at} ms, yet ${stale.seq > r.last ? `reported last ${r.last}` : 'does not contain it'}`, r.conv, [stale.seq], [stale, start, r]);
    }
  }

  return {
    violations: out,
    checked: {
      conversations: convs.size,
      acks: firstAcks.length,
      pushes: pushes.length,
      syncs: results.length,
      finalLogs: finals.length,
      entries: [...merged.values()].reduce((n, log) => n + log.size, 0),
    },
  };
}
