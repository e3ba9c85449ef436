/**
 * `serve` and the web chat: the page at / (built into the server package),
 * --no-web, and the demo sign-in that only --demo turns on.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { TokenAuthority } from '../../packages/server/src/server/index.js';
import { spawnServer, TEST_SECRET, type ServerProcess } from '../support/cli-server.js';
import { run } from './run.js';

const dataDir = mkdtempSync(join(tmpdir(), 'sequent-web-cli-'));
const running: ServerProcess[] = [];
afterAll(async () => {
  for (const server of running) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const built = readFileSync(new URL('../../packages/server/web/index.html', import.meta.url), 'utf8');

async function serve(name: string, args: string[] = []): Promise<ServerProcess> {
  const server = await spawnServer(join(dataDir, name), args);
  running.push(server);
  return server;
}

function demoToken(server: ServerProcess, body: unknown): Promise<Response> {
  return fetch(`${server.httpUrl}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

describe('serve and the web chat', () => {
  it('serves the built page at / with its script and style, and says where in the listening line', async () => {
    const server = await serve('default');
    const page = await fetch(`${server.httpUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'self'/);
    expect(await page.text()).toBe(built);
    for (const [path, type] of [['/app.js', /^text\/javascript/], ['/style.css', /^text\/css/]] as const) {
      const file = await fetch(`${server.httpUrl}${path}`);
      expect(file.status, path).toBe(200);
      expect(file.headers.get('content-type')).toMatch(type);
    }
    const listening = server.logs.find((line) => line.includes('"msg":"listening"'))!;
    expect(JSON.parse(listening)).toMatchObject({ web: `${server.httpUrl}/` });
    // The gateway's own routes are still its own.
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.httpUrl}/../secret`)).status).toBe(404);
    expect((await fetch(`${server.httpUrl}/%2e%2e/secret`)).status).toBe(404);
  });

  it('without --demo there is no token endpoint, the page is told so, and nothing logs a demo', async () => {
    const server = await serve('no-demo');
    expect((await demoToken(server, { user: 'ann', device: 'web1' })).status).toBe(404);
    expect(await (await fetch(`${server.httpUrl}/web-config.json`)).json()).toEqual({ demo: false });
    expect(server.logs.join('\n')).not.toMatch(/demo sign-in|"demo"/);
  });

  it('--demo mints a token of the server\'s secret for a typed name and device, warns at start, and refuses bad input', async () => {
    const server = await serve('demo', ['--demo']);
    expect(server.logs.some((line) => /"level":40.*demo sign-in is on/.test(line))).toBe(true);
    expect(await (await fetch(`${server.httpUrl}/web-config.json`)).json()).toEqual({ demo: true });
    const reply = await demoToken(server, { user: 'ann', device: 'browser-7' });
    expect(reply.status).toBe(200);
    const { token } = (await reply.json()) as { token: string };
    const claims = await new TokenAuthority(TEST_SECRET).verify(token);
    expect(claims).toMatchObject({ user: 'ann', device: 'browser-7' });
    expect(claims.expiresAt).toBeGreaterThan(Date.now());

    for (const bad of [{ user: 'a b', device: 'x' }, { user: 'ann' }, 'not json', [1]]) {
      const refused = await demoToken(server, bad);
      expect(refused.status, JSON.stringify(bad)).toBe(400);
      expect(await refused.json()).toMatchObject({ error: 'bad_request' });
    }
    expect((await demoToken(server, { user: 'ann', device: 'x', pad: 'y'.repeat(2000) })).status).toBe(413);
    expect((await fetch(`${server.httpUrl}/demo/token`)).status).toBe(405);
  });

  it('--no-web serves nothing at /', async () => {
    const server = await serve('no-web', ['--no-web']);
    expect((await fetch(`${server.httpUrl}/`)).status).toBe(404);
    expect((await fetch(`${server.httpUrl}/app.js`)).status).toBe(404);
    expect(JSON.parse(server.logs.find((line) => line.includes('"msg":"listening"'))!)).not.toHaveProperty('web');
  });

  it('refuses --demo with --no-web, and a value for the bool flags', () => {
    const both = run(['serve', '--data', join(dataDir, 'x'), '--demo', '--no-web']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--demo signs in to the web chat, which --no-web turns off/);
    const valued = run(['serve', '--data', join(dataDir, 'x'), '--demo=yes']);
    expect(valued.code).toBe(2);
    expect(valued.stderr).toMatch(/--demo takes true or false/);
  });

  it('lists --demo and --no-web in serve --help', () => {
    const help = run(['serve', '--help']);
    expect(help.stdout).toMatch(/^ {2}--demo .*local use only/m);
    expect(help.stdout).toMatch(/^ {2}--no-web .*web chat/m);
  });
});

it('npm pack of sequent-server ships the built page', () => {
  const cwd = fileURLToPath(new URL('../../packages/server', import.meta.url));
  const packed = execFileSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd, encoding: 'utf8' });
  const [{ files }] = JSON.parse(packed) as [{ files: { path: string }[] }];
  const paths = files.map((file) => file.path);
  for (const path of ['web/index.html', 'web/app.js', 'web/style.css', 'dist/src/server/web.js']) expect(paths).toContain(path);
}, 60_000);
