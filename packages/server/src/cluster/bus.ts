/**
 * The cluster bus on core NATS (not JetStream): it moves requests and hints,
 * never truth. A lost message costs latency, never a message: the store has the
 * log, the client resends with the same cmid and dseq, and the push filter fills
 * gaps from the store.
 *
 * - Forwarding: a send for a conversation goes to `<prefix>.own.<slot>`, where
 *   the slot's holder listens in a queue group. "No responders" (nobody holds
 *   the slot right now) answers `unavailable` at once; so does a timeout.
 * - Pushes: published on `<prefix>.u.<user>`; a node subscribes to a user while
 *   it has at least one of that user's connections (interest routing, no
 *   presence table to go stale).
 * - Reconnect: the client library re-sends every subscription before anything
 *   else; the bus then waits for a round trip (so the server has them all) and
 *   only then reports `resync`, so a gateway's clients that resync from the
 *   store cannot miss a push published after it.
 */
import { connect, ErrorCode, Events, headers, type Msg, type NatsConnection, NatsError, type Status, type Subscription } from 'nats';
import { type Subjects, subjects } from './subjects.js';

export const DEFAULT_FORWARD_TIMEOUT_MS = 5000;
/** Header of a reply that carries no answer because the owner's handler failed. */
const FAILED_HEADER = 'Sequent-Unavailable';

export type UnavailableCause = 'no-responders' | 'timeout' | 'owner-error' | 'closed';
export type ForwardResult = { ok: true; reply: Uint8Array } | { ok: false; error: 'unavailable'; cause: UnavailableCause };

export type SlotHandler = (request: Uint8Array, slot: number) => Uint8Array | Promise<Uint8Array>;

export interface ClusterBusOptions {
  /** NATS server URL(s). */
  servers: string | string[];
  /** Subject prefix (see subjects.ts; default for serve: `sequent.<database name>`). */
  prefix: string;
  /** This node's name, as the NATS connection name. */
  name?: string;
  /** A user's push (the gateway hands it to that user's local connections). */
  onPush?: (user: string, payload: Uint8Array) => void;
  /** After a reconnect, once every subscription is back at the server: tell clients to resync. */
  onResync?: () => void;
  onDisconnect?: () => void;
  /** A handler's failure or a bus error (the bus keeps running). */
  onError?: (error: unknown) => void;
  /** Wait between reconnect attempts (default 250 ms; the client adds jitter). */
  reconnectTimeWaitMs?: number;
  /** PING interval to notice a half-open connection (default 5 s, two missed PONGs end it). */
  pingIntervalMs?: number;
}

export class ClusterBus {
  readonly subjects: Subjects;
  private readonly owned = new Map<number, Subscription>();
  private readonly interest = new Map<string, { count: number; sub: Subscription }>();
  private closed = false;
  private readonly statuses: AsyncIterable<Status>;
  private readonly watching: Promise<void>;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: ClusterBusOptions,
  ) {
    this.subjects = subjects(options.prefix);
    this.statuses = nc.status();
    this.watching = this.watchStatus();
  }

  static async connect(options: ClusterBusOptions): Promise<ClusterBus> {
    subjects(options.prefix); // a bad prefix fails before connecting
    const nc = await connect({
      servers: options.servers,
      name: options.name,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? 250,
      pingInterval: options.pingIntervalMs ?? 5000,
      maxPingOut: 2,
      // every address is given; servers a NATS cluster gossips are not ours to pick
      ignoreClusterUpdates: true,
      // A node delivers its own pushes to its own connections directly: the server need not send them back.
      noEcho: true,
      // An Error built per request for its async stack trace cost 5% of a node's CPU in bench:cluster.
      noAsyncTraces: true,
    });
    return new ClusterBus(nc, options);
  }

  get prefix(): string {
    return this.options.prefix;
  }

  // --- ownership: requests for a slot's holder ---

  /** Answers requests for `slot` (call when the slot is acquired). Idempotent. */
  serveSlot(slot: number, handler: SlotHandler): void {
    if (this.closed || this.owned.has(slot)) return;
    const sub = this.nc.subscribe(this.subjects.own(slot), {
      queue: this.subjects.owners,
      callback: (error, msg) => {
        if (error !== null) {
          this.options.onError?.(error);
          return;
        }
        void this.answer(msg, slot, handler);
      },
    });
    this.owned.set(slot, sub);
  }

  /** Stops answering for `slot` (call when it is lost or handed over). Requests in flight are still answered. */
  unserveSlot(slot: number): void {
    const sub = this.owned.get(slot);
    if (sub === undefined) return;
    this.owned.delete(slot);
    sub.unsubscribe();
  }

  servedSlots(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /** Sends `request` to the holder of `slot`; never throws. */
  async forward(slot: number, request: Uint8Array, timeoutMs = DEFAULT_FORWARD_TIMEOUT_MS): Promise<ForwardResult> {
    if (this.closed) return { ok: false, error: 'unavailable', cause: 'closed' };
    try {
      const msg = await this.nc.request(this.subjects.own(slot), request, { timeout: timeoutMs });
      if (msg.headers?.get(FAILED_HEADER)) return { ok: false, error: 'unavailable', cause: 'owner-error' };
      return { ok: true, reply: msg.data };
    } catch (error) {
      return { ok: false, error: 'unavailable', cause: causeOf(error) };
    }
  }

  private async answer(msg: Msg, slot: number, handler: SlotHandler): Promise<void> {
    try {
      msg.respond(await handler(msg.data, slot));
    } catch (error) {
      this.options.onError?.(error);
      const h = headers();
      h.set(FAILED_HEADER, 'handler');
      msg.respond(new Uint8Array(0), { headers: h });
    }
  }

  // --- pushes: per-user interest ---

  /** One more local connection of `user`: the first one subscribes to the user's pushes. */
  addUser(user: string): void {
    if (this.closed) return;
    const held = this.interest.get(user);
    if (held !== undefined) {
      held.count++;
      return;
    }
    const sub = this.nc.subscribe(this.subjects.user(user), {
      callback: (error, msg) => {
        if (error !== null) this.options.onError?.(error);
        else this.options.onPush?.(user, msg.data);
      },
    });
    this.interest.set(user, { count: 1, sub });
  }

  /** One local connection of `user` fewer: the last one unsubscribes. */
  removeUser(user: string): void {
    const held = this.interest.get(user);
    if (held === undefined) return;
    if (--held.count > 0) return;
    this.interest.delete(user);
    held.sub.unsubscribe();
  }

  /** Users this node has interest in now. */
  users(): string[] {
    return [...this.interest.keys()];
  }

  /** A push hint for every node where `user` is connected; fire and forget. */
  publish(user: string, payload: Uint8Array): void {
    if (this.closed) return;
    this.nc.publish(this.subjects.user(user), payload);
  }

  /** Resolves once the server has seen everything sent so far (subscriptions included). */
  flush(): Promise<void> {
    return this.nc.flush();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.nc.drain().catch(() => this.nc.close());
    // Closing the connection does not end its status iterators (nats.js 2.29); the iterator can be stopped.
    (this.statuses as Partial<{ stop(): void }>).stop?.();
    await this.watching;
  }

  private async watchStatus(): Promise<void> {
    for await (const status of this.statuses) {
      if (status.type === Events.Disconnect) this.options.onDisconnect?.();
      if (status.type === Events.Reconnect) {
        // the subscriptions went out first on the new connection; a round trip proves the server has them
        try {
          await this.nc.flush();
        } catch (error) {
          this.options.onError?.(error);
          continue;
        }
        if (!this.closed) this.options.onResync?.();
      }
    }
  }
}

function causeOf(error: unknown): UnavailableCause {
  if (error instanceof NatsError) {
    if (error.code === ErrorCode.NoResponders) return 'no-responders';
    if (error.code === ErrorCode.Timeout) return 'timeout';
    if (error.code === ErrorCode.ConnectionClosed || error.code === ErrorCode.ConnectionDraining) return 'closed';
  }
  return 'timeout';
}
