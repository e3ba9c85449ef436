/**
 * The cluster's pieces as the server wires them: the node (lease tables, bus,
 * slot leases), delivery over the bus, routing of owner requests, and the
 * answering of forwarded ones. Kept apart from server.ts, which loads it only
 * in cluster mode.
 */
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import { ClusterDelivery } from '../cluster/cluster-delivery.js';
import { ClusterNode } from '../cluster/node.js';
import { answerForwarded, ClusterRouting } from '../cluster/routing.js';
import { TakeoverHeads } from '../cluster/takeover-heads.js';
import type { ConversationOwner } from './owner.js';
import type { ConvViews } from './conv-view.js';
import type { Delivery, Presence } from './delivery.js';
import type { ServerMetrics } from './metrics.js';
import type { ResolvedCluster } from './options.js';
import type { OwnerRequests } from './owner-requests.js';
import type { Session } from './session.js';

/** A forwarded request waits at least this long for its owner's answer, and longer than a send may be held back. */
const MIN_FORWARD_TIMEOUT_MS = 5000;

export interface ClusterStartHooks {
  /** This node's own owner requests, which answer what other nodes forward. */
  local: OwnerRequests;
  /** For pushing the heads of slots taken over (takeover-heads.ts). */
  store: Store;
  owner: ConversationOwner;
  delivery: Delivery;
  holdMs: number;
  drain(slot: number): Promise<void>;
  lost(slot: number): void;
  superseded(): void;
}

export interface ClusterParts {
  readonly node: ClusterNode;
  /** Follows joins and leaves of this node's connections (bus interest, push filters). */
  readonly presenceWatch: { joined(connection: Session): void; left(connection: Session): void };
  /** `views`: who may read what, from the store (a push gap is filled only with what the user may read). */
  delivery(presence: Presence<Session>, store: Store, views: ConvViews): Delivery;
  routing(local: OwnerRequests, holdMs: number): OwnerRequests<Session>;
  onResync(handler: () => void): void;
  /** Takes this node's slots; from then on it decides for their conversations and answers forwarded requests. */
  start(hooks: ClusterStartHooks): Promise<void>;
  /** Leaves the cluster: hands every slot over, then closes the bus and the lease tables. */
  stop(): Promise<void>;
}

export async function openClusterParts(postgresUrl: string, options: ResolvedCluster, logger: Logger, metrics: ServerMetrics): Promise<ClusterParts> {
  let delivery: ClusterDelivery<Session> | undefined;
  let heads: TakeoverHeads | undefined;
  let resync: () => void = () => {};
  const node = await ClusterNode.open({
    postgresUrl,
    natsUrl: options.natsUrl,
    node: options.node,
    leaseMs: options.leaseMs,
    ...(options.slots === undefined ? {} : { slots: options.slots }),
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    onPush: (user, payload) => {
      try {
        delivery?.fromBus(user, payload);
      } catch (error) {
        logger.error({ err: error }, 'a push from the bus could not be delivered');
      }
    },
    onResync: () => {
      logger.warn('cluster bus reconnected: this node’s connections are closed to resync');
      resync();
    },
    onError: (error, during) => logger.warn({ err: error, during }, 'cluster error'),
  });
  const forwardTimeout = (holdMs: number) => Math.max(MIN_FORWARD_TIMEOUT_MS, holdMs + 3000);
  return {
    node,
    presenceWatch: {
      joined: (connection) => delivery?.joined(connection),
      left: (connection) => delivery?.left(connection),
    },
    delivery(presence, store, views) {
      delivery = new ClusterDelivery<Session>({
        presence,
        bus: node.bus,
        store,
        views,
        tag: `${options.node}/${process.pid}/${Math.random().toString(36).slice(2)}`,
        metrics,
        onUnfilled: (conv, after, upTo, error) => logger.debug({ conv, after, upTo, err: error }, 'push gap left to the client'),
      });
      return delivery;
    },
    routing: (local, holdMs) =>
      new ClusterRouting(local, node.bus, node, node.slots, forwardTimeout(holdMs), {
        forwarded: () => metrics.forwarded.inc(),
        unanswered: (cause) => metrics.forwardUnanswered.inc({ cause }),
      }),
    onResync(handler) {
      resync = handler;
    },
    async stop() {
      // The heads' pushes end before the node gives its slots up.
      await heads?.stop();
      await node.stop();
    },
    async start(hooks) {
      heads = new TakeoverHeads({
        store: hooks.store,
        owner: hooks.owner,
        delivery: hooks.delivery,
        slots: node.slots,
        windowMs: Math.max(60_000, options.leaseMs * 10),
        limit: 1000,
        batchMs: 200,
        onError: (error) => logger.warn({ err: error }, 'pushing the heads of slots taken over failed'),
      });
      await node.start({
        handler: answerForwarded(hooks.local, node, (error) => logger.error({ err: error }, 'forwarded request failed')),
        drain: (slot) => hooks.drain(slot),
        acquired: (slot) => {
          heads?.acquired(slot);
          metrics.slotsAcquired.inc();
          metrics.slotsHeld.set(node.heldCount());
        },
        lost: (slot, reason) => {
          metrics.slotsLost.inc({ reason });
          metrics.slotsHeld.set(node.heldCount());
          hooks.lost(slot);
        },
        superseded: () => hooks.superseded(),
      });
      metrics.slotsHeld.set(node.heldCount());
    },
  };
}
