/** `sequent token`: mint a token with the server's secret (SEQUENT_SECRET or the one kept in --data). */
import { TokenAuthority, resolveSecret } from '../server/index.js';
import { isName } from '../protocol/index.js';
import { parseFlags, usage, UsageError, type FlagSpec } from './args.js';

const FLAGS: Record<string, FlagSpec> = {
  user: { kind: 'string', help: 'user id (1-64 of [A-Za-z0-9_.-])' },
  device: { kind: 'string', help: 'device id (1-64 of [A-Za-z0-9_.-])' },
  ttl: { kind: 'int', min: 1, help: 'seconds until the token expires (default: no expiry)' },
  data: { kind: 'string', default: './data', help: 'data directory holding the secret' },
};

export async function runToken(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv, FLAGS);
    for (const name of ['user', 'device'] as const) {
      if (flags[name] === undefined) throw new UsageError(`flag --${name} is required`);
      if (!isName(flags[name])) throw new UsageError(`flag --${name} must be 1-64 characters of [A-Za-z0-9_.-]`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`sequent token: ${error.message}\n${usage('token', FLAGS)}`);
    return 2;
  }
  const secret = resolveSecret(String(flags['data']), process.env['SEQUENT_SECRET'] || undefined);
  const ttl = flags['ttl'] === undefined ? undefined : Number(flags['ttl']);
  process.stdout.write(`${await new TokenAuthority(secret).mint(String(flags['user']), String(flags['device']), ttl)}\n`);
  return 0;
}
