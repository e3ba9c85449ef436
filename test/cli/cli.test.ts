/** The `sequent` command as an operator runs it: flags validated at start, errors that name the flag. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TokenAuthority } from '../../src/server/index.js';
import { BIN, spawnServer, TEST_SECRET } from '../support/cli-server.js';
import { WireClient } from '../support/wire.js';

const dataDir = mkdtempSync(join(tmpdir(), 'sequent-cli-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function run(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 15_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('sequent serve', () => {
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

describe('sequent token', () => {
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

  it('generates one secret in the data dir when SEQUENT_SECRET is unset or empty, and keeps using it', async () => {
    const dir = join(dataDir, 'gen');
    const a = run(['token', '--user', 'u', '--device', 'd', '--data', dir], { SEQUENT_SECRET: '' });
    const b = run(['token', '--user', 'u', '--device', 'd', '--data', dir], { SEQUENT_SECRET: '' });
    expect(a.code).toBe(0);
    const kept = new TokenAuthority(readFileSync(join(dir, 'secret'), 'utf8').trim());
    for (const printed of [a.stdout, b.stdout]) expect(await kept.verify(printed.trim())).toEqual({ user: 'u', device: 'd' });
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
