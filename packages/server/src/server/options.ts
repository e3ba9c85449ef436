/**
 * Server options: defaults in one place, validated and frozen at start so that
 * a bad setting fails the start, never the traffic.
 */
import type { Logger } from 'pino';
import { DEFAULT_HOLD_MS, DEFAULT_MAX_BODY, DEFAULT_MAX_FRAME, HELLO_TIMEOUT_MS } from 'sequent-client/protocol';
import type { Store } from '../store/index.js';
import type { IdSources } from './ids.js';
// Neither loads a driver or the bus client: membership.ts imports pg's types only, subjects.ts nothing.
import { checkNodeName } from '../cluster/membership.js';
import { checkPrefix } from '../cluster/subjects.js';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;
export const DEFAULT_METRICS_HOST = '127.0.0.1';
/** Past this many bytes waiting in a connection's send buffer, the client is too slow: close 4429. */
export const DEFAULT_MAX_BUFFERED = 8 * 1024 * 1024;
export const DEFAULT_PING_INTERVAL_MS = 30_000;
/** Frames a connection may send per second, and the burst it may save up. */
export const DEFAULT_RATE_PER_SECOND = 5000;
export const DEFAULT_RATE_BURST = 10_000;
/** Bad frames (not JSON objects, too large) a connection may send before it is closed with 4400. */
export const DEFAULT_MAX_BAD_FRAMES = 20;
/** A device may have at most this many sends held back waiting for a missing dseq, across all its conversations… */
export const DEFAULT_MAX_HELD_PER_DEVICE = 1000;
/** …and at most this many bytes of them (bodies and ctx); a user at most DEFAULT_MAX_HELD_BYTES_PER_USER over all its devices. */
export const DEFAULT_MAX_HELD_BYTES_PER_DEVICE = 8 * 1024 * 1024;
export const DEFAULT_MAX_HELD_BYTES_PER_USER = 32 * 1024 * 1024;
/** Connections one user may have open at once, over all its devices; one more is closed with 4430. */
export const DEFAULT_MAX_CONNECTIONS_PER_USER = 64;
/** Connections from one remote address (0: no cap, for a proxy in front that hides client addresses). */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 1000;
/** The most bytes of entries one sync reply carries; it always carries at least one entry. */
export const DEFAULT_MAX_SYNC_BYTES = 1024 * 1024;
/** Reads (sync, convs) one connection may have waiting for the store; one more is rate_limited. */
export const DEFAULT_MAX_PENDING_READS = 8;
/** Rows in one convs reply: the caller's most recently active conversations. */
export const DEFAULT_MAX_CONVS = 1000;
/** Most entries one group commit writes; the rest wait for the next. */
export const DEFAULT_MAX_BATCH = 2000;

export interface ServerOptions {
  host?: string;
  port?: number;
  /** Serve /metrics (Prometheus) on this port of metricsHost, apart from the public port; unset: no /metrics at all. 0: any free port. */
  metricsPort?: number;
  /** Where the metrics port listens; default 127.0.0.1 (loopback: only this machine can scrape). */
  metricsHost?: string;
  /** Directory of the embedded SQLite database and the generated token secret. */
  dataDir: string;
  /** HS256 token secret; default: env SEQUENT_SECRET, else generated once and kept in dataDir. */
  secret?: string;
  holdMs?: number;
  maxFrame?: number;
  maxBody?: number;
  maxBuffered?: number;
  helloTimeoutMs?: number;
  pingIntervalMs?: number;
  ratePerSecond?: number;
  rateBurst?: number;
  maxBadFrames?: number;
  maxHeldPerDevice?: number;
  maxHeldBytesPerDevice?: number;
  maxHeldBytesPerUser?: number;
  maxConnectionsPerUser?: number;
  maxConnectionsPerAddress?: number;
  maxSyncBytes?: number;
  maxPendingReads?: number;
  maxConvs?: number;
  maxBatch?: number;
  /** SQLite durability: 'full' fsyncs every commit (survives power loss), 'process' survives a process crash. */
  durability?: 'full' | 'process';
  /** Serve wss:// and https:// with this certificate chain and private key (PEM), instead of ws:// and http://. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Use this store instead of the embedded SQLite one (the server closes it on close()). */
  store?: Store;
  /** Keep the log (and the id leases) in this PostgreSQL database instead of the embedded SQLite file. */
  postgresUrl?: string;
  /** Use these timestamps and mids instead of the ones kept in dataDir (the server closes them on close()). */
  ids?: IdSources;
  /** Serve the web chat (built into this package's web/ folder) at `/`. Default false; `serve` turns it on. */
  web?: boolean;
  /** With web: POST /demo/token mints a token for any user name. Local use only; default false. */
  demo?: boolean;
  /** Run as one node of a cluster sharing `postgresUrl` (required) and a NATS server (docs/cluster.md). */
  cluster?: ClusterOptions;
  logger?: Logger;
}

export interface ClusterOptions {
  /** NATS server URL, nats://host:port. */
  natsUrl: string;
  /** This node's name, unique in the cluster: a restart under the same name takes its slots back at once. */
  node: string;
  /** The slot lease, ms (default DEFAULT_LEASE_MS): a dead node's conversations move after about this long. */
  leaseMs?: number;
  /** Slot count of a new cluster database (default 1024); must match the stored one. */
  slots?: number;
  /** NATS subject prefix (default `sequent.<database name>`). */
  prefix?: string;
}

/** A node that stops heartbeating loses its slots this long after its last renewal. */
export const DEFAULT_LEASE_MS = 3000;

export interface ResolvedCluster {
  readonly natsUrl: string;
  readonly node: string;
  readonly leaseMs: number;
  readonly slots: number | undefined;
  readonly prefix: string | undefined;
}

export interface ResolvedOptions {
  readonly host: string;
  readonly port: number;
  readonly metricsPort: number | undefined;
  readonly metricsHost: string;
  readonly dataDir: string;
  readonly secret: string | undefined;
  readonly holdMs: number;
  readonly maxFrame: number;
  readonly maxBody: number;
  readonly maxBuffered: number;
  readonly helloTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly ratePerSecond: number;
  readonly rateBurst: number;
  readonly maxBadFrames: number;
  readonly maxHeldPerDevice: number;
  readonly maxHeldBytesPerDevice: number;
  readonly maxHeldBytesPerUser: number;
  readonly maxConnectionsPerUser: number;
  readonly maxConnectionsPerAddress: number;
  readonly maxSyncBytes: number;
  readonly maxPendingReads: number;
  readonly maxConvs: number;
  readonly maxBatch: number;
  readonly durability: 'full' | 'process';
  readonly postgresUrl: string | undefined;
  readonly tls: { readonly cert: string | Buffer; readonly key: string | Buffer } | undefined;
  readonly web: boolean;
  readonly demo: boolean;
  readonly cluster: ResolvedCluster | undefined;
}

export class OptionError extends Error {
  constructor(
    readonly option: string,
    /** What is wrong with the value, without the option's name (a CLI names its own flag). */
    readonly problem: string,
  ) {
    super(`invalid option ${option}: ${problem}`);
    this.name = 'OptionError';
  }
}

function integer(name: string, value: number | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new OptionError(name, `expected an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function flag(name: string, value: boolean | undefined): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new OptionError(name, `expected true or false, got ${String(value)}`);
  return value;
}

function postgresUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^postgres(ql)?:\/\//.test(value)) {
    throw new OptionError('postgresUrl', `expected a postgres:// URL, got ${JSON.stringify(value)}`);
  }
  return value;
}

function tlsOption(value: ServerOptions['tls']): ResolvedOptions['tls'] {
  if (value === undefined) return undefined;
  const pem = (part: unknown) => (typeof part === 'string' || Buffer.isBuffer(part)) && part.length > 0;
  if (!pem(value.cert) || !pem(value.key)) throw new OptionError('tls', 'expected { cert, key }, each a PEM string or Buffer');
  return Object.freeze({ cert: value.cert, key: value.key });
}

/** A check of the cluster layer's, as an option error naming the option. */
function checked(name: string, value: unknown, check: (value: string) => void): string {
  if (typeof value !== 'string') throw new OptionError(name, `expected a string, got ${JSON.stringify(value)}`);
  try {
    check(value);
  } catch (error) {
    throw new OptionError(name, error instanceof Error ? error.message : String(error));
  }
  return value;
}

function clusterOption(value: ClusterOptions | undefined, postgres: string | undefined, hasStore: boolean): ResolvedCluster | undefined {
  if (value === undefined) return undefined;
  if (postgres === undefined || hasStore) throw new OptionError('postgresUrl', 'a cluster node keeps its log in the PostgreSQL database every node shares: give its URL (and no store of its own)');
  if (typeof value.natsUrl !== 'string' || !/^(nats|tls):\/\/[^/\s]+$/.test(value.natsUrl)) {
    throw new OptionError('natsUrl', `expected a nats://host:port URL, got ${JSON.stringify(value.natsUrl)}`);
  }
  return Object.freeze({
    natsUrl: value.natsUrl,
    node: checked('node', value.node, checkNodeName),
    leaseMs: integer('leaseMs', value.leaseMs, DEFAULT_LEASE_MS, 100, 600_000),
    slots: value.slots === undefined ? undefined : integer('slots', value.slots, 0, 1, 1 << 16),
    prefix: value.prefix === undefined ? undefined : checked('prefix', value.prefix, checkPrefix),
  });
}

export function resolveOptions(options: ServerOptions): ResolvedOptions {
  if (typeof options.dataDir !== 'string' || options.dataDir.length === 0) {
    throw new OptionError('dataDir', 'a directory path is required');
  }
  const host = options.host ?? DEFAULT_HOST;
  if (typeof host !== 'string' || host.length === 0) throw new OptionError('host', 'expected a host name or address');
  const metricsHost = options.metricsHost ?? DEFAULT_METRICS_HOST;
  if (typeof metricsHost !== 'string' || metricsHost.length === 0) throw new OptionError('metricsHost', 'expected a host name or address');
  const durability = options.durability ?? 'full';
  if (durability !== 'full' && durability !== 'process') {
    throw new OptionError('durability', `expected "full" or "process", got ${String(durability)}`);
  }
  const secret = options.secret ?? (process.env['SEQUENT_SECRET'] || undefined);
  if (secret !== undefined && secret.length < 32) {
    throw new OptionError('secret', 'must be at least 32 characters');
  }
  const web = flag('web', options.web);
  const demo = flag('demo', options.demo);
  if (demo && !web) throw new OptionError('demo', 'the demo sign-in is part of the web app: set web too');
  const maxFrame = integer('maxFrame', options.maxFrame, DEFAULT_MAX_FRAME, 1024, 64 * 1024 * 1024);
  const maxBuffered = integer('maxBuffered', options.maxBuffered, DEFAULT_MAX_BUFFERED, 1024);
  const postgres = postgresUrl(options.postgresUrl);
  return Object.freeze({
    host,
    port: integer('port', options.port, DEFAULT_PORT, 0, 65535),
    metricsPort: options.metricsPort === undefined ? undefined : integer('metricsPort', options.metricsPort, 0, 0, 65535),
    metricsHost,
    dataDir: options.dataDir,
    secret,
    holdMs: integer('holdMs', options.holdMs, DEFAULT_HOLD_MS, 0, 600_000),
    maxFrame,
    maxBody: integer('maxBody', options.maxBody, Math.min(DEFAULT_MAX_BODY, maxFrame), 1, maxFrame),
    maxBuffered,
    helloTimeoutMs: integer('helloTimeoutMs', options.helloTimeoutMs, HELLO_TIMEOUT_MS, 1),
    pingIntervalMs: integer('pingIntervalMs', options.pingIntervalMs, DEFAULT_PING_INTERVAL_MS, 10),
    ratePerSecond: integer('ratePerSecond', options.ratePerSecond, DEFAULT_RATE_PER_SECOND, 1),
    rateBurst: integer('rateBurst', options.rateBurst, DEFAULT_RATE_BURST, 1),
    postgresUrl: postgres,
    maxBadFrames: integer('maxBadFrames', options.maxBadFrames, DEFAULT_MAX_BAD_FRAMES, 1),
    maxHeldPerDevice: integer('maxHeldPerDevice', options.maxHeldPerDevice, DEFAULT_MAX_HELD_PER_DEVICE, 1),
    maxHeldBytesPerDevice: integer('maxHeldBytesPerDevice', options.maxHeldBytesPerDevice, DEFAULT_MAX_HELD_BYTES_PER_DEVICE, 1),
    maxHeldBytesPerUser: integer('maxHeldBytesPerUser', options.maxHeldBytesPerUser, DEFAULT_MAX_HELD_BYTES_PER_USER, 1),
    maxConnectionsPerUser: integer('maxConnectionsPerUser', options.maxConnectionsPerUser, DEFAULT_MAX_CONNECTIONS_PER_USER, 1),
    maxConnectionsPerAddress: integer('maxConnectionsPerAddress', options.maxConnectionsPerAddress, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, 0),
    // A reply larger than the send buffer could never be sent: the client would be cut as slow.
    maxSyncBytes: integer('maxSyncBytes', options.maxSyncBytes, Math.min(DEFAULT_MAX_SYNC_BYTES, Math.floor(maxBuffered / 2)), 1, Math.floor(maxBuffered / 2)),
    maxPendingReads: integer('maxPendingReads', options.maxPendingReads, DEFAULT_MAX_PENDING_READS, 1),
    maxConvs: integer('maxConvs', options.maxConvs, DEFAULT_MAX_CONVS, 1),
    maxBatch: integer('maxBatch', options.maxBatch, DEFAULT_MAX_BATCH, 1),
    durability,
    tls: tlsOption(options.tls),
    web,
    demo,
    cluster: clusterOption(options.cluster, postgres, options.store !== undefined),
  });
}
