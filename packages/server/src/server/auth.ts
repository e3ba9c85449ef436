/** Tokens: HS256 JWTs with `sub` (user) and `dev` (device), and where the secret lives. */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT } from 'jose';
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
  private readonly secret: Uint8Array<ArrayBuffer>;
  private key: Promise<CryptoKey> | undefined;

  constructor(secret: string) {
    this.secret = new TextEncoder().encode(secret);
  }

  /**
   * The secret imported once: handed raw bytes, jose imports a WebCrypto key on every
   * sign and verify, which was most of a hello's cost in a reconnect storm.
   */
  private cryptoKey(): Promise<CryptoKey> {
    if (this.key !== undefined) return this.key;
    const key = crypto.subtle.importKey('raw', this.secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    this.key = key;
    // A failed import is not kept: the next call tries again (and fails as jose would).
    key.catch(() => {
      if (this.key === key) this.key = undefined;
    });
    return key;
  }

  async mint(user: string, device: string, ttlSeconds?: number): Promise<string> {
    if (!isName(user)) throw new TokenError(`user ${JSON.stringify(user)} is not a valid name`);
    if (!isName(device)) throw new TokenError(`device ${JSON.stringify(device)} is not a valid name`);
    const jwt = new SignJWT({ dev: device }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setIssuedAt();
    if (ttlSeconds !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds);
    return jwt.sign(await this.cryptoKey());
  }

  /**
   * Checks an HS256 token with a synchronous HMAC: a reconnect storm is one
   * hello per connection, and WebCrypto's asynchronous verify (a thread-pool
   * job and its promise hops per call) cost ~6× as much: 42 µs against 7 µs.
   * The checks are jose's jwtVerify with algorithms ['HS256'] (its tokens and
   * any HS256 JWT of the same secret verify; see claimsOf).
   */
  async verify(token: string): Promise<Identity> {
    const payload = this.claimsOf(token);
    const user = payload['sub'];
    const device = payload['dev'];
    if (!isName(user)) throw new TokenError('token sub is not a valid user name');
    if (!isName(device)) throw new TokenError('token dev is not a valid device name');
    const exp = payload['exp'];
    return typeof exp === 'number' ? { user, device, expiresAt: exp * 1000 } : { user, device };
  }

  /** The verified claims of a compact HS256 JWS, else TokenError ('token expired' or 'token is not valid'). */
  private claimsOf(token: string): Record<string, unknown> {
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part))) throw new TokenError('token is not valid');
    const [head, body, signature] = parts as [string, string, string];
    const header = parseObject(head);
    // jose refuses a crit it does not handle (all of them, with no crit option) and b64: false (unencoded payloads) here too.
    if (header === undefined || header['alg'] !== 'HS256' || 'crit' in header || 'b64' in header) throw new TokenError('token is not valid');
    const expected = createHmac('sha256', this.secret).update(`${head}.${body}`).digest();
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new TokenError('token is not valid');
    const claims = parseObject(body);
    if (claims === undefined) throw new TokenError('token is not valid');
    // jose's time claims, with no clock tolerance: numbers when present; expired at exp; not valid before nbf.
    const now = Math.floor(Date.now() / 1000);
    for (const claim of ['exp', 'nbf', 'iat']) if (claim in claims && typeof claims[claim] !== 'number') throw new TokenError('token is not valid');
    if (typeof claims['nbf'] === 'number' && claims['nbf'] > now) throw new TokenError('token is not valid');
    if (typeof claims['exp'] === 'number' && claims['exp'] <= now) throw new TokenError('token expired');
    return claims;
  }
}

/** A JWS part: unpadded base64url, nothing else (a lenient decoder would accept many spellings of one signature). */
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** A base64url JSON object, or undefined when the text is not one. */
function parseObject(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
