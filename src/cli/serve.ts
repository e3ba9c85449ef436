/** `sequent serve`: this process is the server (no wrapper), so signals reach it directly. */
import { pino } from 'pino';
import { OptionError, startServer, type RunningServer } from '../server/index.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/options.js';
import { DEFAULT_HOLD_MS } from '../protocol/index.js';
import { HELP_FLAG, parseCommand, UsageError, type FlagSpec } from './args.js';
import { DataDirError, describeDataDirError, prepareDataDir } from './data-dir.js';
import { isPostgresFailure, withDefaultUser } from './postgres-url.js';
import { loadSecret, SecretError, type Secret } from './secret.js';

const FLAGS: Record<string, FlagSpec> = {
  host: { kind: 'string', default: DEFAULT_HOST, help: 'address to listen on' },
  port: { kind: 'int', default: DEFAULT_PORT, min: 0, max: 65535, help: 'port to listen on (0: any free port)' },
  data: { kind: 'string', default: './data', help: 'data directory (SQLite database, token secret)' },
  'hold-ms': { kind: 'int', default: DEFAULT_HOLD_MS, min: 0, max: 600_000, help: 'how long a dseq gap is held back' },
  postgres: { kind: 'string', help: 'keep the log in this PostgreSQL database (postgres://…) instead of the embedded SQLite file' },
  durability: { kind: 'string', default: 'full', help: 'full (fsync every commit) or process (survives a process crash only)' },
  'log-level': { kind: 'string', default: 'info', help: 'fatal, error, warn, info, debug or trace' },
  help: HELP_FLAG,
};

const SUMMARY = 'Runs the server until SIGTERM or SIGINT, then drains. Secret: SEQUENT_SECRET, else <data>/secret (created on first start).';

/** The flag that sets each server option, so that a refused value is reported by the name the operator typed. */
const FLAG_OF_OPTION: Record<string, string> = {
  host: 'host',
  port: 'port',
  dataDir: 'data',
  holdMs: 'hold-ms',
  durability: 'durability',
  postgresUrl: 'postgres',
};

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export async function runServe(argv: string[]): Promise<number> {
  const flags = parseCommand('serve', argv, FLAGS, SUMMARY, (parsed) => {
    if (!LOG_LEVELS.has(String(parsed['log-level']))) throw new UsageError(`flag --log-level takes one of ${[...LOG_LEVELS].join(', ')}`);
    if (parsed['durability'] !== 'full' && parsed['durability'] !== 'process') throw new UsageError('flag --durability takes full or process');
  });
  if (typeof flags === 'number') return flags;
  const fail = (message: string, code = 1): number => {
    process.stderr.write(`sequent serve: ${message}\n`);
    return code;
  };

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
  let server: RunningServer;
  try {
    server = await startServer({
      host: String(flags['host']),
      port: Number(flags['port']),
      dataDir,
      secret: secret.secret,
      holdMs: Number(flags['hold-ms']),
      durability: flags['durability'] as 'full' | 'process',
      ...(postgresUrl === undefined ? {} : { postgresUrl }),
      logger,
    });
  } catch (error) {
    if (error instanceof OptionError) {
      const flag = FLAG_OF_OPTION[error.option];
      return fail(flag ? `invalid flag --${flag}: ${error.problem}` : error.message, 2);
    }
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
  logger.info(
    { port: server.port, url: server.url, http: server.httpUrl, data: dataDir, secret: secret.source, store: postgresUrl === undefined ? 'sqlite' : 'postgres' },
    'listening',
  );
  const running = server;
  await new Promise<void>((resolve) => {
    let draining = false;
    // Under `npm start` the signal often comes twice (from the supervisor to the whole
    // group, and forwarded by npm): the second must not kill the drain the first began.
    const stop = (signal: string) => {
      if (draining) return logger.info({ signal }, 'already draining');
      draining = true;
      logger.info({ signal }, 'draining');
      void running.close().then(resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  logger.info('stopped');
  return 0;
}
