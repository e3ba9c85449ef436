/**
 * The conversation owner: the one module that holds and changes a
 * conversation's state on this node — the head (last assigned seq, committed
 * seq, newest ts), membership as of the head, read positions, deletes not yet
 * durable, and each device's lane (dedup memory, next dseq, held-back sends).
 * Other modules read it and ask it to change through the methods below; none
 * writes a field. State is loaded from the store on first touch and dropped
 * when a commit fails, so that the next touch reloads the truth. (In cluster
 * mode this is also where the slot's lease and the epoch of every commit live.)
 */
import { parseConvId, type ConvRef, type Entry } from 'sequent-client/protocol';
import type { CommitFence, ConvKind, Membership, MembershipChange, ReadPosition, Store } from '../store/index.js';
import { DeviceLane } from './lanes.js';

/** What the caller decides; the owner fills in seq and ts, the sequencer the mid. */
export interface EntryDraft {
  kind: Entry['kind'];
  from: string;
  dev: string;
  body: unknown;
  /** JSON.stringify(body), when the caller has it: reused by the store and the pushes. */
  bodyJson?: string;
  cmid?: string;
  dseq?: number;
  ctx?: { seen?: number };
  /** For an edit, delete or reaction: the seq of the message it acts on. */
  ref?: number;
  /** Membership changes this entry makes, applied at its seq. */
  add?: readonly string[];
  remove?: readonly string[];
}

/** A draft given its place: the entry, and what its commit and its pushes need. */
export interface Assigned {
  entry: Entry;
  /** Set when this entry creates the conversation in the store. */
  newConv: ConvKind | undefined;
  memberships: MembershipChange[];
  /** Users to push the entry to: members at its seq, and those it removes. */
  audience: readonly string[];
}

export interface Stretch {
  fromSeq: number;
  toSeq: number | null;
}

export class ConvState {
  /** The newest seq handed out (committed or not). */
  private head: number;
  /** The newest seq known durable; reads never go past it. */
  private durableSeq: number;
  private headTs: number;
  /** Current members, as of the head. A DM's two users are always its members. */
  private readonly members: Set<string>;
  /** The same members as an array, replaced (never mutated) on change so fan-out can keep a reference. */
  private memberArray: readonly string[];
  /** Each user's latest membership stretch, as of the head. */
  private readonly stretches: Map<string, Stretch>;
  /** Each device's lane, by user and device. */
  private readonly laneMap = new Map<string, DeviceLane>();
  /** Entries handed a seq whose commit has not finished. */
  private pending = 0;
  /** Answers waiting for a seq to be durable (untilDurable). */
  private durableWaiters: { seq: number; settle: (durable: boolean) => void }[] = [];
  private stale = false;
  private strict = false;
  /**
   * In a cluster: the slot lease this state was loaded under. Every commit of it
   * carries this fence, so a state loaded before its slot moved can never write.
   */
  fence: CommitFence | undefined;
  /** Chat state: each user's read positions as the owner has decided them (durable or on the way). */
  private readonly reads = new Map<string, { read: number; publicRead: number }>();
  /** Chat state: targets deleted by entries handed a seq here (the store knows the committed ones), target → delete seq. */
  private readonly deletedTargets = new Map<number, number>();

  constructor(
    readonly ref: ConvRef,
    last: number,
    lastTs: number,
    memberships: readonly Membership[],
    reads: readonly ReadPosition[] = [],
  ) {
    for (const r of reads) this.reads.set(r.user, { read: r.read, publicRead: r.publicRead });
    this.head = last;
    this.durableSeq = last;
    this.headTs = lastTs;
    this.stretches = new Map();
    for (const m of memberships) this.stretches.set(m.user, { fromSeq: m.fromSeq, toSeq: m.toSeq });
    if (ref.kind === 'dm') {
      this.members = new Set(ref.users);
      for (const user of ref.users) if (!this.stretches.has(user)) this.stretches.set(user, { fromSeq: 1, toSeq: null });
    } else {
      this.members = new Set([...this.stretches].filter(([, s]) => s.toSeq === null).map(([user]) => user));
    }
    this.memberArray = [...this.members];
  }

  get conv(): string {
    return this.ref.conv;
  }

  /** The newest seq handed out (committed or not). */
  get last(): number {
    return this.head;
  }

  /** The newest seq known durable; reads never go past it. */
  get committed(): number {
    return this.durableSeq;
  }

  /** The newest entry's ts: a new one never goes below it. */
  get lastTs(): number {
    return this.headTs;
  }

  /** Current members, as of the head; the same array until membership changes. */
  get memberList(): readonly string[] {
    return this.memberArray;
  }

  /** Set when a commit failed: this state is stale and must not be used any more. */
  get broken(): boolean {
    return this.stale;
  }

  /**
   * Look every cmid up in the store, also for a dseq never seen before. Off by
   * default; a conversation whose commit ever failed turns it on for good.
   */
  get strictDedup(): boolean {
    return this.strict;
  }

  /** Nothing in flight and no lane busy or holding a send: the state may be dropped from memory. */
  get idle(): boolean {
    if (this.pending > 0) return false;
    for (const lane of this.laneMap.values()) if (!lane.idle) return false;
    return true;
  }

  /** A group exists once its create entry has a seq; a DM always exists implicitly. */
  get exists(): boolean {
    return this.ref.kind === 'dm' || this.head > 0;
  }

  /** The device's lane in this conversation, made on first use. */
  lane(user: string, device: string): DeviceLane {
    const key = `${user}\u0000${device}`;
    let lane = this.laneMap.get(key);
    if (!lane) {
      lane = new DeviceLane();
      this.laneMap.set(key, lane);
    }
    return lane;
  }

  lanes(): IterableIterator<DeviceLane> {
    return this.laneMap.values();
  }

  /** The seq of a delete handed out here for `target`, durable or not. */
  deletedAt(target: number): number | undefined {
    return this.deletedTargets.get(target);
  }

  /**
   * Gives the draft the next seq and a ts (never below the newest one) and applies
   * at that seq what it changes here: membership, the sender's read position, a
   * delete. The caller has checked that the author may write at this seq.
   */
  assign(draft: EntryDraft, mid: string, now: number): Assigned {
    const newConv: ConvKind | undefined = this.head === 0 ? this.ref.kind : undefined;
    const seq = this.head + 1;
    const ts = Math.max(now, this.headTs);
    const entry: Entry = { conv: this.conv, seq, kind: draft.kind, mid, ts, from: draft.from, dev: draft.dev, body: draft.body };
    if (draft.cmid !== undefined) entry.cmid = draft.cmid;
    if (draft.dseq !== undefined) entry.dseq = draft.dseq;
    if (draft.ctx !== undefined) entry.ctx = draft.ctx;
    if (draft.ref !== undefined) entry.ref = draft.ref;
    if (draft.kind === 'delete' && draft.ref !== undefined) this.deletedTargets.set(draft.ref, seq);

    const memberships: MembershipChange[] = [];
    if (newConv === 'dm' && this.ref.kind === 'dm') {
      for (const user of this.ref.users) memberships.push({ op: 'add', conv: this.conv, user, seq });
    }
    let audience = this.memberArray;
    if (draft.add?.length || draft.remove?.length) {
      const before = this.memberArray;
      for (const user of draft.add ?? []) {
        this.addMember(user, seq);
        memberships.push({ op: 'add', conv: this.conv, user, seq });
      }
      for (const user of draft.remove ?? []) {
        this.removeMember(user, seq);
        memberships.push({ op: 'remove', conv: this.conv, user, seq });
      }
      audience = [...new Set([...before, ...this.memberArray])];
    }
    this.head = seq;
    this.headTs = ts;
    this.pending++;
    return { entry, newConv, memberships, audience };
  }

  /**
   * The entry at `seq`, sent by `from`, is durable (commits return in seq order). Sending an entry
   * moves the sender's read position to it, as the commit just did in the store; only now, so that
   * a `read` answered meanwhile never says a position a crash could undo.
   */
  durable(seq: number, from: string): void {
    this.durableSeq = seq;
    this.pending--;
    this.moveRead(from, seq, true);
    if (this.durableWaiters.length > 0) {
      const ready = this.durableWaiters.filter((w) => w.seq <= seq);
      this.durableWaiters = this.durableWaiters.filter((w) => w.seq > seq);
      for (const w of ready) w.settle(true);
    }
  }

  /**
   * True once every entry up to `seq` is durable; false if this state breaks first
   * (a commit failed, the slot moved). An answer judged on the head — which holds
   * entries still committing — waits for this, or it could promise what a failed
   * commit then takes back.
   */
  untilDurable(seq: number): Promise<boolean> {
    if (this.durableSeq >= seq) return Promise.resolve(true);
    if (this.stale) return Promise.resolve(false);
    return new Promise((settle) => this.durableWaiters.push({ seq, settle }));
  }

  /** An entry handed a seq here will never be durable (its commit failed or was refused). */
  dropped(): void {
    this.pending--;
  }

  /** A commit failed: whoever holds this state must stop using it; the owner loads a fresh one on the next touch. */
  markBroken(): void {
    this.stale = true;
    for (const w of this.durableWaiters.splice(0)) w.settle(false);
  }

  /** Turns strict dedup on (after a failed commit in this process; never off again). */
  makeStrict(): void {
    this.strict = true;
  }

  isMember(user: string): boolean {
    return this.members.has(user);
  }

  /** The user's read position (0 when it has none yet). */
  readOf(user: string): Readonly<{ read: number; publicRead: number }> {
    return this.position(user);
  }

  private position(user: string): { read: number; publicRead: number } {
    let position = this.reads.get(user);
    if (!position) this.reads.set(user, (position = { read: 0, publicRead: 0 }));
    return position;
  }

  /** Moves a read position forward, as the store will; true when it moved. */
  moveRead(user: string, seq: number, isPublic: boolean): boolean {
    const position = this.position(user);
    const moved = seq > position.read;
    position.read = Math.max(position.read, seq);
    if (isPublic) position.publicRead = Math.max(position.publicRead, seq);
    return moved;
  }

  private addMember(user: string, seq: number): void {
    // Nothing before the add is readable to the user, so nothing before it is unread (as the store does).
    this.moveRead(user, seq - 1, true);
    this.members.add(user);
    this.stretches.set(user, { fromSeq: seq, toSeq: null });
    this.memberArray = [...this.members];
  }

  private removeMember(user: string, seq: number): void {
    this.members.delete(user);
    const stretch = this.stretches.get(user);
    if (stretch) stretch.toSeq = seq;
    this.memberArray = [...this.members];
  }

  /** The seqs this user may read now: its latest stretch, cut at what is durable. Null when none. */
  readableRange(user: string): { from: number; until: number } | null {
    const stretch = this.stretches.get(user);
    if (!stretch) return null;
    const until = Math.min(stretch.toSeq ?? Number.MAX_SAFE_INTEGER, this.durableSeq);
    return { from: stretch.fromSeq, until };
  }
}

/** A conversation's state as the store has it: what the owner loads on first touch, and what a store view is. */
export async function loadConvState(store: Store, ref: ConvRef, withReads: boolean): Promise<ConvState> {
  // The head first, memberships after: read by a node that does not own the conversation while its
  // owner commits, a membership change newer than the head read is then past it (an add starts after
  // it, a removal ends after it), so the view never lets anyone read past a removal.
  const record = await store.getConv(ref.conv);
  const [memberships, reads] = await Promise.all([
    store.getMemberships(ref.conv),
    withReads ? store.readPositions(ref.conv) : Promise.resolve<ReadPosition[]>([]),
  ]);
  const latest = new Map<string, Membership>();
  for (const m of memberships) latest.set(m.user, m);
  return new ConvState(ref, record?.last ?? 0, record?.lastTs ?? 0, [...latest.values()], reads);
}

/** In a cluster: which conversations this node may own now, and the lease each is committed under. */
export interface Ownership {
  /** The lease of the conversation's slot while this node holds it; otherwise undefined. */
  fenceOf(conv: string): CommitFence | undefined;
}

/** A conversation whose slot this node does not hold (any more): the request goes to its owner instead. */
export class NotOwnerError extends Error {
  override name = 'NotOwnerError';
  constructor(readonly conv: string) {
    super(`this node does not own ${conv} now; resend`);
  }
}

/** Every conversation this node owns: loaded on first touch, cached, dropped when idle or stale. */
export class ConversationOwner {
  private readonly cache = new Map<string, ConvState>();
  private readonly loading = new Map<string, Promise<ConvState>>();
  /** Conversations that had a failed commit in this process: they stay on strict dedup. */
  private readonly failedBefore = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly maxCached = 100_000,
    private readonly onLoad: (state: ConvState) => void = () => {},
    /** Set in a cluster: a conversation is loaded only while its slot is held, and keeps that lease. */
    private readonly ownership?: Ownership,
  ) {}

  /** The state if it is loaded already: the hot path needs no promise for it. */
  cachedState(conv: string): ConvState | undefined {
    return this.cache.get(conv);
  }

  /** The owner's state of a conversation; null for a malformed id. Rejects with NotOwnerError in a cluster when its slot is not held. */
  async get(conv: string): Promise<ConvState | null> {
    const cached = this.cache.get(conv);
    if (cached) return cached;
    const ref = parseConvId(conv);
    if (!ref) return null;
    let pending = this.loading.get(conv);
    if (!pending) {
      pending = this.load(ref).finally(() => this.loading.delete(conv));
      this.loading.set(conv, pending);
    }
    return pending;
  }

  cached(): IterableIterator<ConvState> {
    return this.cache.values();
  }

  /** Forget a conversation's state after a failed commit; the next touch reloads it from the store. */
  invalidate(state: ConvState): void {
    state.markBroken();
    this.failedBefore.add(state.conv);
    if (this.cache.get(state.conv) === state) this.cache.delete(state.conv);
  }

  /**
   * Forgets every cached conversation `lost` says (their slot moved): what is held
   * in them is returned so the caller can answer it; their commits in flight are
   * refused by the fence or land before the new holder loads.
   */
  dropWhere(lost: (state: ConvState) => boolean): ConvState[] {
    const dropped: ConvState[] = [];
    for (const [conv, state] of this.cache) {
      if (!lost(state)) continue;
      state.markBroken();
      this.cache.delete(conv);
      dropped.push(state);
    }
    return dropped;
  }

  private async load(ref: ConvRef): Promise<ConvState> {
    // The lease is taken before the store is read: if the slot moves during the read, the state keeps
    // the old epoch and its first commit is refused, instead of committing on what another node changed.
    const fence = this.ownership?.fenceOf(ref.conv);
    if (this.ownership && !fence) throw new NotOwnerError(ref.conv);
    const state = await loadConvState(this.store, ref, true);
    state.fence = fence;
    if (this.failedBefore.has(ref.conv)) state.makeStrict();
    this.onLoad(state);
    this.evictIdle();
    this.cache.set(ref.conv, state);
    return state;
  }

  private evictIdle(): void {
    if (this.cache.size < this.maxCached) return;
    for (const [conv, state] of this.cache) {
      if (this.cache.size < this.maxCached * 0.9) break;
      if (state.idle) this.cache.delete(conv);
    }
  }
}
