/**
 * Who may read which seqs of a conversation, rebuilt from the log's system
 * entries (the server's own record of membership), with acked membership
 * requests filling seqs no log showed. A DM's two users read it from seq 1
 * for ever. A group member reads from the entry that added it through the
 * entry that removed it (both included); a user added again gets a new
 * interval. Pure.
 */
import { parseConvId } from 'sequent-client/protocol';
import type { HistoryEntry, MembershipEvent } from './history.js';

export interface Interval {
  /** the seq of the entry that added the user (included) */
  from: number;
  /** the seq of the entry that removed the user (included), or Infinity */
  until: number;
}

export class MembershipTimeline {
  /** @param known false when the conversation's membership could not be rebuilt (no create entry seen) */
  constructor(
    readonly known: boolean,
    private readonly intervals: ReadonlyMap<string, readonly Interval[]>,
  ) {}

  of(user: string): readonly Interval[] {
    return this.intervals.get(user) ?? [];
  }

  /** True when the user was a member at that seq (or membership is unknown: nothing can be judged). */
  canRead(user: string, seq: number): boolean {
    if (!this.known) return true;
    return this.of(user).some((i) => seq >= i.from && seq <= i.until);
  }

  /** The user's latest membership, which decides what its final log may hold. */
  current(user: string): Interval | undefined {
    return this.of(user).at(-1);
  }

  /** Why a seq the user saw was not readable: removed before it, or not yet (re)added. */
  why(user: string, seq: number): 'after-removal' | 'before-join' {
    return this.of(user).some((i) => i.until < seq) ? 'after-removal' : 'before-join';
  }
}

type SystemBody = { op: 'create'; members: string[] } | { op: 'members'; add?: string[]; remove?: string[] };

function systemBody(entry: HistoryEntry): SystemBody | undefined {
  const body = entry.body as { op?: unknown } | null | undefined;
  if (typeof body !== 'object' || body === null) return undefined;
  if (body.op === 'create' || body.op === 'members') return body as SystemBody;
  return undefined;
}

/**
 * @param merged the conversation's entries by seq, as observed
 * @param events acked membership requests of this conversation
 */
export function buildTimeline(conv: string, merged: ReadonlyMap<number, HistoryEntry>, events: readonly MembershipEvent[]): MembershipTimeline {
  const ref = parseConvId(conv);
  if (ref?.kind === 'dm') {
    const all = [{ from: 1, until: Infinity }];
    return new MembershipTimeline(true, new Map(ref.users.map((user) => [user, all])));
  }
  const changes = new Map<number, { add: string[]; remove: string[] }>();
  for (const event of events) {
    if (event.seq === undefined) continue;
    const add = event.op === 'create' ? [...new Set([event.user, ...event.add])] : event.add;
    changes.set(event.seq, { add, remove: event.op === 'create' ? [] : event.remove });
  }
  // The log wins over a request's own account: no-op changes are left out of the entry.
  for (const [seq, entry] of merged) {
    // A change that changed nothing is answered with the current seq, which may be a message's.
    if (entry.kind !== 'system') {
      changes.delete(seq);
      continue;
    }
    const body = systemBody(entry);
    if (body === undefined) continue;
    if (body.op === 'create') changes.set(seq, { add: [...new Set([entry.from, ...body.members])], remove: [] });
    else changes.set(seq, { add: body.add ?? [], remove: body.remove ?? [] });
  }
  const created = changes.get(1);
  if (created === undefined) return new MembershipTimeline(false, new Map());
  const intervals = new Map<string, Interval[]>();
  for (const seq of [...changes.keys()].sort((x, y) => x - y)) {
    const change = changes.get(seq);
    if (change === undefined) continue;
    for (const user of change.remove) {
      const open = intervals.get(user)?.at(-1);
      if (open !== undefined && open.until === Infinity) open.until = seq;
    }
    for (const user of change.add) {
      const list = intervals.get(user) ?? [];
      const open = list.at(-1);
      if (open === undefined || open.until !== Infinity) list.push({ from: seq, until: Infinity });
      intervals.set(user, list);
    }
  }
  return new MembershipTimeline(true, intervals);
}
