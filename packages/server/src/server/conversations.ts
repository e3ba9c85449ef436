/**
 * The owner's in-memory view of each conversation: the last assigned seq, the
 * committed seq, the newest ts and who is a member at the current seq. Loaded
 * from the store on first touch; dropped when a commit fails so that the next
 * touch reloads the truth.
 */
import { parseConvId, type ConvRef } from 'sequent-client/protocol';
import type { Membership, ReadPosition, Store } from '../store/index.js';
import type { DeviceLane } from './lanes.js';

export interface Stretch {
  fromSeq: number;
  toSeq: number | null;
}

export class ConvState {
  /** The newest seq handed out (committed or not). */
  last: number;
  /** The newest seq known durable; reads never go past it. */
  committed: number;
  lastTs: number;
  /** Current members, as of `last`. A DM's two users are always its members. */
  readonly members: Set<string>;
  /** The same members as an array, replaced (never mutated) on change so fan-out can keep a reference. */
  memberList: readonly string[];
  /** Each user's latest membership stretch, as of `last`. */
  readonly stretches: Map<string, Stretch>;
  readonly lanes = new Map<string, DeviceLane>();
  /** Entries handed a seq whose commit has not finished. */
  inFlight = 0;
  /** Set when a commit failed: this state is stale and must not be used any more. */
  broken = false;
  /**
   * Look every cmid up in the store, also for a dseq never seen before. Off by
   * default; a conversation whose commit ever failed turns it on for good.
   */
  strictDedup = false;
  /** Chat state: each user's read positions as the owner has decided them (durable or on the way). */
  readonly reads = new Map<string, { read: number; publicRead: number }>();
  /** Chat state: targets deleted by entries handed a seq here (the store knows the committed ones), target → delete seq. */
  readonly deletedTargets = new Map<number, number>();

  constructor(
    readonly ref: ConvRef,
    last: number,
    lastTs: number,
    memberships: readonly Membership[],
    reads: readonly ReadPosition[] = [],
  ) {
    for (const r of reads) this.reads.set(r.user, { read: r.read, publicRead: r.publicRead });
    this.last = last;
    this.committed = last;
    this.lastTs = lastTs;
    this.stretches = new Map();
    for (const m of memberships) this.stretches.set(m.user, { fromSeq: m.fromSeq, toSeq: m.toSeq });
    if (ref.kind === 'dm') {
      this.members = new Set(ref.users);
      for (const user of ref.users) if (!this.stretches.has(user)) this.stretches.set(user, { fromSeq: 1, toSeq: null });
    } else {
      this.members = new Set([...this.stretches].filter(([, s]) => s.toSeq === null).map(([user]) => user));
    }
    this.memberList = [...this.members];
  }

  get conv(): string {
    return this.ref.conv;
  }

  /** A group exists once its create entry has a seq; a DM always exists implicitly. */
  get exists(): boolean {
    return this.ref.kind === 'dm' || this.last > 0;
  }

  isMember(user: string): boolean {
    return this.members.has(user);
  }

  /** The user's read position (0 when it has none yet). */
  readOf(user: string): { read: number; publicRead: number } {
    let position = this.reads.get(user);
    if (!position) this.reads.set(user, (position = { read: 0, publicRead: 0 }));
    return position;
  }

  /** Moves a read position forward, as the store will; true when it moved. */
  moveRead(user: string, seq: number, isPublic: boolean): boolean {
    const position = this.readOf(user);
    const moved = seq > position.read;
    position.read = Math.max(position.read, seq);
    if (isPublic) position.publicRead = Math.max(position.publicRead, seq);
    return moved;
  }

  addMember(user: string, seq: number): void {
    // Nothing before the add is readable to the user, so nothing before it is unread (as the store does).
    this.moveRead(user, seq - 1, true);
    this.members.add(user);
    this.stretches.set(user, { fromSeq: seq, toSeq: null });
    this.memberList = [...this.members];
  }

  removeMember(user: string, seq: number): void {
    this.members.delete(user);
    const stretch = this.stretches.get(user);
    if (stretch) stretch.toSeq = seq;
    this.memberList = [...this.members];
  }

  /** The seqs this user may read now: its latest stretch, cut at what is durable. Null when none. */
  readableRange(user: string): { from: number; until: number } | null {
    const stretch = this.stretches.get(user);
    if (!stretch) return null;
    const until = Math.min(stretch.toSeq ?? Number.MAX_SAFE_INTEGER, this.committed);
    return { from: stretch.fromSeq, until };
  }
}

export class Conversations {
  private readonly cache = new Map<string, ConvState>();
  private readonly loading = new Map<string, Promise<ConvState>>();
  /** Conversations that had a failed commit in this process: they stay on strict dedup. */
  private readonly failedBefore = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly maxCached = 100_000,
    private readonly onLoad: (state: ConvState) => void = () => {},
  ) {}

  /** The state if it is loaded already: the hot path needs no promise for it. */
  cachedState(conv: string): ConvState | undefined {
    return this.cache.get(conv);
  }

  /** The owner's state of a conversation; null for a malformed id. */
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
    state.broken = true;
    this.failedBefore.add(state.conv);
    if (this.cache.get(state.conv) === state) this.cache.delete(state.conv);
  }

  private async load(ref: ConvRef): Promise<ConvState> {
    const [record, memberships, reads] = await Promise.all([
      this.store.getConv(ref.conv),
      this.store.getMemberships(ref.conv),
      this.store.readPositions(ref.conv),
    ]);
    const latest = new Map<string, Membership>();
    for (const m of memberships) latest.set(m.user, m);
    const state = new ConvState(ref, record?.last ?? 0, record?.lastTs ?? 0, [...latest.values()], reads);
    state.strictDedup = this.failedBefore.has(ref.conv);
    this.onLoad(state);
    this.evictIdle();
    this.cache.set(ref.conv, state);
    return state;
  }

  private evictIdle(): void {
    if (this.cache.size < this.maxCached) return;
    for (const [conv, state] of this.cache) {
      if (this.cache.size < this.maxCached * 0.9) break;
      const idle = state.inFlight === 0 && [...state.lanes.values()].every((lane) => lane.idle);
      if (idle) this.cache.delete(conv);
    }
  }
}
