/** The `sequent` command as an operator runs it: flags validated at start, errors that name the flag. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TokenAuthority } from '../../packages/server/src/server/index.js';
import { spawnServer, TEST_SECRET } from '../support/cli-server.js';
import { WireClient } from '../support/wire.js';
import { run } from './run.js';

const dataDir = mkdtempSync(join(tmpdir(), 'sequent-cli-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('sequent-server serve', () => {
  it.each([
    [['--port', '70000'], /--port must be at most 65535/],
    [['--port', 'eighty'], /--port takes an integer/],
    [['--hold-ms', '-1'], /--hold-ms must be at least 0/],
    [['--durability', 'sometimes'], /--durability takes full or process/],
    [['--log-level', 'loud'], /--log-level takes one of/],
    [['--colour', 'blue'], /unknown flag --colour/],
    [['--postgres', 'mysql://db'], /invalid flag --postgres: expected a postgres:\/\/ URL/],
  ])('refuses %j at start with a message naming the flag', (args, message) => {
    const result = run(['serve', '--data', dataDir, ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it('names the address when the port is taken', async () => {
    const first = await spawnServer(join(dataDir, 'taken'));
    try {
      const result = run(['serve', '--data', join(dataDir, 'taken2'), '--port', String(first.port)]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
    } finally {
      first.child.kill('SIGTERM');
      await first.exited;
    }
  });
});

describe('sequent-server token', () => {
  it('prints a token the server accepts for that user and device', async () => {
    const result = run(['token', '--user', 'alice', '--device', 'phone', '--ttl', '60'], { SEQUENT_SECRET: TEST_SECRET });
    expect(result.code).toBe(0);
    const token = result.stdout.trim();
    const claims = await new TokenAuthority(TEST_SECRET).verify(token);
    expect(claims).toMatchObject({ user: 'alice', device: 'phone' });

    const server = await spawnServer(join(dataDir, 'tok'));
    try {
      const client = await WireClient.open(server.url);
      expect(await client.hello(token)).toMatchObject({ t: 'welcome', user: 'alice', device: 'phone' });
      client.close();
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });

  it('uses the secret serve generated in the data dir when SEQUENT_SECRET is unset or empty', async () => {
    const dir = join(dataDir, 'gen');
    const server = await spawnServer(dir, [], 0, '');
    server.child.kill('SIGTERM');
    await server.exited;
    const printed = run(['token', '--user', 'u', '--device', 'd', '--data', dir], { SEQUENT_SECRET: '' });
    expect(printed.code).toBe(0);
    const kept = new TokenAuthority(readFileSync(join(dir, 'secret'), 'utf8').trim());
    expect(await kept.verify(printed.stdout.trim())).toMatchObject({ user: 'u', device: 'd' });
  });

  it('never creates a secret: a mistyped --data is an error, not a token no server accepts', () => {
    const typo = join(dataDir, 'dta');
    const result = run(['token', '--user', 'u', '--device', 'd', '--data', typo]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^sequent-server token: no secret at .*dta\/secret: is --data the server's data directory\?/);
    expect(() => readFileSync(join(typo, 'secret'))).toThrow(/ENOENT/);
  });

  it.each([
    ['SEQUENT_SECRET', { SEQUENT_SECRET: 'x'.repeat(31) }, /SEQUENT_SECRET is 31 bytes; at least 32 are needed/],
    ['a secret file', {}, /the secret in .*short\/secret is 5 bytes; at least 32 are needed/],
  ])('refuses %s shorter than 32 bytes, in token and serve, and leaves the file alone', (_what, env, message) => {
    const dir = join(dataDir, 'short');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'secret'), 'short\n');
    for (const args of [['token', '--user', 'u', '--device', 'd'], ['serve', '--port', '0']]) {
      const result = run([...args, '--data', dir], env);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(readFileSync(join(dir, 'secret'), 'utf8')).toBe('short\n');
  });

  it('gives tokens a 24 h expiry by default, another with --ttl, none with --ttl 0', () => {
    const claims = (args: string[]) => {
      const result = run(['token', '--user', 'u', '--device', 'd', ...args], { SEQUENT_SECRET: TEST_SECRET });
      expect(result.code).toBe(0);
      const payload = JSON.parse(Buffer.from(result.stdout.trim().split('.')[1]!, 'base64url').toString()) as { iat: number; exp?: number };
      return payload.exp === undefined ? undefined : payload.exp - payload.iat;
    };
    expect(claims([])).toBe(24 * 3600);
    expect(claims(['--ttl', '90m'])).toBe(90 * 60);
    expect(claims(['--ttl', '60'])).toBe(60);
    expect(claims(['--ttl', '0'])).toBeUndefined();
  });

  it('requires --user and --device and validates them', () => {
    expect(run(['token', '--device', 'd']).stderr).toMatch(/--user is required/);
    expect(run(['token', '--user', 'bad name', '--device', 'd']).stderr).toMatch(/--user must be 1-64 characters/);
  });
});

it('lists the commands for an unknown one', () => {
  const result = run(['fly']);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/unknown command "fly"/);
  expect(result.stderr).toMatch(/serve/);
});
