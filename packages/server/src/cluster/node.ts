/**
 * This process as a member of a cluster: its PostgreSQL lease tables, its bus
 * connection and its slot leases. It answers the two questions the server core
 * asks in cluster mode — may this node decide for a conversation now, and under
 * which lease does it commit (`Ownership`) — and tells the server when a slot
 * comes or goes, so the server can serve it on the bus or drop what it holds.
 */
import type { CommitFence } from '../store/index.js';
import type { Ownership } from '../server/owner.js';
import { ClusterBus, type SlotHandler } from './bus.js';
import { openClusterDb, type ClusterDb } from './db.js';
import { SlotLeases, type LostReason } from './leases.js';
import type { SlotHolder } from './routing.js';
import { slotOf } from './slots.js';
import { defaultPrefix } from './subjects.js';

export interface ClusterNodeOptions {
  postgresUrl: string;
  natsUrl: string;
  node: string;
  leaseMs: number;
  slots?: number;
  prefix?: string;
  onPush(user: string, payload: Uint8Array): void;
  /** The bus came back after a disconnect: pushes may have been missed meanwhile. */
  onResync(): void;
  onError(error: unknown, during: string): void;
}

export interface SlotHooks {
  /** Answers the requests other nodes forward for a slot this node holds. */
  handler: SlotHandler;
  /** Before a slot is handed over: stop deciding in it and wait for its commits in flight. */
  drain(slot: number): Promise<void>;
  /** The slot is this node's now (its requests are served on the bus already). */
  acquired?(slot: number): void;
  /** The slot is not this node's any more: forget what is held in it. */
  lost(slot: number, reason: LostReason): void;
  /** Another process joined under this node's name: this one must stop. */
  superseded(): void;
}

export interface ClusterStatus {
  node: string;
  incarnation: string;
  live: readonly string[];
  slots: number;
  held: number[];
}

export class ClusterNode implements Ownership, SlotHolder {
  private leases: SlotLeases | undefined;

  private constructor(
    private readonly options: ClusterNodeOptions,
    private readonly db: ClusterDb,
    readonly bus: ClusterBus,
  ) {}

  /** Opens the lease tables (creating them on a new database) and the bus; nothing is held yet. */
  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    const db = await openClusterDb({ url: options.postgresUrl, leaseMs: options.leaseMs, ...(options.slots === undefined ? {} : { slots: options.slots }) });
    let bus: ClusterBus;
    try {
      bus = await ClusterBus.connect({
        servers: options.natsUrl,
        prefix: options.prefix ?? defaultPrefix(options.postgresUrl),
        name: options.node,
        onPush: (user, payload) => options.onPush(user, payload),
        onResync: () => options.onResync(),
        onError: (error) => options.onError(error, 'bus'),
      });
    } catch (error) {
      await db.close();
      throw new BusUnreachableError(options.natsUrl, error);
    }
    return new ClusterNode(options, db, bus);
  }

  get slots(): number {
    return this.db.slots;
  }

  get name(): string {
    return this.options.node;
  }

  /** Joins the membership and takes the slots this node wins; from then on they are served on the bus. */
  async start(hooks: SlotHooks): Promise<void> {
    this.leases = await SlotLeases.start({
      db: this.db,
      node: this.options.node,
      drain: async (slot) => {
        this.bus.unserveSlot(slot);
        await hooks.drain(slot);
      },
      onAcquired: (slot) => {
        this.bus.serveSlot(slot, hooks.handler);
        hooks.acquired?.(slot);
      },
      onLost: (slot, _epoch, reason) => {
        this.bus.unserveSlot(slot);
        hooks.lost(slot, reason);
      },
      onSuperseded: () => hooks.superseded(),
      onError: (error) => this.options.onError(error, 'lease tick'),
    });
  }

  epochOf(slot: number): number | undefined {
    return this.leases?.epochOf(slot);
  }

  fenceOf(conv: string): CommitFence | undefined {
    const slot = slotOf(conv, this.db.slots);
    const epoch = this.epochOf(slot);
    return epoch === undefined ? undefined : { slot, epoch };
  }

  heldCount(): number {
    return this.leases?.held().length ?? 0;
  }

  status(): ClusterStatus {
    return {
      node: this.options.node,
      incarnation: this.leases?.incarnation ?? '',
      live: this.leases?.live() ?? [],
      slots: this.db.slots,
      held: this.leases?.held().map((h) => h.slot) ?? [],
    };
  }

  /** Leaves for good: hands every slot over (others take them at once, not after the lease), then closes the bus and the lease tables. */
  async stop(): Promise<void> {
    await this.leases?.stop();
    await this.bus.close();
    await this.db.close();
  }
}

export class BusUnreachableError extends Error {
  constructor(
    readonly url: string,
    override readonly cause: unknown,
  ) {
    super(`cannot connect to NATS at ${url}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'BusUnreachableError';
  }
}
