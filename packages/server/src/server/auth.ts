/** Tokens: HS256 JWTs with `sub` (user) and `dev` (device), and where the secret lives. */
import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { isName } from 'sequent-client/protocol';

const SECRET_FILE = 'secret';

/** The secret from the options/env, else the one kept in dataDir, else a new one written there once. */
export function resolveSecret(dataDir: string, explicit: string | undefined): string {
  if (explicit !== undefined) return explicit;
  const path = join(dataDir, SECRET_FILE);
  try {
    const kept = readFileSync(path, 'utf8').trim();
    // A short secret is somebody's mistake to fix, never to overwrite: tokens minted with it would all stop working.
    if (kept.length < 32) throw new Error(`the secret in ${path} is shorter than 32 characters; replace it (openssl rand -base64 32)`);
    return kept;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${secret}\n`, { mode: 0o600 });
  chmodSync(temp, 0o600);
  renameSync(temp, path);
  return secret;
}

export interface Identity {
  user: string;
  device: string;
  /** When the token expires (ms since the epoch), if it does: the connection ends then. */
  expiresAt?: number;
}

export class TokenError extends Error {
  override name = 'TokenError';
}

export class TokenAuthority {
  /**
   * A node:crypto key: jose 5's Node build signs and verifies HS256 with it
   * synchronously (about 9 µs of CPU a token here), where WebCrypto's
   * asynchronous verify cost about 30 µs — one hello per connection, so a
   * reconnect storm's biggest per-connection cost after the conversation list.
   */
  private readonly key: KeyObject;

  constructor(secret: string) {
    this.key = createSecretKey(Buffer.from(secret, 'utf8'));
  }

  async mint(user: string, device: string, ttlSeconds?: number): Promise<string> {
    if (!isName(user)) throw new TokenError(`user ${JSON.stringify(user)} is not a valid name`);
    if (!isName(device)) throw new TokenError(`device ${JSON.stringify(device)} is not a valid name`);
    const jwt = new SignJWT({ dev: device }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setIssuedAt();
    if (ttlSeconds !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds);
    return jwt.sign(this.key);
  }

  async verify(token: string): Promise<Identity> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new TokenError('token expired');
      throw new TokenError('token is not valid');
    }
    const user = payload['sub'];
    const device = payload['dev'];
    if (!isName(user)) throw new TokenError('token sub is not a valid user name');
    if (!isName(device)) throw new TokenError('token dev is not a valid device name');
    const exp = payload['exp'];
    return typeof exp === 'number' ? { user, device, expiresAt: exp * 1000 } : { user, device };
  }
}
