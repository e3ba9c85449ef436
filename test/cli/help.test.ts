/** Help and version, the first thing a new operator types. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { run } from './run.js';

const { version } = JSON.parse(readFileSync(new URL('../../packages/server/package.json', import.meta.url), 'utf8')) as { version: string };

describe('sequent-server help', () => {
  it.each([['--help'], ['-h'], ['help']])('%s lists the commands on stdout and exits 0', (flag) => {
    const result = run([flag]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    for (const command of ['serve', 'token', 'chaos']) expect(result.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
  });

  it.each([['serve'], ['token'], ['chaos']])('%s --help, -h and `help <command>` print its flags and exit 0', (command) => {
    for (const args of [[command, '--help'], [command, '-h'], ['help', command]]) {
      const result = run(args);
      expect(result.code, args.join(' ')).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^usage: sequent-server ${command} \\[options\\]`));
      expect(result.stdout).toMatch(/--help/);
    }
  });

  it('token --help works without the flags token requires', () => {
    const result = run(['token', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/--ttl .*\(default 24h\)/);
  });

  it('`help` of an unknown command lists the commands and exits 2', () => {
    const result = run(['help', 'fly']);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(/serve/);
  });
});

it.each([['--version'], ['-V'], ['version']])('%s prints the package version', (flag) => {
  const result = run([flag]);
  expect(result.code).toBe(0);
  expect(result.stdout).toBe(`sequent-server ${version}\n`);
});
