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
import { SlotRows } from './slot-rows.js';
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
  /** Live nodes as of this node's last heartbeat. */
  live: readonly string[];
  slots: number;
  /** Slots this node holds now. */
  held: number[];
  /** How many slots each node holds, from the lease rows (unexpired leases only). */
  holders: Record<string, number>;
  /** With `?conv=ID`: that conversation's slot and its lease row. */
  conv?: { conv: string; slot: number; holder: string | null; epoch: number };
}

export class ClusterNode implements Ownership, SlotHolder {
  private leases: SlotLeases | undefined;
  private readonly rows: SlotRows;
  /** False from a bus disconnect until the bus is back with every subscription. */
  private busUp = true;

  private constructor(
    private readonly options: ClusterNodeOptions,
    private readonly db: ClusterDb,
    readonly bus: ClusterBus,
  ) {
    this.rows = new SlotRows(db.pool, db.tables);
  }

  /** Opens the lease tables (creating them on a new database) and the bus; nothing is held yet. */
  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    const db = await openClusterDb({ url: options.postgresUrl, leaseMs: options.leaseMs, ...(options.slots === undefined ? {} : { slots: options.slots }) });
    let bus: ClusterBus;
    let node: ClusterNode | undefined;
    try {
      bus = await ClusterBus.connect({
        servers: options.natsUrl,
        prefix: options.prefix ?? defaultPrefix(options.postgresUrl),
        name: options.node,
        onPush: (user, payload) => options.onPush(user, payload),
        onResync: () => {
          if (node) node.busUp = true;
          options.onResync();
        },
        onDisconnect: () => {
          if (node) node.busUp = false;
        },
        onError: (error) => options.onError(error, 'bus'),
      });
    } catch (error) {
      await db.close();
      throw new BusUnreachableError(options.natsUrl, error);
    }
    node = new ClusterNode(options, db, bus);
    return node;
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

  /** Why this node should not get traffic now (the bus is away, or PostgreSQL has not answered a tick for a lease), or undefined. */
  unhealthy(): string | undefined {
    if (!this.busUp) return 'the NATS connection is down';
    const age = this.leases?.lastTickAgeMs();
    if (age === undefined || age > this.db.leaseMs) return 'PostgreSQL has not answered a lease tick within the lease';
    return undefined;
  }

  /** This node's view, and the lease rows' (one query); with `conv`, where that conversation is decided. */
  async status(conv?: string): Promise<ClusterStatus> {
    const rows = await this.rows.all();
    const holders: Record<string, number> = {};
    for (const row of rows) if (row.live) holders[row.holder] = (holders[row.holder] ?? 0) + 1;
    const status: ClusterStatus = {
      node: this.options.node,
      incarnation: this.leases?.incarnation ?? '',
      live: this.leases?.live() ?? [],
      slots: this.db.slots,
      held: this.leases?.held().map((h) => h.slot) ?? [],
      holders,
    };
    if (conv !== undefined) {
      const slot = slotOf(conv, this.db.slots);
      const row = rows.find((r) => r.slot === slot);
      status.conv = { conv, slot, holder: row?.live ? row.holder : null, epoch: row?.epoch ?? 0 };
    }
    return status;
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
