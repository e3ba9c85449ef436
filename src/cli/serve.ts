/** `sequent serve`: this process is the server (no wrapper), so signals reach it directly. */
import { pino } from 'pino';
import { OptionError, startServer } from '../server/index.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../server/options.js';
import { DEFAULT_HOLD_MS } from '../protocol/index.js';
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
