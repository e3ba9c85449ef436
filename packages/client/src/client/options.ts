/**
 * Client options: defaults in one place, validated and frozen at construction
 * so that a bad setting fails at once, not in the middle of traffic.
 */
import type { BackoffOptions } from './backoff.js';
import { SequentClientError } from './errors.js';
import type { ClientStore } from './store.js';
import type { Transport } from './transport.js';

export type DeliveryMode = 'ordered' | 'immediate';

export const DEFAULT_GAP_WAIT_MS = 1000;
export const DEFAULT_ACK_TIMEOUT_MS = 5000;
export const DEFAULT_SEND_DEADLINE_MS = 60_000;
export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({ baseMs: 500, maxMs: 15_000 });
export const DEFAULT_PING_INTERVAL_MS = 20_000;
export const DEFAULT_PING_TIMEOUT_MS = 10_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_SYNC_PAGE_SIZE = 200;
export const DEFAULT_SYNC_CONCURRENCY = 4;

/** Where log lines go; pino, console or nothing. The SDK never logs by itself. */
export interface ClientLogger {
  debug(object: Record<string, unknown>, message?: string): void;
  warn(object: Record<string, unknown>, message?: string): void;
}

export interface ClientOptions {
  /** The server's WebSocket URL, e.g. wss://chat.example.com/v1/ws */
  url: string;
  /** A fixed token. Give this or getToken. */
  token?: string;
  /** Called before every connection attempt with this store's device id; may fetch a fresh token. */
  getToken?: (device: string) => string | Promise<string>;
  /** Where the device id, outbox, dseq counters and cursors live. Default: in memory. */
  store?: ClientStore;
  /** Default: the global WebSocket. */
  transport?: Transport;
  /** 'ordered' delivers strictly in seq order; 'immediate' delivers at once with the entry's index. */
  delivery?: DeliveryMode;
  /** How long a gap in the received seqs may stay open before a sync fills it. */
  gapWaitMs?: number;
  /** How long to wait for an ack before resending (raised above the server's holdMs). */
  ackTimeoutMs?: number;
  /** A send not acked this long after send() or retry() is `failed`. Infinity: never. */
  sendDeadlineMs?: number;
  /** Reconnect and resend delays (full jitter, capped). */
  backoff?: Partial<BackoffOptions>;
  /** A heartbeat ping goes out after this long without a frame from the server. */
  pingIntervalMs?: number;
  /** With no frame this long after a ping, the connection is taken as dead and replaced. */
  pingTimeoutMs?: number;
  /** Transport open + hello must complete within this. */
  connectTimeoutMs?: number;
  /** create/members/sync wait at most this long for a connection and a reply. */
  requestTimeoutMs?: number;
  /** Entries per sync request (1..1000). */
  syncPageSize?: number;
  /** Conversations caught up in parallel after a (re)connect. */
  syncConcurrency?: number;
  logger?: ClientLogger;
  /** For tests: the source of jitter (default Math.random) and of time (default Date.now). */
  random?: () => number;
  now?: () => number;
}

export interface ResolvedClientOptions {
  readonly url: string;
  readonly token: string | undefined;
  readonly getToken: ((device: string) => string | Promise<string>) | undefined;
  readonly delivery: DeliveryMode;
  readonly gapWaitMs: number;
  readonly ackTimeoutMs: number;
  readonly sendDeadlineMs: number;
  readonly backoff: Readonly<BackoffOptions>;
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly syncPageSize: number;
  readonly syncConcurrency: number;
  readonly logger: ClientLogger | undefined;
  readonly random: () => number;
  readonly now: () => number;
}

function invalid(option: string, message: string): SequentClientError {
  return new SequentClientError('invalid_argument', `invalid option ${option}: ${message}`);
}

function duration(name: string, value: number | undefined, fallback: number, min: number, allowInfinity = false): number {
  if (value === undefined) return fallback;
  if (allowInfinity && value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw invalid(name, `expected a number of ms ≥ ${min}${allowInfinity ? ' or Infinity' : ''}, got ${String(value)}`);
  }
  return value;
}

function integer(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(name, `expected an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options', 'expected an object');
  if (typeof options.url !== 'string' || !/^wss?:\/\//.test(options.url)) {
    throw invalid('url', `expected a ws:// or wss:// URL, got ${String(options.url)}`);
  }
  if (options.token === undefined && options.getToken === undefined) throw invalid('token', 'give token or getToken');
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length === 0)) {
    throw invalid('token', 'expected a non-empty string');
  }
  if (options.getToken !== undefined && typeof options.getToken !== 'function') throw invalid('getToken', 'expected a function');
  const delivery = options.delivery ?? 'ordered';
  if (delivery !== 'ordered' && delivery !== 'immediate') {
    throw invalid('delivery', `expected "ordered" or "immediate", got ${String(delivery)}`);
  }
  const baseMs = duration('backoff.baseMs', options.backoff?.baseMs, DEFAULT_BACKOFF.baseMs, 1);
  const maxMs = duration('backoff.maxMs', options.backoff?.maxMs, Math.max(DEFAULT_BACKOFF.maxMs, baseMs), baseMs);
  return Object.freeze({
    url: options.url,
    token: options.token,
    getToken: options.getToken,
    delivery,
    gapWaitMs: duration('gapWaitMs', options.gapWaitMs, DEFAULT_GAP_WAIT_MS, 0),
    ackTimeoutMs: duration('ackTimeoutMs', options.ackTimeoutMs, DEFAULT_ACK_TIMEOUT_MS, 1),
    sendDeadlineMs: duration('sendDeadlineMs', options.sendDeadlineMs, DEFAULT_SEND_DEADLINE_MS, 1, true),
    backoff: Object.freeze({ baseMs, maxMs }),
    pingIntervalMs: duration('pingIntervalMs', options.pingIntervalMs, DEFAULT_PING_INTERVAL_MS, 1),
    pingTimeoutMs: duration('pingTimeoutMs', options.pingTimeoutMs, DEFAULT_PING_TIMEOUT_MS, 1),
    connectTimeoutMs: duration('connectTimeoutMs', options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, 1),
    requestTimeoutMs: duration('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS, 1),
    syncPageSize: integer('syncPageSize', options.syncPageSize, DEFAULT_SYNC_PAGE_SIZE, 1, 1000),
    syncConcurrency: integer('syncConcurrency', options.syncConcurrency, DEFAULT_SYNC_CONCURRENCY, 1, 64),
    logger: options.logger,
    random: options.random ?? Math.random,
    now: options.now ?? Date.now,
  });
}
