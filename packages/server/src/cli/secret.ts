/**
 * Where the CLI's token secret comes from: SEQUENT_SECRET, else the file in the
 * data dir. Only `serve` may create that file; `token` refuses, because a secret
 * made by a mistyped --data signs tokens no running server accepts.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolveSecret } from '../server/index.js';

/** HS256 wants a key at least as long as its 256-bit hash. */
export const MIN_SECRET_BYTES = 32;
export const SECRET_FILE = 'secret';

export class SecretError extends Error {
  override name = 'SecretError';
}

export interface Secret {
  secret: string;
  /** For the start-up log: "SEQUENT_SECRET", the file's absolute path, or that path plus " (generated)". */
  source: string;
}

const HOW_TO_MAKE = 'make one with `openssl rand -base64 32`';

export function loadSecret(dataDir: string, env: string | undefined, mayCreate: boolean): Secret {
  if (env !== undefined && env !== '') {
    const bytes = Buffer.byteLength(env, 'utf8');
    if (bytes < MIN_SECRET_BYTES) throw new SecretError(`SEQUENT_SECRET is ${bytes} bytes; at least ${MIN_SECRET_BYTES} are needed (${HOW_TO_MAKE})`);
    return { secret: env, source: 'SEQUENT_SECRET' };
  }
  const path = resolve(join(dataDir, SECRET_FILE));
  let kept: string;
  try {
    kept = readFileSync(path, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    if (!mayCreate) {
      throw new SecretError(
        `no secret at ${path}: is --data the server's data directory? (\`sequent-server serve\` creates the secret on its first start; or set SEQUENT_SECRET)`,
      );
    }
    return { secret: resolveSecret(dataDir, undefined), source: `${path} (generated)` };
  }
  const bytes = Buffer.byteLength(kept, 'utf8');
  if (bytes < MIN_SECRET_BYTES) {
    // Never replaced silently: every token signed with it would stop working.
    throw new SecretError(`the secret in ${path} is ${bytes} bytes; at least ${MIN_SECRET_BYTES} are needed (${HOW_TO_MAKE}, or delete the file to have serve generate one)`);
  }
  return { secret: kept, source: path };
}
