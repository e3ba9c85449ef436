/** `sequent-server serve`: this process is the server (no wrapper), so signals reach it directly. */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { pino } from 'pino';
import { MetricsListenError, OptionError, startServer, type RunningServer } from '../server/index.js';
import * as defaults from '../server/options.js';
import { DEFAULT_HOST, DEFAULT_LEASE_MS, DEFAULT_METRICS_HOST, DEFAULT_PORT, type ClusterOptions, type ServerOptions } from '../server/options.js';
import { DEFAULT_HOLD_MS, DEFAULT_MAX_BODY, DEFAULT_MAX_FRAME } from 'sequent-client/protocol';
import { HELP_FLAG, parseCommand, UsageError, type FlagSpec } from './args.js';
import { DataDirError, describeDataDirError, prepareDataDir } from './data-dir.js';
import { isPostgresFailure, withDefaultUser } from './postgres-url.js';
import { loadSecret, SecretError, type Secret } from './secret.js';

const FLAGS: Record<string, FlagSpec> = {
  host: { kind: 'string', default: DEFAULT_HOST, help: 'address to listen on' },
  port: { kind: 'int', default: DEFAULT_PORT, min: 0, max: 65535, help: 'port to listen on (0: any free port)' },
  'metrics-port': { kind: 'int', min: 0, max: 65535, help: 'serve Prometheus /metrics on this port of --metrics-host, apart from the public port (default: no /metrics; 0: any free port)' },
  'metrics-host': { kind: 'string', default: DEFAULT_METRICS_HOST, help: 'address the metrics port listens on' },
  data: { kind: 'string', default: './data', help: 'data directory (SQLite database, token secret)' },
  'hold-ms': { kind: 'int', default: DEFAULT_HOLD_MS, min: 0, max: 600_000, help: 'how long a dseq gap is held back' },
  postgres: { kind: 'string', help: 'keep the log in this PostgreSQL database (postgres://…) instead of the embedded SQLite file' },
  durability: { kind: 'string', default: 'full', help: 'full (fsync every commit) or process (survives a process crash only)' },
  'log-level': { kind: 'string', default: 'info', help: 'fatal, error, warn, info, debug or trace' },
  'tls-cert': { kind: 'string', help: 'serve wss:// and https:// with this PEM certificate chain (with --tls-key)' },
  'tls-key': { kind: 'string', help: 'the PEM private key of --tls-cert' },
  'no-web': { kind: 'bool', default: false, help: 'do not serve the web chat at / (docs/web.md)' },
  demo: { kind: 'bool', default: false, help: 'demo sign-in for local use only: the web chat mints a token for any user name typed' },
  cluster: { kind: 'bool', default: false, help: 'run as one node of a cluster sharing --postgres and --nats (docs/cluster.md)' },
  nats: { kind: 'string', help: 'with --cluster: the NATS server every node uses (nats://host:port)' },
  node: { kind: 'string', shown: 'the host name', help: 'with --cluster: this node\'s name, unique in the cluster; a restart under it takes its slots back at once' },
  'lease-ms': { kind: 'int', min: 100, max: 600_000, shown: String(DEFAULT_LEASE_MS), help: 'with --cluster: the slot lease; a dead node\'s conversations move after about this long' },
  'nats-prefix': { kind: 'string', shown: 'sequent.<database name>', help: 'with --cluster: the NATS subject prefix, so that clusters sharing a NATS server never cross' },
  slots: { kind: 'int', min: 1, max: 65_536, shown: '1024', help: 'with --cluster: slot count of a new cluster database (every node must agree; fixed once stored)' },
  help: HELP_FLAG,
};

type LimitOption = { [K in keyof ServerOptions]-?: ServerOptions[K] extends number | undefined ? K : never }[keyof ServerOptions];

/** Limits an operator may tune, each a flag named after its option; docs/operations.md lists them. */
const LIMIT_FLAGS: Record<string, { option: LimitOption; default: number; help: string }> = {
  'max-frame': { option: 'maxFrame', default: DEFAULT_MAX_FRAME, help: 'largest client frame, bytes' },
  'max-body': { option: 'maxBody', default: DEFAULT_MAX_BODY, help: "largest send body (with its ctx), bytes" },
  'max-buffered': { option: 'maxBuffered', default: defaults.DEFAULT_MAX_BUFFERED, help: 'bytes waiting for a client before it is cut as slow (4429)' },
  rate: { option: 'ratePerSecond', default: defaults.DEFAULT_RATE_PER_SECOND, help: 'frames per second per connection' },
  'rate-burst': { option: 'rateBurst', default: defaults.DEFAULT_RATE_BURST, help: 'frames a connection may send at once' },
  'max-bad-frames': { option: 'maxBadFrames', default: defaults.DEFAULT_MAX_BAD_FRAMES, help: 'refused frames before the connection is closed (4400)' },
  'max-held-per-device': { option: 'maxHeldPerDevice', default: defaults.DEFAULT_MAX_HELD_PER_DEVICE, help: 'sends a device may have held back for a missing dseq' },
  'max-held-bytes-per-device': { option: 'maxHeldBytesPerDevice', default: defaults.DEFAULT_MAX_HELD_BYTES_PER_DEVICE, help: 'bytes of held-back sends per device' },
  'max-held-bytes-per-user': { option: 'maxHeldBytesPerUser', default: defaults.DEFAULT_MAX_HELD_BYTES_PER_USER, help: 'bytes of held-back sends per user' },
  'max-connections-per-user': { option: 'maxConnectionsPerUser', default: defaults.DEFAULT_MAX_CONNECTIONS_PER_USER, help: 'open connections per user (4430 past it)' },
  'max-connections-per-address': {
    option: 'maxConnectionsPerAddress',
    default: defaults.DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    help: 'open connections per remote address (0: no cap, behind a proxy)',
  },
  'max-sync-bytes': { option: 'maxSyncBytes', default: defaults.DEFAULT_MAX_SYNC_BYTES, help: 'bytes of entries in one sync reply' },
  'max-pending-reads': { option: 'maxPendingReads', default: defaults.DEFAULT_MAX_PENDING_READS, help: 'reads one connection may have waiting' },
  'max-convs': { option: 'maxConvs', default: defaults.DEFAULT_MAX_CONVS, help: 'rows in one convs reply' },
};
for (const [flag, limit] of Object.entries(LIMIT_FLAGS)) {
  // No default of the flag's own: an unset limit is left to the server, whose defaults depend on one another.
  FLAGS[flag] = { kind: 'int', min: 0, help: `${limit.help} (default ${limit.default})` };
}

const SUMMARY = 'Runs the server until SIGTERM or SIGINT, then drains. Secret: SEQUENT_SECRET, else <data>/secret (created on first start).';

/** The flag that sets each server option, so that a refused value is reported by the name the operator typed. */
const FLAG_OF_OPTION: Record<string, string> = {
  host: 'host',
  port: 'port',
  metricsPort: 'metrics-port',
  metricsHost: 'metrics-host',
  dataDir: 'data',
  holdMs: 'hold-ms',
  durability: 'durability',
  postgresUrl: 'postgres',
  natsUrl: 'nats',
  node: 'node',
  leaseMs: 'lease-ms',
  slots: 'slots',
  prefix: 'nats-prefix',
  ...Object.fromEntries(Object.entries(LIMIT_FLAGS).map(([flag, { option }]) => [option, flag])),
};

/** The certificate and key, read and checked now, so that a wrong file is one line at start naming its flag. */
function readTls(certPath: unknown, keyPath: unknown): { cert: Buffer; key: Buffer } | undefined {
  if (certPath === undefined || keyPath === undefined) return undefined;
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(`cannot read --${flag} ${resolve(path)} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  };
  const cert = read('tls-cert', String(certPath));
  const key = read('tls-key', String(keyPath));
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new Error(`--tls-cert and --tls-key are not a PEM certificate and its key (${(error as Error).message})`);
  }
  return { cert, key };
}

/** A cluster node's options from its flags; the server checks them (an invalid --node is named as such). */
function clusterOptions(flags: Record<string, string | number | boolean | undefined>): ClusterOptions {
  const options: ClusterOptions = { natsUrl: String(flags['nats']), node: flags['node'] === undefined ? hostname() : String(flags['node']) };
  if (flags['lease-ms'] !== undefined) options.leaseMs = Number(flags['lease-ms']);
  if (flags['slots'] !== undefined) options.slots = Number(flags['slots']);
  if (flags['nats-prefix'] !== undefined) options.prefix = String(flags['nats-prefix']);
  return options;
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export async function runServe(argv: string[]): Promise<number> {
  const flags = parseCommand('serve', argv, FLAGS, SUMMARY, (parsed) => {
    if (!LOG_LEVELS.has(String(parsed['log-level']))) throw new UsageError(`flag --log-level takes one of ${[...LOG_LEVELS].join(', ')}`);
    if (parsed['durability'] !== 'full' && parsed['durability'] !== 'process') throw new UsageError('flag --durability takes full or process');
    if ((parsed['tls-cert'] === undefined) !== (parsed['tls-key'] === undefined)) throw new UsageError('flags --tls-cert and --tls-key go together');
    if (parsed['demo'] && parsed['no-web']) throw new UsageError('flag --demo signs in to the web chat, which --no-web turns off');
    if (parsed['cluster']) {
      if (parsed['postgres'] === undefined) throw new UsageError('flag --cluster needs --postgres: the database every node shares');
      if (parsed['nats'] === undefined) throw new UsageError('flag --cluster needs --nats: the NATS server every node uses');
    } else {
      for (const flag of ['nats', 'node', 'lease-ms', 'slots', 'nats-prefix']) {
        if (parsed[flag] !== undefined) throw new UsageError(`flag --${flag} is for a cluster node: add --cluster`);
      }
    }
  });
  if (typeof flags === 'number') return flags;
  const fail = (message: string, code = 1): number => {
    process.stderr.write(`sequent-server serve: ${message}\n`);
    return code;
  };

  // Listen for the stop signals before anything else: a supervisor may send one during
  // start-up, or the instant the listening line is out, before the drain below exists.
  let stopSignal: string | undefined;
  let onStop = (signal: string): void => void (stopSignal ??= signal);
  const onSigterm = (): void => onStop('SIGTERM');
  const onSigint = (): void => onStop('SIGINT');
  process.on('SIGTERM', onSigterm);
  process.on('SIGINT', onSigint);
  try {
    return await serveUntilStopped(flags, fail, (stop) => {
      onStop = stop;
      if (stopSignal !== undefined) stop(stopSignal);
    });
  } finally {
    process.off('SIGTERM', onSigterm);
    process.off('SIGINT', onSigint);
  }
}

/** Starts the server, then waits for `untilStop` to hand it a stop signal, and drains. */
async function serveUntilStopped(
  flags: Record<string, string | number | boolean | undefined>,
  fail: (message: string, code?: number) => number,
  untilStop: (stop: (signal: string) => void) => void,
): Promise<number> {
  let tls: { cert: Buffer; key: Buffer } | undefined;
  try {
    tls = readTls(flags['tls-cert'], flags['tls-key']);
  } catch (error) {
    return fail((error as Error).message);
  }

  let dataDir: string;
  let secret: Secret;
  try {
    dataDir = prepareDataDir(String(flags['data']));
    secret = loadSecret(dataDir, process.env['SEQUENT_SECRET'], true);
  } catch (error) {
    if (error instanceof DataDirError || error instanceof SecretError) return fail(error.message);
    const described = describeDataDirError(String(flags['data']), error);
    if (described !== undefined) return fail(described);
    throw error;
  }

  const logger = pino({ level: String(flags['log-level']), base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
  const postgresUrl = flags['postgres'] === undefined ? undefined : withDefaultUser(String(flags['postgres']));
  const cluster = flags['cluster'] ? clusterOptions(flags) : undefined;
  let server: RunningServer;
  try {
    server = await startServer({
      host: String(flags['host']),
      port: Number(flags['port']),
      ...(flags['metrics-port'] === undefined ? {} : { metricsPort: Number(flags['metrics-port']), metricsHost: String(flags['metrics-host']) }),
      dataDir,
      secret: secret.secret,
      holdMs: Number(flags['hold-ms']),
      durability: flags['durability'] as 'full' | 'process',
      ...(postgresUrl === undefined ? {} : { postgresUrl }),
      ...(tls === undefined ? {} : { tls }),
      web: !flags['no-web'],
      demo: Boolean(flags['demo']),
      ...(cluster === undefined ? {} : { cluster }),
      ...Object.fromEntries(Object.entries(LIMIT_FLAGS).flatMap(([flag, { option }]) => (flags[flag] === undefined ? [] : [[option, Number(flags[flag])]]))),
      logger,
    });
  } catch (error) {
    if (error instanceof OptionError) {
      const flag = FLAG_OF_OPTION[error.option];
      return fail(flag ? `invalid flag --${flag}: ${error.problem}` : error.message, 2);
    }
    if (error instanceof MetricsListenError) return fail(`${error.message}; check --metrics-host and --metrics-port`);
    // By name: the cluster modules (and the bus client) are loaded only by a cluster node.
    const named = error as { name?: string; message: string; cause?: unknown; url?: string; stored?: number };
    if (named.name === 'BusUnreachableError') {
      return fail(`cannot reach the NATS server given by --nats (${named.url}): ${named.cause instanceof Error ? named.cause.message : String(named.cause)}`);
    }
    if (named.name === 'SlotCountMismatchError') return fail(`${named.message} (leave --slots out or give --slots ${named.stored})`, 2);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      return fail(`cannot listen on ${String(flags['host'])}:${String(flags['port'])} (${code}); check --host and --port`);
    }
    if (postgresUrl !== undefined && isPostgresFailure(error)) {
      return fail(`cannot use the database given by --postgres (${code === undefined ? '' : `${code}: `}${error.message})`);
    }
    const described = describeDataDirError(dataDir, error);
    if (described !== undefined) return fail(described);
    throw error;
  }
  if (flags['demo']) logger.warn({ demo: true }, 'demo sign-in is on: anyone who reaches this port gets a token for any user; for local use only');
  logger.info(
    { port: server.port, url: server.url, http: server.httpUrl, ...(server.webUrl === undefined ? {} : { web: server.webUrl }), ...(server.metricsUrl === undefined ? {} : { metrics: server.metricsUrl }), data: dataDir, secret: secret.source, store: postgresUrl === undefined ? 'sqlite' : 'postgres', ...(cluster === undefined ? {} : { node: cluster.node }) },
    'listening',
  );
  const running = server;
  let stoppedOnItsOwn: string | undefined;
  await new Promise<void>((resolve) => {
    let draining = false;
    // Under `npm start` the signal often comes twice (from the supervisor to the whole
    // group, and forwarded by npm): the second must not kill the drain the first began.
    untilStop((signal) => {
      if (draining) return logger.info({ signal }, 'already draining');
      draining = true;
      logger.info({ signal }, 'draining');
      void running.close().then(resolve);
    });
    void running.stopped.then((reason) => {
      stoppedOnItsOwn = reason;
      resolve();
    });
  });
  logger.info('stopped');
  return stoppedOnItsOwn === undefined ? 0 : fail(`stopped: ${stoppedOnItsOwn === 'superseded' ? 'another process started under this --node name' : stoppedOnItsOwn}`);
}
