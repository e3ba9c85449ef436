/**
 * The token authority signs and checks with one imported key: tokens signed
 * elsewhere with the same secret (an app backend using jose and the raw
 * secret) must still verify, and every refusal must stay a TokenError.
 */
import { createHmac } from 'node:crypto';
import { SignJWT } from 'jose';
import { expect, it } from 'vitest';
import { TokenAuthority, TokenError } from '../../packages/server/src/server/auth.js';

const SECRET = 'a-secret-of-at-least-32-characters-long';

it('verifies its own tokens, many at once, with the user and device they were minted for', async () => {
  const authority = new TokenAuthority(SECRET);
  const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => authority.mint(`u${i}`, 'd1')));
  const identities = await Promise.all(tokens.map((t) => authority.verify(t)));
  expect(identities.map((id) => id.user)).toEqual(tokens.map((_, i) => `u${i}`));
  expect(identities.every((id) => id.device === 'd1' && id.expiresAt === undefined)).toBe(true);
});

it('verifies a token another authority with the same secret minted, and one jose signed with the raw secret', async () => {
  const token = await new TokenAuthority(SECRET).mint('alice', 'phone', 3600);
  const identity = await new TokenAuthority(SECRET).verify(token);
  expect(identity).toMatchObject({ user: 'alice', device: 'phone' });
  expect(identity.expiresAt).toBeGreaterThan(Date.now());

  const external = await new SignJWT({ dev: 'laptop' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('bob')
    .sign(new TextEncoder().encode(SECRET));
  await expect(new TokenAuthority(SECRET).verify(external)).resolves.toEqual({ user: 'bob', device: 'laptop' });
});

it('refuses a token of another secret, a tampered one, an expired one and garbage, as TokenError', async () => {
  const authority = new TokenAuthority(SECRET);
  const foreign = await new TokenAuthority(`${SECRET}-other`).mint('alice', 'phone');
  const own = await authority.mint('alice', 'phone');
  const [head, payload, signature] = own.split('.');
  const tampered = `${head}.${Buffer.from(JSON.stringify({ sub: 'mallory', dev: 'phone' })).toString('base64url')}.${signature}`;
  expect(payload).toBeDefined();
  const expired = await new SignJWT({ dev: 'phone' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('alice')
    .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
    .sign(new TextEncoder().encode(SECRET));
  for (const token of [foreign, tampered, 'not.a.token', '']) await expect(authority.verify(token)).rejects.toThrow(new TokenError('token is not valid'));
  await expect(authority.verify(expired)).rejects.toThrow(new TokenError('token expired'));
  // The refusals did not spoil the kept key.
  await expect(authority.verify(own)).resolves.toMatchObject({ user: 'alice' });
});

it('refuses to mint for a name that is not valid', async () => {
  await expect(new TokenAuthority(SECRET).mint('not a name', 'd1')).rejects.toBeInstanceOf(TokenError);
});

it('refuses another algorithm, alg none, a crit header it does not know, a token not yet valid, a non-numeric time claim', async () => {
  const authority = new TokenAuthority(SECRET);
  const key = new TextEncoder().encode(SECRET);
  const signed = (header: Record<string, unknown>, claims: unknown) => {
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const input = `${part(header)}.${part(claims)}`;
    return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
  };
  const claims = { sub: 'alice', dev: 'phone' };
  await expect(authority.verify(signed({ alg: 'HS256' }, claims))).resolves.toEqual({ user: 'alice', device: 'phone' });
  const hs512 = await new SignJWT({ dev: 'phone' }).setProtectedHeader({ alg: 'HS512' }).setSubject('alice').sign(key);
  const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
  const refused = [
    hs512,
    none,
    signed({ alg: 'HS256', crit: ['exp'] }, claims),
    signed({ alg: 'HS256' }, { ...claims, nbf: Math.floor(Date.now() / 1000) + 600 }),
    signed({ alg: 'HS256' }, { ...claims, exp: 'tomorrow' }),
    signed({ alg: 'HS256' }, { ...claims, iat: '1' }),
    signed({ alg: 'HS256' }, ['not', 'an', 'object']),
  ];
  for (const [i, token] of refused.entries()) await expect(authority.verify(token), `refused[${i}]`).rejects.toThrow(new TokenError('token is not valid'));
  await expect(authority.verify(signed({ alg: 'HS256' }, { ...claims, exp: Math.floor(Date.now() / 1000) }))).rejects.toThrow(new TokenError('token expired'));
});
