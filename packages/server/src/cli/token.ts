/** `sequent-server token`: mint a token with the server's secret (SEQUENT_SECRET or the one kept in --data). */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { TokenAuthority } from '../server/index.js';
import { isName } from 'sequent-client/protocol';
import { HELP_FLAG, parseCommand, UsageError, type FlagSpec } from './args.js';
import { describeDataDirError } from './data-dir.js';
import { loadSecret, SecretError } from './secret.js';

/** A day: long enough for a test client or a demo, short enough that a leaked one dies on its own. */
export const DEFAULT_TOKEN_TTL_MS = 24 * 3_600_000;

const FLAGS: Record<string, FlagSpec> = {
  user: { kind: 'string', help: 'user id (1-64 of [A-Za-z0-9_.-]), required' },
  device: { kind: 'string', help: 'device id (1-64 of [A-Za-z0-9_.-]), required' },
  ttl: { kind: 'duration', default: DEFAULT_TOKEN_TTL_MS, shown: '24h', min: 0, help: 'how long the token is valid (e.g. 3600, 90m, 24h); 0: no expiry' },
  data: { kind: 'string', default: './data', help: 'the server\'s data directory, holding the secret (ignored when SEQUENT_SECRET is set)' },
  help: HELP_FLAG,
};

const SUMMARY = 'Prints a token (HS256 JWT) for one user and device, signed with the server\'s secret. It never creates a secret.';

export async function runToken(argv: string[]): Promise<number> {
  const flags = parseCommand('token', argv, FLAGS, SUMMARY, (parsed) => {
    for (const name of ['user', 'device'] as const) {
      if (parsed[name] === undefined) throw new UsageError(`flag --${name} is required`);
      if (!isName(parsed[name])) throw new UsageError(`flag --${name} must be 1-64 characters of [A-Za-z0-9_.-]`);
    }
  });
  if (typeof flags === 'number') return flags;
  const dataDir = String(flags['data']);
  let secret: string;
  try {
    if (!process.env['SEQUENT_SECRET'] && statIsFile(dataDir)) throw new SecretError(`--data ${resolve(dataDir)} is a file, not a directory`);
    secret = loadSecret(dataDir, process.env['SEQUENT_SECRET'], false).secret;
  } catch (error) {
    const message = error instanceof SecretError ? error.message : describeDataDirError(dataDir, error);
    if (message === undefined) throw error;
    process.stderr.write(`sequent-server token: ${message}\n`);
    return 1;
  }
  const ttlMs = Number(flags['ttl']);
  const ttlSeconds = ttlMs === 0 ? undefined : Math.max(1, Math.round(ttlMs / 1000));
  process.stdout.write(`${await new TokenAuthority(secret).mint(String(flags['user']), String(flags['device']), ttlSeconds)}\n`);
  return 0;
}

function statIsFile(path: string): boolean {
  try {
    return !statSync(path).isDirectory();
  } catch {
    return false;
  }
}
