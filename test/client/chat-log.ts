/**
 * Random valid chat logs for property tests, the copies of their entries a
 * client may receive (pushes, and sync pages taken at any later moment, which
 * carry `edited`/`deleted` as of that moment), and a plain reference fold to
 * compare the SDK's against.
 */
import fc from 'fast-check';
import type { ChatMessage, FoldEntry } from '../../packages/client/src/client/fold.js';

export const USERS = ['ann', 'ben', 'cat'] as const;
const KEYS = ['+1', 'heart', 'laugh'] as const;

/** One step of a script; indexes pick among what exists when the step runs, so every log is valid. */
export type Step =
  | { op: 'msg'; user: number }
  | { op: 'edit'; pick: number }
  | { op: 'delete'; pick: number }
  | { op: 'react'; pick: number; user: number; key: number; on: boolean }
  | { op: 'system' }
  | { op: 'unknown'; user: number };

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('msg' as const), user: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('edit' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('react' as const), pick: fc.nat(), user: fc.nat(2), key: fc.nat(2), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('system' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('unknown' as const), user: fc.nat(2) }) },
);

/** Builds the log the server would have after the script (refused steps are skipped, as the server refuses them). */
export function buildLog(steps: readonly Step[]): FoldEntry[] {
  const log: FoldEntry[] = [];
  const live: FoldEntry[] = [];
  const push = (fields: Omit<FoldEntry, 'seq' | 'mid' | 'ts' | 'dev'>): FoldEntry => {
    const seq = log.length + 1;
    const entry: FoldEntry = { seq, mid: String(5000 + seq), ts: 1_700_000_000_000 + seq, dev: `${fields.from}-d`, ...fields };
    log.push(entry);
    return entry;
  };
  for (const step of steps) {
    if (step.op === 'msg') {
      const from = USERS[step.user] as string;
      live.push(push({ kind: 'msg', from, cmid: `c${log.length + 1}`, body: { text: `m${log.length + 1}` } }));
    } else if (step.op === 'system') {
      push({ kind: 'system', from: 'ann', body: { op: 'members', add: [], remove: [] } });
    } else if (step.op === 'unknown') {
      push({ kind: 'poll', from: USERS[step.user] as string, body: { question: '?' }, ref: live[0]?.seq ?? 1 });
    } else {
      const target = live[step.pick % Math.max(1, live.length)];
      if (!target) continue;
      if (step.op === 'edit') push({ kind: 'edit', from: target.from, ref: target.seq, body: { text: `edit ${log.length + 1}` } });
      else if (step.op === 'delete') {
        push({ kind: 'delete', from: target.from, ref: target.seq, body: null });
        live.splice(live.indexOf(target), 1);
      } else push({ kind: 'react', from: USERS[step.user] as string, ref: target.seq, body: { key: KEYS[step.key], on: step.on } });
    }
  }
  return log;
}

/** The entry at `seq` as a sync taken when the log was `at` long would return it. */
export function syncedCopy(log: readonly FoldEntry[], seq: number, at: number): FoldEntry {
  const entry = { ...(log[seq - 1] as FoldEntry) };
  const target = entry.kind === 'msg' ? entry.seq : entry.kind === 'edit' ? entry.ref : undefined;
  if (target === undefined) return entry;
  const upTo = log.slice(0, at);
  const deletion = upTo.find((e) => e.kind === 'delete' && e.ref === target);
  if (deletion) {
    entry.body = null;
    entry.deleted = deletion.seq;
  }
  if (entry.kind === 'msg') {
    const edits = upTo.filter((e) => e.kind === 'edit' && e.ref === target);
    if (edits.length > 0) entry.edited = (edits.at(-1) as FoldEntry).seq;
  }
  return entry;
}

/** What a screen should show for the whole log: the rules of the protocol, applied once, in seq order. */
export function referenceFold(log: readonly FoldEntry[]): ChatMessage[] {
  const shown = new Map<number, ChatMessage>();
  const votes = new Map<number, Map<string, Map<string, boolean>>>();
  for (const entry of log) {
    if (entry.kind === 'msg' || entry.kind === 'system') {
      const message: ChatMessage = { seq: entry.seq, kind: entry.kind, mid: entry.mid, ts: entry.ts, from: entry.from, dev: entry.dev, body: entry.body, reactions: [] };
      if (entry.cmid !== undefined) message.cmid = entry.cmid;
      shown.set(entry.seq, message);
      continue;
    }
    const target = entry.ref === undefined ? undefined : shown.get(entry.ref);
    if (!target || target.kind !== 'msg') continue;
    if (entry.kind === 'edit') {
      target.body = entry.body;
      target.edited = entry.seq;
    } else if (entry.kind === 'delete') {
      target.deleted = entry.seq;
      target.body = null;
    } else if (entry.kind === 'react') {
      const { key, on } = entry.body as { key: string; on: boolean };
      const byKey = votes.get(target.seq) ?? new Map<string, Map<string, boolean>>();
      votes.set(target.seq, byKey);
      const byUser = byKey.get(key) ?? new Map<string, boolean>();
      byKey.set(key, byUser);
      byUser.set(entry.from, on);
    }
  }
  for (const [seq, byKey] of votes) {
    const message = shown.get(seq) as ChatMessage;
    if (message.deleted !== undefined) continue;
    message.reactions = [...byKey.entries()]
      .map(([key, byUser]) => ({ key, users: [...byUser].filter(([, on]) => on).map(([user]) => user).sort() }))
      .filter((reaction) => reaction.users.length > 0)
      .sort((a, b) => (a.key < b.key ? -1 : 1));
  }
  return [...shown.values()];
}
