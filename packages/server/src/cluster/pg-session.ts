/**
 * Connection settings for every PostgreSQL connection a cluster node uses for
 * leases and fenced commits. A node that lost its lease (paused, cut off) must
 * not keep row locks that hold up the node taking over:
 *
 * - `idle_in_transaction_session_timeout` = the lease: a transaction left open by
 *   a paused or vanished node is rolled back by the server, and its locks go;
 * - `lock_timeout`: a lease statement never waits behind a lock for long (the
 *   takeover path skips locked rows and retries on the next tick; this bounds
 *   anything else);
 * - TCP keepalives and `tcp_user_timeout` on the server's side, so a half-open
 *   connection of a cut-off node is noticed in about a lease, not in the
 *   kernel's default two hours; keepalive on the client's side too;
 * - a client-side `query_timeout`, so a tick on a connection that silently died
 *   fails (and the pool drops that connection) instead of hanging.
 */
import type pg from 'pg';

export interface ClusterSessionOptions {
  url: string;
  leaseMs: number;
  /** Pool size (default 4). */
  maxConnections?: number;
}

export interface SessionSettings {
  idleInTransactionMs: number;
  lockTimeoutMs: number;
  keepaliveIdleSeconds: number;
  keepaliveIntervalSeconds: number;
  keepaliveCount: number;
  tcpUserTimeoutMs: number;
  queryTimeoutMs: number;
}

export function sessionSettings(leaseMs: number): SessionSettings {
  const seconds = Math.max(1, Math.ceil(leaseMs / 1000));
  return {
    idleInTransactionMs: leaseMs,
    lockTimeoutMs: Math.max(50, Math.floor(leaseMs / 4)),
    keepaliveIdleSeconds: seconds,
    keepaliveIntervalSeconds: seconds,
    keepaliveCount: 3,
    tcpUserTimeoutMs: leaseMs,
    // A statement of a lease tick that takes longer than this cannot renew in time anyway.
    queryTimeoutMs: Math.max(1000, leaseMs),
  };
}

/** A pg pool config with the settings above (pass it to `new pg.Pool`). */
/** The server-side settings as libpq startup options; `lockTimeout` for lease statements, not for commits. */
function startupOptions(s: SessionSettings, lockTimeout: boolean): string {
  const startup = [
    `idle_in_transaction_session_timeout=${s.idleInTransactionMs}`,
    ...(lockTimeout ? [`lock_timeout=${s.lockTimeoutMs}`] : []),
    `tcp_keepalives_idle=${s.keepaliveIdleSeconds}`,
    `tcp_keepalives_interval=${s.keepaliveIntervalSeconds}`,
    `tcp_keepalives_count=${s.keepaliveCount}`,
    `tcp_user_timeout=${s.tcpUserTimeoutMs}`,
  ];
  return startup.map((setting) => `-c ${setting}`).join(' ');
}

export function clusterPoolConfig(options: ClusterSessionOptions): pg.PoolConfig {
  const s = sessionSettings(options.leaseMs);
  return {
    connectionString: options.url,
    max: options.maxConnections ?? 4,
    options: startupOptions(s, true),
    keepAlive: true,
    keepAliveInitialDelayMillis: s.keepaliveIdleSeconds * 1000,
    connectionTimeoutMillis: Math.max(1000, options.leaseMs),
    query_timeout: s.queryTimeoutMs,
    application_name: 'sequent-cluster',
  };
}

/**
 * Pool settings for a cluster node's store (its fenced commits and its reads):
 * the same end of a paused node's open transaction, keepalives and
 * `tcp_user_timeout` as above, but no `lock_timeout` and no client
 * `query_timeout`. A commit waits its turn behind others' commits on rows every
 * commit touches (the change-version counter); failing it after lease/4 would
 * fail healthy sends under load.
 */
export function commitPoolConfig(leaseMs: number): Omit<pg.PoolConfig, 'connectionString' | 'max'> {
  const s = sessionSettings(leaseMs);
  return {
    options: startupOptions(s, false),
    keepAlive: true,
    keepAliveInitialDelayMillis: s.keepaliveIdleSeconds * 1000,
    connectionTimeoutMillis: Math.max(1000, leaseMs),
    application_name: 'sequent-node',
  };
}
