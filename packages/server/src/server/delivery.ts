/**
 * Getting what the core decided to the devices that should see it. `Presence`
 * knows who is online on this node; `Delivery` takes committed entries, read
 * pushes and typing to their recipients. Today's delivery is local fan-out over
 * Presence; in cluster mode a bus-backed one reaches users online elsewhere, and
 * the core calling it does not change.
 */
import { encodeMsgFrame } from 'sequent-client/protocol';
import type { ServerMetrics } from './metrics.js';
import type { Committed } from './sequencer.js';

/** A connection as delivery sees it: whose it is, and a way to queue a frame's JSON on it. */
export interface Connection {
  readonly connection: number;
  readonly user: string;
  readonly device: string;
  readonly closed: boolean;
  /** Queues the frame with the rest of this turn's frames (one socket write per turn). */
  sendText(text: string | Buffer): void;
}

/** Who is online on this node: each user's open, authenticated connections. */
export class Presence<C extends Connection = Connection> {
  private readonly online = new Map<string, Set<C>>();

  /** `watch` hears every join and leave (a cluster node follows its users' pushes on the bus). */
  constructor(private readonly watch?: { joined(connection: C): void; left(connection: C): void }) {}

  join(connection: C): void {
    this.watch?.joined(connection);
    let connections = this.online.get(connection.user);
    if (!connections) {
      connections = new Set();
      this.online.set(connection.user, connections);
    }
    connections.add(connection);
  }

  leave(connection: C): void {
    const connections = this.online.get(connection.user);
    if (!connections?.has(connection)) return;
    this.watch?.left(connection);
    connections.delete(connection);
    if (connections.size === 0) this.online.delete(connection.user);
  }

  /** The user's connections on this node, if any. */
  of(user: string): ReadonlySet<C> | undefined {
    return this.online.get(user);
  }
}

/**
 * Entries reach it only once durable and in seq order per conversation, so it
 * must keep that order per recipient connection: every connection sees one
 * conversation's pushes in strictly increasing seq.
 */
export interface Delivery {
  /** Each entry to its audience, except the connection that sent it (which gets the ack). */
  entries(batch: readonly Committed[]): void;
  /** `user`'s read position in `conv` is `seq` (a private one is shown only to the user's own devices): to every device of `to`. */
  read(to: readonly string[], conv: string, user: string, seq: number, isPublic: boolean): void;
  /** `user` is typing in `conv`: to every device of `to`. */
  typing(to: readonly string[], conv: string, user: string): void;
}

/** Delivery to the connections on this node; a frame shared by many connections is encoded once. */
export class LocalDelivery implements Delivery {
  constructor(
    private readonly presence: Presence,
    private readonly metrics: ServerMetrics,
  ) {}

  entries(batch: readonly Committed[]): void {
    for (const { entry, bodyJson, audience, originId } of batch) {
      let text: Buffer | undefined;
      for (const user of audience) {
        const connections = this.presence.of(user);
        if (!connections) continue;
        for (const connection of connections) {
          if (connection.connection === originId || connection.closed) continue;
          text ??= Buffer.from(encodeMsgFrame(entry, bodyJson));
          connection.sendText(text);
          this.metrics.pushes.inc();
        }
      }
    }
  }

  read(to: readonly string[], conv: string, user: string, seq: number, isPublic: boolean): void {
    this.pushText(to, JSON.stringify(isPublic ? { t: 'read', conv, user, seq } : { t: 'read', conv, user, seq, private: true }));
  }

  typing(to: readonly string[], conv: string, user: string): void {
    this.pushText(to, JSON.stringify({ t: 'typing', conv, user }));
  }

  /** One frame, already spelled, to every online device of the users. */
  private pushText(users: readonly string[], text: string): void {
    let bytes: Buffer | undefined;
    for (const user of users) {
      const connections = this.presence.of(user);
      if (!connections) continue;
      for (const connection of connections) {
        if (connection.closed) continue;
        bytes ??= Buffer.from(text);
        connection.sendText(bytes);
      }
    }
  }
}
