/** `sequent serve`: this process is the server (no wrapper), so signals reach it directly. */
import { pino } from 'pino';
import { OptionError, startServer } from '../server/index.js';
import * as defaults from '../server/options.js';
import { DEFAULT_HOST, DEFAULT_PORT, type ServerOptions } from '../server/options.js';
import { DEFAULT_HOLD_MS, DEFAULT_MAX_BODY, DEFAULT_MAX_FRAME } from '../protocol/index.js';
import { parseFlags, usage, UsageError, type FlagSpec } from './args.js';

const FLAGS: Record<string, FlagSpec> = {
  host: { kind: 'string', default: DEFAULT_HOST, help: 'address to listen on' },
  port: { kind: 'int', default: DEFAULT_PORT, min: 0, max: 65535, help: 'port to listen on (0: any free port)' },
  data: { kind: 'string', default: './data', help: 'data directory (SQLite database, token secret)' },
  'hold-ms': { kind: 'int', default: DEFAULT_HOLD_MS, min: 0, max: 600_000, help: 'how long a dseq gap is held back' },
  postgres: { kind: 'string', help: 'keep the log in this PostgreSQL database (postgres://…) instead of the embedded SQLite file' },
  durability: { kind: 'string', default: 'full', help: 'full (fsync every commit) or process (survives a process crash only)' },
  'log-level': { kind: 'string', default: 'info', help: 'fatal, error, warn, info, debug or trace' },
  help: { kind: 'bool', default: false, help: 'print this help' },
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

/** The flag that sets each server option, so that a refused value is reported by the name the operator typed. */
const FLAG_OF_OPTION: Record<string, string> = {
  host: 'host',
  port: 'port',
  dataDir: 'data',
  holdMs: 'hold-ms',
  durability: 'durability',
  postgresUrl: 'postgres',
  ...Object.fromEntries(Object.entries(LIMIT_FLAGS).map(([flag, { option }]) => [option, flag])),
};

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export async function runServe(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv, FLAGS);
    if (!LOG_LEVELS.has(String(flags['log-level']))) throw new UsageError(`flag --log-level takes one of ${[...LOG_LEVELS].join(', ')}`);
    if (flags['durability'] !== 'full' && flags['durability'] !== 'process') throw new UsageError('flag --durability takes full or process');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`sequent serve: ${error.message}\n${usage('serve', FLAGS)}`);
    return 2;
  }
  if (flags['help']) {
    process.stdout.write(usage('serve', FLAGS));
    return 0;
  }
  const logger = pino({ level: String(flags['log-level']), base: { pid: process.pid } });
  let server;
  try {
    server = await startServer({
      host: String(flags['host']),
      port: Number(flags['port']),
      dataDir: String(flags['data']),
      holdMs: Number(flags['hold-ms']),
      durability: flags['durability'] as 'full' | 'process',
      ...(flags['postgres'] === undefined ? {} : { postgresUrl: String(flags['postgres']) }),
      ...Object.fromEntries(Object.entries(LIMIT_FLAGS).flatMap(([flag, { option }]) => (flags[flag] === undefined ? [] : [[option, Number(flags[flag])]]))),
      logger,
    });
  } catch (error) {
    if (error instanceof OptionError) {
      const flag = FLAG_OF_OPTION[error.option];
      process.stderr.write(`sequent serve: ${flag ? `invalid flag --${flag}: ${error.problem}` : error.message}\n`);
      return 2;
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (flags['postgres'] !== undefined && (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === '28P01' || code === '3D000')) {
      process.stderr.write(`sequent serve: cannot use the database given by --postgres (${code}: ${(error as Error).message})\n`);
      return 1;
    }
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      process.stderr.write(`sequent serve: cannot listen on ${String(flags['host'])}:${String(flags['port'])} (${code}); check --host and --port\n`);
      return 1;
    }
    throw error;
  }
  logger.info({ port: server.port, url: server.url, http: server.httpUrl, data: flags['data'] }, 'listening');
  const running = server;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'draining');
      void running.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.info('stopped');
  return 0;
}
