/**
 * One conversation folded into what a chat screen shows: each message once at
 * its seq, with its newest edit, its reactions, or a tombstone once deleted.
 *
 * Edits, deletes and reactions are log entries of their own that act on an
 * earlier `msg` (their `ref`). They may arrive in any order, twice, or before
 * their target (a push of a reaction while the target is still in a page of
 * history not loaded). So nothing here depends on arrival order: every piece
 * of state is a join by seq (the newest edit is the highest seq, a delete is
 * kept at its lowest seq, each user's reaction per key is its highest seq),
 * and the screen is built from that state in seq order. Feeding the same set
 * of entries in any order, with any duplicates, gives the same messages().
 *
 * Kinds this module does not know are ignored, as the protocol asks.
 */

/** The fields of a log entry the fold reads; a protocol Entry fits. */
export interface FoldEntry {
  seq: number;
  kind: string;
  mid: string;
  ts: number;
  from: string;
  dev: string;
  cmid?: string;
  body: unknown;
  ctx?: { seen?: number };
  /** edit, delete, react: the seq of the msg it acts on. */
  ref?: number;
  /** On a msg loaded by sync: the seq of its newest edit. */
  edited?: number;
  /** On a msg (or one of its edits) loaded by sync after a delete: the seq of the delete. */
  deleted?: number;
}

export interface Reaction {
  key: string;
  /** Users whose newest reaction with this key is on, sorted. */
  users: string[];
}

/** A message or a system entry as shown. */
export interface ChatMessage<Body = unknown> {
  seq: number;
  kind: 'msg' | 'system';
  mid: string;
  ts: number;
  from: string;
  dev: string;
  cmid?: string;
  ctx?: { seen?: number };
  /** The current content: the newest edit's body, the original's, or null once deleted. */
  body: Body | null;
  /** The seq of the newest edit (known from the edit itself or from the server's `edited`). */
  edited?: number;
  /** Set on a tombstone: the seq of the delete. */
  deleted?: number;
  /** Sorted by key; empty when none (and always on a tombstone). */
  reactions: Reaction[];
}

interface Edit {
  seq: number;
  body: unknown;
}

/** Who deleted, when the fold saw the delete entry; a `deleted` annotation from the server names nobody. */
const SERVER = '';

interface Vote {
  seq: number;
  on: boolean;
}

const SHOWN = new Set(['msg', 'system']);
export const MAX_REACTION_KEY = 32;

export class ConversationFold {
  private readonly shown = new Map<number, FoldEntry>();
  private readonly order: number[] = [];
  private readonly actions = new Map<number, FoldEntry>();
  /** Per target, per author: the newest edit. Only the target's author counts, known once the target is here. */
  private readonly edits = new Map<number, Map<string, Edit>>();
  private readonly editHints = new Map<number, number>();
  /** Per target, per deleter (SERVER for an annotation): the lowest delete seq. */
  private readonly deletes = new Map<number, Map<string, number>>();
  private readonly votes = new Map<number, Map<string, Vote>>();
  private readonly seen = new Set<number>();
  private cache: ChatMessage[] | undefined;

  /** The number of distinct seqs taken in (any kind). */
  get size(): number {
    return this.seen.size;
  }

  /** The lowest seq taken in (any kind), if any: where "load earlier" continues. */
  get lowest(): number | undefined {
    return this.lowestSeq;
  }

  private lowestSeq: number | undefined;

  has(seq: number): boolean {
    return this.seen.has(seq);
  }

  /** The entry taken at this seq, if any (the first copy; later copies only add annotations). */
  entry(seq: number): FoldEntry | undefined {
    return this.shown.get(seq) ?? this.actions.get(seq);
  }

  /** Every entry held that a fold acts on (messages, system entries, edits, deletes, reactions), in no order. */
  *known(): Iterable<FoldEntry> {
    yield* this.shown.values();
    yield* this.actions.values();
  }

  /** Each deleted message's seq and the seq of its delete. */
  *deletions(): Iterable<[number, number]> {
    for (const target of this.deletes.keys()) {
      const at = this.deletedAt(target);
      if (at !== undefined) yield [target, at];
    }
  }

  /** Who sent a delete of `seq` (its author, as only the author may), if that entry is here. */
  deleterOf(seq: number): string | undefined {
    for (const deleter of this.deletes.get(seq)?.keys() ?? []) if (deleter !== SERVER) return deleter;
    return undefined;
  }

  /** Takes one entry (any kind, any order, again and again); returns false for a seq taken before. */
  add(entry: FoldEntry): boolean {
    const fresh = !this.seen.has(entry.seq);
    this.seen.add(entry.seq);
    if (this.lowestSeq === undefined || entry.seq < this.lowestSeq) this.lowestSeq = entry.seq;
    this.annotate(entry);
    if (SHOWN.has(entry.kind)) {
      if (!this.shown.has(entry.seq)) {
        this.shown.set(entry.seq, entry);
        insertSorted(this.order, entry.seq);
      }
    } else if (entry.ref !== undefined && Number.isInteger(entry.ref)) {
      if (!this.actions.has(entry.seq)) this.actions.set(entry.seq, entry);
      this.applyAction(entry, entry.ref);
    }
    // Annotations and actions may change any message: rebuild lazily.
    this.cache = undefined;
    return fresh;
  }

  /** The messages in seq order. */
  messages(): ChatMessage[] {
    this.cache ??= this.order.map((seq) => this.build(this.shown.get(seq) as FoldEntry));
    return this.cache;
  }

  /** One message as shown, if its entry is here. */
  message(seq: number): ChatMessage | undefined {
    const entry = this.shown.get(seq);
    return entry ? this.build(entry) : undefined;
  }

  /** The seq of the delete of `seq`, if known. */
  deletedAt(seq: number): number | undefined {
    const byDeleter = this.deletes.get(seq);
    if (!byDeleter) return undefined;
    const author = this.shown.get(seq)?.from;
    // Only the author may delete (the server refuses others); before the target is here, any delete is a candidate.
    let lowest: number | undefined;
    for (const [deleter, at] of byDeleter) {
      if (deleter !== SERVER && author !== undefined && deleter !== author) continue;
      if (lowest === undefined || at < lowest) lowest = at;
    }
    return lowest;
  }

  private annotate(entry: FoldEntry): void {
    if (typeof entry.deleted === 'number') {
      const target = entry.kind === 'msg' ? entry.seq : entry.ref;
      if (target !== undefined) this.noteDelete(target, SERVER, entry.deleted);
    }
    if (entry.kind === 'msg' && typeof entry.edited === 'number') {
      this.editHints.set(entry.seq, Math.max(this.editHints.get(entry.seq) ?? 0, entry.edited));
    }
  }

  private applyAction(entry: FoldEntry, ref: number): void {
    if (entry.kind === 'edit') {
      let byAuthor = this.edits.get(ref);
      if (!byAuthor) {
        byAuthor = new Map();
        this.edits.set(ref, byAuthor);
      }
      const current = byAuthor.get(entry.from);
      if (!current || current.seq < entry.seq) byAuthor.set(entry.from, { seq: entry.seq, body: entry.body });
    } else if (entry.kind === 'delete') {
      this.noteDelete(ref, entry.from, entry.seq);
    } else if (entry.kind === 'react') {
      const body = entry.body as { key?: unknown; on?: unknown } | null;
      if (!body || typeof body.key !== 'string' || typeof body.on !== 'boolean') return;
      if (body.key.length < 1 || body.key.length > MAX_REACTION_KEY) return;
      let byVoter = this.votes.get(ref);
      if (!byVoter) {
        byVoter = new Map();
        this.votes.set(ref, byVoter);
      }
      const voter = `${entry.from}\u0000${body.key}`;
      const current = byVoter.get(voter);
      if (!current || current.seq < entry.seq) byVoter.set(voter, { seq: entry.seq, on: body.on });
    }
  }

  private noteDelete(target: number, deleter: string, seq: number): void {
    let byDeleter = this.deletes.get(target);
    if (!byDeleter) {
      byDeleter = new Map();
      this.deletes.set(target, byDeleter);
    }
    byDeleter.set(deleter, Math.min(byDeleter.get(deleter) ?? seq, seq));
  }

  private build(entry: FoldEntry): ChatMessage {
    const message: ChatMessage = {
      seq: entry.seq,
      kind: entry.kind as 'msg' | 'system',
      mid: entry.mid,
      ts: entry.ts,
      from: entry.from,
      dev: entry.dev,
      body: entry.body,
      reactions: [],
    };
    if (entry.cmid !== undefined) message.cmid = entry.cmid;
    if (entry.ctx !== undefined) message.ctx = entry.ctx;
    if (entry.kind !== 'msg') return message;
    const deleted = this.deletedAt(entry.seq);
    const ownEdit = this.edits.get(entry.seq)?.get(entry.from);
    const edited = Math.max(ownEdit?.seq ?? 0, this.editHints.get(entry.seq) ?? 0);
    if (edited > 0) message.edited = edited;
    if (deleted !== undefined) {
      message.deleted = deleted;
      message.body = null;
      return message;
    }
    if (ownEdit) message.body = ownEdit.body;
    message.reactions = this.reactionsOf(entry.seq);
    return message;
  }

  private reactionsOf(seq: number): Reaction[] {
    const byVoter = this.votes.get(seq);
    if (!byVoter) return [];
    const byKey = new Map<string, string[]>();
    for (const [voter, vote] of byVoter) {
      if (!vote.on) continue;
      const split = voter.indexOf('\u0000');
      const user = voter.slice(0, split);
      const key = voter.slice(split + 1);
      byKey.set(key, [...(byKey.get(key) ?? []), user]);
    }
    return [...byKey.entries()]
      .sort(([a], [b]) => compare(a, b))
      .map(([key, users]) => ({ key, users: users.sort(compare) }));
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function insertSorted(list: number[], value: number): void {
  let low = 0;
  let high = list.length;
  if (high === 0 || (list[high - 1] as number) < value) {
    list.push(value);
    return;
  }
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((list[middle] as number) < value) low = middle + 1;
    else high = middle;
  }
  list.splice(low, 0, value);
}
