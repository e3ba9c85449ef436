/**
 * The packages as a user gets them: an app that needs only the SDK installs
 * sequent-client and what it truly needs, nothing of the server; the server's
 * entry points load a database driver only when the caller asks for its adapter;
 * and the docs name only commands and import paths that exist.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLIENT_DIR = join(ROOT, 'packages', 'client');
const SERVER_DIR = join(ROOT, 'packages', 'server');

interface PackageJson {
  name: string;
  private?: boolean;
  bin?: Record<string, string>;
  exports: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}
const manifest = (dir: string): PackageJson => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;

const scratch = mkdtempSync(join(tmpdir(), 'sequent-packaging-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Which of the database drivers a fresh Node process has loaded after importing `specifiers`, in order. */
function driversLoadedBy(...specifiers: string[]): string[] {
  const script = `
    import { createRequire } from 'node:module';
    const loaded = () => Object.keys(createRequire(import.meta.url).cache);
    for (const s of ${JSON.stringify(specifiers)}) await import(s);
    const drivers = new Set();
    for (const path of loaded()) {
      const m = /node_modules[\\\\/](better-sqlite3|pg|ioredis)[\\\\/]/.exec(path);
      if (m) drivers.add(m[1]);
    }
    console.log(JSON.stringify([...drivers].sort()));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: SERVER_DIR, encoding: 'utf8' });
  expect(run.stderr).toBe('');
  return JSON.parse(run.stdout) as string[];
}

describe('packages', () => {
  it('the SDK package depends on the schema library only, and nothing of the server', () => {
    const client = manifest(CLIENT_DIR);
    expect(client.name).toBe('sequent-client');
    expect(Object.keys(client.dependencies ?? {})).toEqual(['@sinclair/typebox']);
    expect(client.peerDependencies).toBeUndefined();
    expect(Object.keys(client.exports).sort()).toEqual(['.', './file-store', './package.json', './protocol']);
  });

  it('an app that installs only the SDK gets two packages, and can use the client and the protocol', () => {
    const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], { cwd: CLIENT_DIR, encoding: 'utf8' });
    const [{ filename, files }] = JSON.parse(packed) as [{ filename: string; files: { path: string }[] }];
    expect(files.map((f) => f.path)).toContain('dist/src/client/index.js');
    expect(files.some((f) => f.path.includes('.test.') || f.path.startsWith('src/'))).toBe(false);

    const app = join(scratch, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'an-app', version: '1.0.0', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', join(scratch, filename)], { cwd: app, encoding: 'utf8' });
    const installed = readdirSync(join(app, 'node_modules')).filter((n) => !n.startsWith('.'));
    expect(installed.sort()).toEqual(['@sinclair', 'sequent-client']);

    const use = `
      import { MemoryClientStore, SequentClient, newCmid } from 'sequent-client';
      import { DEFAULT_MAX_BODY, DEFAULT_MAX_FRAME, decodeClientFrame, dmConvId } from 'sequent-client/protocol';
      const text = JSON.stringify({ t: 'send', id: 1, conv: dmConvId('ann', 'bob'), cmid: newCmid(), dseq: 1, body: 'hi' });
      const frame = decodeClientFrame(text, DEFAULT_MAX_FRAME, DEFAULT_MAX_BODY);
      console.log(typeof SequentClient, typeof MemoryClientStore, frame.ok, frame.ok && frame.frame.t);`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', use], { cwd: app, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('function function true send');
  }, 120_000);

  it('sequent-server/store and sequent-server/seq load no database driver; each adapter subpath loads its own', () => {
    expect(driversLoadedBy('sequent-server/store', 'sequent-server/seq')).toEqual([]);
    expect(driversLoadedBy('sequent-server')).toEqual([]);
    expect(driversLoadedBy('sequent-server/store/sqlite')).toEqual(['better-sqlite3']);
    expect(driversLoadedBy('sequent-server/store/postgres')).toEqual(['pg']);
    expect(driversLoadedBy('sequent-server/seq/sqlite')).toEqual(['better-sqlite3']);
    expect(driversLoadedBy('sequent-server/seq/postgres')).toEqual(['pg']);
  });

  it('the server package installs one command, sequent-server, and every name the docs use exists', () => {
    const server = manifest(SERVER_DIR);
    const client = manifest(CLIENT_DIR);
    expect(server.name).toBe('sequent-server');
    expect(Object.keys(server.bin ?? {})).toEqual(['sequent-server']);
    const exported = new Set([
      ...Object.keys(server.exports).map((k) => join('sequent-server', k)),
      ...Object.keys(client.exports).map((k) => join('sequent-client', k)),
    ]);
    let named = 0;
    const pages = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((n) => n.endsWith('.md')).map((n) => join('docs', n))];
    for (const page of pages) {
      const text = readFileSync(join(ROOT, page), 'utf8');
      // `npx sequent` outside this repository runs an unrelated package of that name.
      expect(text, page).not.toMatch(/npx sequent(?![-\w])/);
      expect(text, page).not.toMatch(/\bsequent\/(client|server|store|seq|protocol)\b/);
      // Import paths, as in `from 'sequent-server/store'` or a lone `sequent-client/protocol` in backticks.
      const specifiers = [...text.matchAll(/from '(sequent-(?:client|server)[^']*)'|`(sequent-(?:client|server)(?:\/[a-z][a-z/-]*)?)`/g)].map((m) => m[1] ?? m[2]!);
      for (const name of specifiers) expect(exported, `${page}: ${name}`).toContain(name);
      named += specifiers.length;
    }
    // the docs do name import paths: a pattern that found none would check nothing
    expect(named).toBeGreaterThan(10);
  });
});
