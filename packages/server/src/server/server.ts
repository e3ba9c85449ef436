/**
 * `startServer`: wires gateway → ingest → sequencer → store → delivery, and
 * drains on close: refuse new work, commit and ack what is in flight, then
 * close every connection with "going away".
 */
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { CLOSE_CODES } from 'sequent-client/protocol';
import type { Store } from '../store/index.js';
import { TokenAuthority, resolveSecret } from './auth.js';
import { prepareDataDir, privateDatabaseFile } from './data-dir.js';
import { LocalDelivery, Presence, type Delivery } from './delivery.js';
import { FrameFlusher } from './turn-frames.js';
import { Gateway, WS_PATH } from './gateway.js';
import { Groups } from './groups.js';
import { openIdSources } from './ids.js';
import { Ingest } from './ingest.js';
import { ConversationOwner, type ConvState } from './owner.js';
import { ServerMetrics } from './metrics.js';
import { listenForMetrics, type MetricsListener } from './metrics-listener.js';
import { resolveOptions, type ServerOptions } from './options.js';
import { Reads } from './reads.js';
import { Sequencer } from './sequencer.js';
import type { Session } from './session.js';
import { mountWeb } from './web.js';
import { ChatState } from './chat-state.js';
import { decidedHere, type OwnerRequests } from './owner-requests.js';
import { StoreConvViews, type ConvViews } from './conv-view.js';
import type { ClusterParts } from './cluster-parts.js';
import { commitPoolConfig } from '../cluster/pg-session.js';

export interface RunningServer {
  readonly port: number;
  /** ws://host:port/v1/ws (wss:// with TLS) */
  readonly url: string;
  /** http://host:port (https:// with TLS): /healthz */
  readonly httpUrl: string;
  /** http://host:port/, the web chat, when web is on */
  readonly webUrl: string | undefined;
  /** http://metricsHost:metricsPort/metrics, when metricsPort was given */
  readonly metricsUrl: string | undefined;
  mintToken(user: string, device: string, ttlSeconds?: number): Promise<string>;
  /** Drains and stops; resolves when every connection is closed and the store is closed. */
  close(): Promise<void>;
  /** Resolves (with why) if the server stopped on its own: a cluster node superseded by a process under its name. */
  readonly stopped: Promise<string>;
}

/** How long a drain waits for in-flight commits before it closes connections anyway. */
const DRAIN_TIMEOUT_MS = 10_000;
/**
 * How long a drain waits for clients to answer its close frames before it drops their sockets
 * (the close frame, already written, still reaches them). Thousands of busy clients answer slowly,
 * and every moment of the drain is one in which no server listens on the port.
 */
const DRAIN_CLOSE_GRACE_MS = 100;
/**
 * The accept queue: Node's default of 511 overflows in a reconnect storm (tens of thousands of
 * clients within seconds), and a dropped SYN is retried by the client's kernel only after 1 s, 3 s, 7 s.
 * Linux caps this at net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096;

/** Loaded on demand, so a server on another store never loads the native SQLite module. */
async function openEmbeddedStore(path: string, durability: 'full' | 'process'): Promise<Store> {
  privateDatabaseFile(path);
  const { openSqliteStore } = await import('../store/sqlite.js');
  return openSqliteStore({ path, durability });
}

/** Whether a conversation's state was loaded under `slot`'s lease (cluster mode). */
const inSlot = (slot: number) => (state: ConvState): boolean => state.fence?.slot === slot;

export async function startServer(input: ServerOptions): Promise<RunningServer> {
  const options = resolveOptions(input);
  const logger: Logger = input.logger ?? pino({ level: 'silent' });
  prepareDataDir(options.dataDir, logger);
  const tokens = new TokenAuthority(resolveSecret(options.dataDir, options.secret));
  const store: Store =
    input.store ??
    (options.postgresUrl
      ? (await import('../store/postgres.js')).openPostgresStore({
          url: options.postgresUrl,
          ...(options.cluster ? { poolConfig: commitPoolConfig(options.cluster.leaseMs) } : {}),
        })
      : await openEmbeddedStore(join(options.dataDir, 'sequent.db'), options.durability));
  await store.init();
  const ids = input.ids ?? (await openIdSources(options.dataDir, logger, options.postgresUrl));
  const metrics = new ServerMetrics(input.logger !== undefined);

  let cluster: ClusterParts | undefined;
  if (options.cluster) {
    try {
      // Loaded on demand: a single node never loads the bus client.
      const { openClusterParts } = await import('./cluster-parts.js');
      cluster = await openClusterParts(options.postgresUrl!, options.cluster, logger, metrics);
    } catch (error) {
      await ids.close();
      await store.close();
      throw error;
    }
  }

  // A conversation's ts never goes below its newest entry's, whatever this machine's clock says.
  const conversations = new ConversationOwner(store, 100_000, (state) => ids.clock.observe(state.lastTs), cluster?.node);
  const presence = new Presence<Session>(cluster?.presenceWatch);
  // A cluster node answers reads of conversations other nodes own: from the store, not from memory.
  const views: ConvViews = cluster ? new StoreConvViews(store) : conversations;
  const delivery: Delivery = cluster ? cluster.delivery(presence, store, views) : new LocalDelivery(presence, metrics);
  const flusher = new FrameFlusher();
  const sequencer = new Sequencer(store, conversations, ids.clock, ids.mids, options.maxBatch, metrics, logger, (batch) =>
    delivery.entries(batch),
  );
  const ingest = new Ingest(store, conversations, sequencer, metrics, options);
  const groups = new Groups(conversations, sequencer);
  const reads = new Reads(store, views, options);
  const chat = new ChatState(store, conversations, views, delivery);
  const ownedHere = decidedHere(ingest, groups, chat);
  const owner: OwnerRequests<Session> = cluster ? cluster.routing(ownedHere, options.holdMs) : ownedHere;
  const gateway = new Gateway(options, tokens, { owner, reads, presence, chat }, flusher, metrics, logger, cluster?.node);
  if (options.web) mountWeb(gateway.http, { demo: options.demo ? tokens : undefined, logger });

  let stoppedBy: (reason: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (stoppedBy = resolve));
  if (cluster) {
    cluster.onResync(() => {
      // Pushes sent while the bus was away are lost for this node's connections: their clients reconnect and sync.
      for (const session of gateway.openSessions()) session.close(CLOSE_CODES.going_away.code, 'cluster bus reconnected: reconnect and sync');
    });
    try {
      await cluster.start({
        local: ownedHere,
        store,
        owner: conversations,
        delivery,
        holdMs: options.holdMs,
        drain: async (slot) => {
          const moving = [...conversations.cached()].filter(inSlot(slot));
          ingest.releaseAllHeld(moving, 'the conversation is moving to another node; resend');
          // Only this slot's commits in flight, not the whole node's: under load the sequencer is never idle.
          const settled = Promise.all(moving.map((state) => state.untilDurable(state.last)));
          await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS).unref())]);
        },
        lost: (slot) => ingest.releaseAllHeld(conversations.dropWhere(inSlot(slot)), 'the conversation moved to another node; resend'),
        superseded: () => {
          logger.error({ node: options.cluster?.node }, 'another process joined under this node name: stopping');
          void close().then(() => stoppedBy('superseded'));
        },
      });
    } catch (error) {
      await cluster.stop().catch(() => {});
      await ids.close();
      await store.close();
      throw error;
    }
  }

  let closing: Promise<void> | undefined;
  let metricsListener: MetricsListener | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      gateway.http.once('error', reject);
      gateway.http.listen({ port: options.port, host: options.host, backlog: LISTEN_BACKLOG }, () => {
        gateway.http.off('error', reject);
        resolve();
      });
    });
    if (options.metricsPort !== undefined) {
      metricsListener = await listenForMetrics(metrics, options.metricsHost, options.metricsPort, () => gateway.serving);
    }
  } catch (error) {
    // Nothing was served: release what start opened so the caller can report and exit.
    gateway.stopAccepting();
    if (gateway.http.listening) await new Promise<void>((resolve) => gateway.http.close(() => resolve()));
    await cluster?.stop().catch(() => {});
    await ids.close();
    await store.close();
    throw error;
  }
  const port = (gateway.http.address() as AddressInfo).port;
  const hostForUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  const [ws, http] = options.tls ? ['wss', 'https'] : ['ws', 'http'];

  const close = async (): Promise<void> => (closing ??= drainAndClose());
  const drainAndClose = async (): Promise<void> => {
    gateway.stopAccepting();
    ingest.draining = true;
    groups.draining = true;
    ingest.releaseAllHeld(conversations.cached());
    const startedAt = performance.now();
    const drained = sequencer.idle();
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS).unref());
    await Promise.race([drained, timeout]);
    // A cluster node hands its slots over now: the other nodes take them at once instead of after the lease.
    await cluster?.stop().catch((error: unknown) => logger.error({ err: error }, 'leaving the cluster failed'));
    const settledAt = performance.now();
    // Acks were written in the commit callbacks; let them reach the sockets before closing.
    await new Promise((resolve) => setImmediate(resolve));
    const sessions = gateway.openSessions();
    for (const session of sessions) session.close(CLOSE_CODES.going_away.code, 'server shutting down');
    await new Promise<void>((resolve) => {
      gateway.http.close(() => resolve());
      gateway.http.closeAllConnections();
      setTimeout(() => {
        for (const session of gateway.openSessions()) session.terminate();
      }, DRAIN_CLOSE_GRACE_MS).unref();
    });
    const disconnectedAt = performance.now();
    await metricsListener?.close();
    await ids.close();
    await store.close();
    // Where a slow stop spent its time: a supervisor's kill timeout is sized from this.
    logger.info(
      { connections: sessions.length, settleMs: Math.round(settledAt - startedAt), disconnectMs: Math.round(disconnectedAt - settledAt), closeMs: Math.round(performance.now() - disconnectedAt) },
      'drained',
    );
  };

  return {
    port,
    url: `${ws}://${hostForUrl}:${port}${WS_PATH}`,
    httpUrl: `${http}://${hostForUrl}:${port}`,
    webUrl: options.web ? `${http}://${hostForUrl}:${port}/` : undefined,
    metricsUrl: metricsListener?.url,
    mintToken: (user, device, ttlSeconds) => tokens.mint(user, device, ttlSeconds),
    close,
    stopped,
  };
}
