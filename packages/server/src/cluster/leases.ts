/**
 * A node's slot leases. Every tick (a quarter of the lease, as the seq
 * generator's LeaseSet): heartbeat and read the live nodes; renew every held
 * slot; acquire the free or expired slots this node wins by rendezvous hashing
 * over the live nodes; and hand over (drain, then release) a few held slots
 * that another live node now wins. Disagreement between nodes about who is live
 * costs a slot bounce, never safety: the epoch in the commit fence decides.
 *
 * The local rule is the seq lease's (src/seq/lease.ts): a slot serves only until
 * one tick before the database would let another node in, measured on the local
 * monotonic clock from when the acquire or renew was *sent*. A renewal that
 * comes back extends it; a renewal that finds the epoch moved loses the slot.
 */
import { tickOf } from '../seq/lease.js';
import type { ClusterDb } from './db.js';
import { type Heartbeat, Membership } from './membership.js';
import { type SlotLease, SlotRows } from './slot-rows.js';
import { SlotAssignment } from './slots.js';

export type LostReason = 'taken' | 'released' | 'superseded' | 'stopped';

export interface SlotLeasesOptions {
  db: ClusterDb;
  node: string;
  /** One per process (default random). */
  incarnation?: string;
  /** Most slots handed over per tick (default slots / 32, at least 1). */
  releasePerTick?: number;
  /** Before a hand-off or stop: stop taking work in the slot and wait for its commits in flight. */
  drain?: (slot: number, epoch: number) => Promise<void>;
  onAcquired?: (slot: number, epoch: number) => void;
  onLost?: (slot: number, epoch: number, reason: LostReason) => void;
  /** Another process joined under this node's name; this one has stopped. */
  onSuperseded?: () => void;
  /** A tick's database error (the next tick retries). */
  onError?: (error: unknown) => void;
  /** Monotonic ms (default performance.now). */
  now?: () => number;
}

interface Held extends SlotLease {
  serveUntil: number;
  releasing: boolean;
}

export class SlotLeases {
  readonly tickMs: number;
  private readonly membership: Membership;
  private readonly rows: SlotRows;
  private readonly assignment: SlotAssignment;
  private readonly now: () => number;
  private readonly releasePerTick: number;
  private readonly heldSlots = new Map<number, Held>();
  private liveNodes: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private handingOff: Promise<void> | undefined;
  private stopped = false;
  /** When the last tick that reached the database began (monotonic ms). */
  private lastTickAt: number | undefined;

  private constructor(private readonly options: SlotLeasesOptions) {
    const { db } = options;
    this.membership = new Membership(db.pool, db.tables, options.node, db.leaseMs, options.incarnation);
    this.rows = new SlotRows(db.pool, db.tables);
    this.assignment = new SlotAssignment(db.slots);
    this.now = options.now ?? (() => performance.now());
    this.tickMs = tickOf(db.leaseMs);
    this.releasePerTick = options.releasePerTick ?? Math.max(1, Math.ceil(db.slots / 32));
  }

  /** Joins under `node` (taking back at once any slot an earlier process of that name held), runs a first tick, and keeps ticking. */
  static async start(options: SlotLeasesOptions): Promise<SlotLeases> {
    const leases = new SlotLeases(options);
    leases.liveNodes = (await leases.membership.join()).live;
    await leases.tick();
    leases.schedule();
    return leases;
  }

  get node(): string {
    return this.options.node;
  }

  get incarnation(): string {
    return this.membership.incarnation;
  }

  /** The epoch to fence a commit in `slot` with, while this node may serve it; otherwise undefined. */
  epochOf(slot: number): number | undefined {
    const held = this.heldSlots.get(slot);
    if (held === undefined || held.releasing || this.now() >= held.serveUntil) return undefined;
    return held.epoch;
  }

  /** Slots held now (serving or not), by slot. */
  held(): SlotLease[] {
    return [...this.heldSlots.values()].map(({ slot, epoch }) => ({ slot, epoch })).sort((a, b) => a.slot - b.slot);
  }

  /** Live nodes as of the last heartbeat. */
  live(): readonly string[] {
    return this.liveNodes;
  }

  /** The node that should own `slot` as this node sees the cluster now (it may not hold it yet). */
  winnerOf(slot: number): string | undefined {
    return this.assignment.over(this.liveNodes)[slot];
  }

  /** Runs one tick now (or waits for the one in flight). */
  tickNow(): Promise<void> {
    return this.tick();
  }

  /**
   * Leaves the cluster for good: stops ticking, leaves the membership (others stop
   * counting this node at once), drains and releases every slot.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    await this.handingOff;
    await this.membership.leave().catch((e: unknown) => this.options.onError?.(e));
    const all = [...this.heldSlots.values()];
    for (const held of all) held.releasing = true;
    await Promise.all(all.map((h) => this.options.drain?.(h.slot, h.epoch).catch((e: unknown) => this.options.onError?.(e))));
    await this.rows.release(this.membership, all).catch((e: unknown) => this.options.onError?.(e));
    for (const held of all) this.lose(held, 'stopped');
  }

  /** Stops at once without releasing or leaving, as a killed process would (crash tests; chaos). */
  halt(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.loop(), this.tickMs);
    this.timer.unref();
  }

  private loop(): void {
    const started = this.now();
    void this.tick().finally(() => {
      if (this.stopped) return;
      // The next tick is due a tick after this one started, however long it took.
      this.timer = setTimeout(() => this.loop(), Math.max(0, this.tickMs - (this.now() - started)));
      this.timer.unref();
    });
  }

  private tick(): Promise<void> {
    this.ticking ??= this.runTick()
      .catch((error: unknown) => this.options.onError?.(error))
      .finally(() => {
        this.ticking = undefined;
      });
    return this.ticking;
  }

  /** Milliseconds since the last tick that reached the database began; undefined before the first. */
  lastTickAgeMs(): number | undefined {
    return this.lastTickAt === undefined ? undefined : this.now() - this.lastTickAt;
  }

  private async runTick(): Promise<void> {
    if (this.stopped) return;
    const startedAt = this.now();
    const beat: Heartbeat = await this.membership.heartbeat();
    this.lastTickAt = startedAt;
    if (this.stopped) return;
    if (!beat.own) {
      this.supersede();
      return;
    }
    this.liveNodes = beat.live;
    await this.renew();
    await this.acquire();
    this.handOff();
  }

  private async renew(): Promise<void> {
    const held = [...this.heldSlots.values()];
    if (held.length === 0) return;
    const sentAt = this.now();
    const renewed = await this.rows.renew(this.membership, held, this.options.db.leaseMs);
    for (const h of held) {
      if (this.heldSlots.get(h.slot) !== h) continue;
      if (renewed.has(h.slot)) h.serveUntil = Math.max(h.serveUntil, this.serveUntil(sentAt));
      else this.lose(h, 'taken');
    }
  }

  private async acquire(): Promise<void> {
    const wanted = this.assignment.wonBy(this.node, this.liveNodes).filter((slot) => !this.heldSlots.has(slot));
    if (wanted.length === 0) return;
    const sentAt = this.now();
    // stop() waits for this tick, then releases whatever it acquired.
    const acquired = await this.rows.acquire(this.membership, wanted, this.options.db.leaseMs);
    for (const lease of acquired) {
      this.heldSlots.set(lease.slot, { ...lease, serveUntil: this.serveUntil(sentAt), releasing: false });
      this.options.onAcquired?.(lease.slot, lease.epoch);
    }
  }

  /** Starts handing over a few slots another live node wins, unless a hand-off is still in flight (it never blocks a tick). */
  private handOff(): void {
    if (this.handingOff !== undefined) return;
    const owners = this.assignment.over(this.liveNodes);
    const give = [...this.heldSlots.values()].filter((h) => owners[h.slot] !== this.node).slice(0, this.releasePerTick);
    if (give.length === 0) return;
    for (const h of give) h.releasing = true;
    this.handingOff = (async () => {
      await Promise.all(give.map((h) => this.options.drain?.(h.slot, h.epoch)));
      await this.rows.release(this.membership, give);
      for (const h of give) if (this.heldSlots.get(h.slot) === h) this.lose(h, 'released');
    })()
      .catch((error: unknown) => {
        // Not released: serve again and retry on a later tick (the epoch fence still guards every commit).
        for (const h of give) h.releasing = false;
        this.options.onError?.(error);
      })
      .finally(() => {
        this.handingOff = undefined;
      });
  }

  private supersede(): void {
    this.halt();
    for (const held of [...this.heldSlots.values()]) this.lose(held, 'superseded');
    this.options.onSuperseded?.();
  }

  private lose(held: Held, reason: LostReason): void {
    this.heldSlots.delete(held.slot);
    this.options.onLost?.(held.slot, held.epoch, reason);
  }

  private serveUntil(sentAt: number): number {
    return sentAt + this.options.db.leaseMs - this.tickMs;
  }
}
