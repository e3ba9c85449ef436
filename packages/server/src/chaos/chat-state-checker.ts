/**
 * The chat state's rules, judged over a recorded history beside the log rules
 * of checker.ts: read positions never go backwards, `unread` is the rule's
 * count, a deleted body is never returned again, and every device's folded
 * view of a conversation ends as the log says it must.
 *
 * What it reads: `read-result` (the answer to a `read` request), `read-push`,
 * `convs-result` (rows with read/unread), `ack`s of deletes (from `send` events
 * that carry `kind`/`ref`), `sync-start`/`sync-result`, `final-log` and
 * `final-view`. Pure, like the checker: no Node built-ins.
 */
import type { HistoryEntry, HistoryEvent } from './history.js';

/** The fields of the chat state an entry may carry (protocol "Version 1, additions"). */
export type ChatEntry = Omit<HistoryEntry, 'kind'> & { kind: string; ref?: number; edited?: number; deleted?: number };

/** One folded message as a device shows it: text (a digest), tombstone, reactions. */
export interface FoldedItem {
  seq: number;
  from: string;
  /** the body of the newest edit, else of the message; null once deleted */
  body: unknown;
  deleted: boolean;
  /** reaction key → users who have it on, sorted */
  reactions: Record<string, string[]>;
}

export const CHAT_STATE_RULES = [
  /** a device saw a read position lower than one it had already been told */
  'read-backwards',
  /** a `convs` row's unread is not the count of others' undeleted messages in (read, last] */
  'unread-wrong',
  /** a sync that started after a delete was acked, or a final log, returned the deleted body */
  'deleted-body',
  /** a device's folded view of a conversation differs from the fold of its final log */
  'view-divergent',
  /** a final log holds an edit or delete by someone other than its target's author, an action on a deleted target, or on no message */
  'action-invalid',
] as const;
export type ChatStateRule = (typeof CHAT_STATE_RULES)[number];

export interface ChatStateFinding {
  kind: ChatStateRule;
  message: string;
  conv: string;
  seqs: number[];
  /** positions in the history of the events involved */
  evidence: number[];
}

/**
 * Folds a conversation's entries in seq order: the newest edit wins, a delete
 * wins over every edit, a reaction's last word per (user, key) stands. Entries
 * of kinds it does not know are ignored, as the protocol asks of clients.
 */
export function foldEntries(entries: readonly ChatEntry[]): FoldedItem[] {
  const items = new Map<number, FoldedItem & { editSeq: number; votes: Map<string, { seq: number; on: boolean }> }>();
  const sorted = [...entries].sort((a, b) => a.seq - b.seq);
  // A `deleted` annotation is a delete too: its entry may lie outside what this member may read.
  for (const e of sorted) if (e.kind === 'msg') items.set(e.seq, { seq: e.seq, from: e.from, body: e.body ?? null, deleted: e.deleted !== undefined, reactions: {}, editSeq: 0, votes: new Map() });
  for (const e of sorted) {
    const target = e.ref === undefined ? undefined : items.get(e.ref);
    if (!target) continue;
    if (e.kind === 'delete') target.deleted = true;
    else if (e.kind === 'edit' && e.seq > target.editSeq) {
      target.editSeq = e.seq;
      target.body = e.body ?? null;
    } else if (e.kind === 'react') {
      const reaction = e.body as { key?: unknown; on?: unknown } | null;
      if (typeof reaction?.key !== 'string' || typeof reaction.on !== 'boolean') continue;
      const vote = `${e.from}\n${reaction.key}`;
      const before = target.votes.get(vote);
      if (!before || before.seq < e.seq) target.votes.set(vote, { seq: e.seq, on: reaction.on });
    }
  }
  return [...items.values()].map(({ editSeq: _edit, votes, ...item }) => {
    const byKey = new Map<string, string[]>();
    if (!item.deleted) {
      for (const [vote, { on }] of votes) {
        if (!on) continue;
        const [user, key] = vote.split('\n') as [string, string];
        byKey.set(key, [...(byKey.get(key) ?? []), user]);
      }
    }
    // Keys in sorted order, users sorted: two folds of the same state compare equal as JSON.
    const reactions: Record<string, string[]> = {};
    for (const key of [...byKey.keys()].sort()) reactions[key] = (byKey.get(key) as string[]).sort();
    return { ...item, body: item.deleted ? null : item.body, reactions };
  });
}

/** The protocol's unread rule over one user's readable log: others' `msg` entries in (read, last], not deleted by `last`. */
export function unreadOf(user: string, entries: readonly ChatEntry[], read: number, last: number): number {
  return unreadBounds(user, entries, read, last).max;
}

/**
 * The unread counts a row may rightly say. A delete is known from its entry or
 * from the `deleted` annotation on its target (its entry may lie outside what
 * this member may read). One at or below `last` came before the row's
 * snapshot; one above it with its entry in this log came after (the user read
 * it, so was a member, and `last` was the conversation's). Only a delete above
 * `last` known from the annotation alone — made while a former member could
 * not read — may have come before or after the snapshot: the row may count
 * its target either way.
 */
export function unreadBounds(user: string, entries: readonly ChatEntry[], read: number, last: number): { min: number; max: number } {
  const deleteEntries = new Set<number>();
  for (const e of entries) if (e.kind === 'delete') deleteEntries.add(e.seq);
  const deletedBy = new Map<number, number>();
  for (const e of entries) {
    if (e.kind === 'delete' && e.ref !== undefined) deletedBy.set(e.ref, Math.min(e.seq, deletedBy.get(e.ref) ?? Infinity));
    if (e.kind === 'msg' && e.deleted !== undefined) deletedBy.set(e.seq, Math.min(e.deleted, deletedBy.get(e.seq) ?? Infinity));
  }
  let max = 0;
  let open = 0;
  for (const e of entries) {
    if (e.kind !== 'msg' || e.seq <= read || e.seq > last || e.from === user) continue;
    const at = deletedBy.get(e.seq);
    if (at !== undefined && at <= last) continue;
    max++;
    if (at !== undefined && !deleteEntries.has(at)) open++;
  }
  return { min: max - open, max };
}

/** Answers observed for one user's read position in one conversation: when asked, when answered, the value. */
interface ReadAnswer {
  at: number;
  value: number;
}

/**
 * "Never backwards", in real time: an answer to a request that went out after
 * another answer about the same (user, conv) arrived must not be lower than
 * it. Answers come in `at` order, so a running maximum by arrival suffices.
 */
export class ReadPositions {
  private readonly answers = new Map<string, { at: number[]; maxSoFar: number[] }>();

  /** Records an answer and returns the highest earlier answer it must not be below (0 when none). */
  observe(user: string, conv: string, sentAt: number, answer: ReadAnswer): number {
    const key = `${user}\n${conv}`;
    let list = this.answers.get(key);
    if (!list) this.answers.set(key, (list = { at: [], maxSoFar: [] }));
    let low = 0;
    let high = list.at.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((list.at[middle] as number) < sentAt) low = middle + 1;
      else high = middle;
    }
    const floor = low === 0 ? 0 : (list.maxSoFar[low - 1] as number);
    list.at.push(answer.at);
    list.maxSoFar.push(Math.max(answer.value, list.maxSoFar.at(-1) ?? 0));
    return floor;
  }
}

export interface ConvsRowObservation {
  user: string;
  conv: string;
  read: number;
  last: number;
  unread: number;
  index: number;
}

/** The rules that need a final log: unread counts and folded views, judged once every final log is in. */
export function judgeFinals(
  finals: ReadonlyMap<string, { entries: readonly ChatEntry[]; index: number }>,
  rows: readonly ConvsRowObservation[],
  views: readonly { user: string; device: string; conv: string; items: readonly FoldedItem[]; index: number }[],
  /** false when the caller judged every final log's deleted bodies as it came (finals keeps one log per user) */
  judgeDeleted = true,
): { findings: ChatStateFinding[]; judged: Record<'unread-wrong' | 'view-divergent' | 'deleted-body' | 'action-invalid', number> } {
  const findings: ChatStateFinding[] = [];
  const judged = { 'unread-wrong': 0, 'view-divergent': 0, 'deleted-body': 0, 'action-invalid': 0 };
  for (const row of rows) {
    const final = finals.get(`${row.user}\n${row.conv}`);
    if (!final) continue;
    judged['unread-wrong']++;
    const expected = unreadBounds(row.user, final.entries, row.read, row.last);
    if (row.unread < expected.min || row.unread > expected.max) {
      const holds = expected.min === expected.max ? `${expected.max}` : `${expected.min}–${expected.max}`;
      findings.push({ kind: 'unread-wrong', conv: row.conv, seqs: [row.read, row.last], evidence: [row.index, final.index], message: `${row.user}'s row said unread ${row.unread} for (${row.read}, ${row.last}], the log holds ${holds}` });
    }
  }
  if (judgeDeleted) {
    for (const [key, final] of finals) {
      const found = deletedBodies(key.split('\n')[1] as string, final.entries, final.index);
      judged['deleted-body'] += found.judged;
      findings.push(...found.findings);
    }
  }
  for (const [key, final] of finals) {
    const conv = key.split('\n')[1] as string;
    const finding = invalidAction(final.entries);
    judged['action-invalid'] += final.entries.filter((e) => ACTIONS.has(e.kind)).length;
    if (finding) findings.push({ kind: 'action-invalid', conv, seqs: finding.seqs, evidence: [final.index], message: `${conv}: ${finding.message}` });
  }
  for (const view of views) {
    const final = finals.get(`${view.user}\n${view.conv}`);
    if (!final) continue;
    judged['view-divergent']++;
    const expected = JSON.stringify(foldEntries(final.entries));
    const shown = JSON.stringify([...view.items].sort((a, b) => a.seq - b.seq));
    if (expected !== shown) {
      const bySeq = new Map(foldEntries(final.entries).map((item) => [item.seq, JSON.stringify(item)]));
      const differ = [...view.items].filter((item) => bySeq.get(item.seq) !== JSON.stringify(item)).map((item) => item.seq);
      findings.push({ kind: 'view-divergent', conv: view.conv, seqs: differ.slice(0, 20), evidence: [view.index, final.index], message: `${view.user}/${view.device} shows a view of ${view.conv} that is not the fold of its log (${differ.length} items differ)` });
    }
  }
  return { findings, judged };
}

/** A final log must not hold the body of a deleted message or of its edits. */
export function deletedBodies(conv: string, entries: readonly ChatEntry[], index: number): { findings: ChatStateFinding[]; judged: number } {
  const deleted = new Set<number>();
  // The server's own `deleted` annotation counts too: a former member's log holds it without the delete.
  for (const e of entries) if (e.kind === 'delete' && e.ref !== undefined) deleted.add(e.ref);
  for (const e of entries) if (e.kind === 'msg' && e.deleted !== undefined) deleted.add(e.seq);
  const findings: ChatStateFinding[] = [];
  let judged = 0;
  for (const e of entries) {
    const target = e.kind === 'msg' ? e.seq : e.kind === 'edit' ? e.ref : undefined;
    if (target === undefined || !deleted.has(target)) continue;
    judged++;
    if (e.body !== null && e.body !== undefined) findings.push({ kind: 'deleted-body', conv, seqs: [e.seq], evidence: [index], message: `a final log returned the body of ${e.seq}, deleted` });
  }
  return { findings, judged };
}

const ACTIONS = new Set(['edit', 'delete', 'react']);

/**
 * The first action in a log the server should have refused: an edit or delete
 * by another user than the target's author (forbidden), an action on a target
 * deleted at a lower seq (conflict), or one whose target is no message of the
 * log (not_found). A target outside the log (before this member's readable
 * range) is not judged.
 */
export function invalidAction(entries: readonly ChatEntry[]): { seqs: number[]; message: string } | undefined {
  const sorted = [...entries].sort((a, b) => a.seq - b.seq);
  const bySeq = new Map(sorted.map((e) => [e.seq, e]));
  const lowest = sorted[0]?.seq ?? 0;
  const deletedAt = new Map<number, number>();
  for (const e of sorted) {
    if (!ACTIONS.has(e.kind) || e.ref === undefined) continue;
    const target = bySeq.get(e.ref);
    if (!target) {
      if (e.ref >= lowest) return { seqs: [e.seq, e.ref], message: `the ${e.kind} at ${e.seq} acts on seq ${e.ref}, which is not in the log` };
      continue;
    }
    if (target.kind !== 'msg') return { seqs: [e.seq, e.ref], message: `the ${e.kind} at ${e.seq} acts on a ${target.kind} entry (${e.ref})` };
    if (e.kind !== 'react' && e.from !== target.from) return { seqs: [e.seq, e.ref], message: `${e.from} may not ${e.kind} ${target.from}'s message ${e.ref}, yet the log holds it at ${e.seq}` };
    const gone = deletedAt.get(e.ref);
    if (gone !== undefined) return { seqs: [gone, e.seq], message: `the ${e.kind} at ${e.seq} acts on ${e.ref}, deleted at ${gone}` };
    if (e.kind === 'delete') deletedAt.set(e.ref, e.seq);
  }
  return undefined;
}

/**
 * Keeps what the chat-state rules need while the history streams by (one pass,
 * as the log checker does) and judges the rest once the final logs are in.
 */
export class ChatStateChecker {
  readonly findings: ChatStateFinding[] = [];
  readonly judged: Record<ChatStateRule, number> = { 'read-backwards': 0, 'unread-wrong': 0, 'deleted-body': 0, 'view-divergent': 0, 'action-invalid': 0 };
  private readonly positions = new ReadPositions();
  /** per (conn, reader, conv): the highest read push so far */
  private readonly pushed = new Map<string, { seq: number; index: number }>();
  /** per (user, device, conv, cmid) of a delete send: its target */
  private readonly deletes = new Map<string, number>();
  /** per (conv, target): when the first ack of its delete arrived */
  private readonly deletedAt = new Map<string, { at: number; index: number }>();
  private readonly syncStarts = new Map<string, number>();
  private readonly rows: ConvsRowObservation[] = [];
  private readonly finals = new Map<string, { entries: readonly ChatEntry[]; index: number }>();
  private readonly views: { user: string; device: string; conv: string; items: readonly FoldedItem[]; index: number }[] = [];

  add(e: HistoryEvent, index: number): void {
    switch (e.type) {
      case 'send':
        if (e.kind === 'delete' && e.ref !== undefined) this.deletes.set(`${e.user}/${e.device}/${e.conv}/${e.cmid}`, e.ref);
        return;
      case 'ack': {
        const target = this.deletes.get(`${e.user}/${e.device}/${e.conv}/${e.cmid}`);
        const key = `${e.conv}#${target}`;
        if (target !== undefined && !this.deletedAt.has(key)) this.deletedAt.set(key, { at: e.at, index });
        return;
      }
      case 'sync-start':
        this.syncStarts.set(e.sync, e.at);
        return;
      case 'sync-result':
        return this.judgeSync(e.conv, e.entries, this.syncStarts.get(e.sync), index);
      case 'read-result':
        return this.judgeRead(e.user, e.conv, e.sentAt, e.at, e.seq, index);
      case 'read-push': {
        if (e.injected) return;
        const key = `${e.conn}\n${e.reader}\n${e.conv}`;
        const before = this.pushed.get(key);
        this.judged['read-backwards']++;
        if (before && e.seq < before.seq) this.report('read-backwards', e.conv, [before.seq, e.seq], [before.index, index], `${e.conn} was pushed ${e.reader}'s read position ${e.seq} after ${before.seq}`);
        else this.pushed.set(key, { seq: e.seq, index });
        return;
      }
      case 'convs-result': {
        for (const row of e.rows) {
          if (row.read === undefined) continue;
          this.judgeRead(e.user, row.conv, e.sentAt, e.at, row.read, index);
          if (row.unread !== undefined) this.rows.push({ user: e.user, conv: row.conv, read: row.read, last: row.last, unread: row.unread, index });
        }
        if (e.full && !e.more && !e.truncated && e.unread !== undefined) {
          this.judged['unread-wrong']++;
          const sum = e.rows.reduce((n, row) => n + (row.unread ?? 0), 0);
          if (sum !== e.unread) this.report('unread-wrong', '', [], [index], `${e.user}'s convs reply said unread ${e.unread} in all, its rows add up to ${sum}`);
        }
        return;
      }
      case 'final-log': {
        // Every device's log is judged for deleted bodies; one per user is kept for rows and views.
        const found = deletedBodies(e.conv, e.entries, index);
        this.judged['deleted-body'] += found.judged;
        for (const f of found.findings) this.report(f.kind, f.conv, f.seqs, f.evidence, f.message);
        this.finals.set(`${e.user}\n${e.conv}`, { entries: e.entries, index });
        return;
      }
      case 'final-view':
        this.views.push({ user: e.user, device: e.device, conv: e.conv, items: e.items, index });
        return;
      default:
        return;
    }
  }

  finish(): void {
    const { findings, judged } = judgeFinals(this.finals, this.rows, this.views, false);
    this.findings.push(...findings);
    for (const [rule, n] of Object.entries(judged) as [ChatStateRule, number][]) this.judged[rule] += n;
  }

  private judgeRead(user: string, conv: string, sentAt: number, at: number, seq: number, index: number): void {
    this.judged['read-backwards']++;
    const floor = this.positions.observe(user, conv, sentAt, { at, value: seq });
    if (seq < floor) this.report('read-backwards', conv, [floor, seq], [index], `${user}'s read position in ${conv} was ${seq} in an answer asked after ${floor} had been answered`);
  }

  private judgeSync(conv: string, entries: readonly ChatEntry[], startedAt: number | undefined, index: number): void {
    if (startedAt === undefined) return;
    for (const e of entries) {
      // An entry the server itself marks deleted carries no body, whenever the delete was.
      if (e.deleted !== undefined) {
        this.judged['deleted-body']++;
        if (e.body !== null && e.body !== undefined) this.report('deleted-body', conv, [e.seq], [index], `a sync returned ${e.seq} marked deleted at ${e.deleted}, with its body`);
        continue;
      }
      const target = e.kind === 'msg' ? e.seq : e.kind === 'edit' ? e.ref : undefined;
      const deleted = target === undefined ? undefined : this.deletedAt.get(`${conv}#${target}`);
      if (!deleted || deleted.at >= startedAt) continue;
      this.judged['deleted-body']++;
      if (e.body !== null && e.body !== undefined) this.report('deleted-body', conv, [e.seq], [deleted.index, index], `a sync that started after the delete of ${target} was acked returned the body of ${e.seq}`);
    }
  }

  private report(kind: ChatStateRule, conv: string, seqs: number[], evidence: number[], message: string): void {
    if (this.findings.length < 200) this.findings.push({ kind, conv, seqs, evidence, message });
  }
}
