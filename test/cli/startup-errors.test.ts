/** A start that cannot work says why in one line naming the flag, never with a stack trace. */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { BIN, TEST_SECRET } from '../support/cli-server.js';
import { run, type RunResult } from './run.js';

const root = mkdtempSync(join(tmpdir(), 'sequent-start-'));
// Readable by the unprivileged user the read-only test runs as.
chmodSync(root, 0o755);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Whether every directory above `path` lets others through and the file lets them read it. */
function othersCanReach(path: string): boolean {
  if ((statSync(path).mode & 0o004) === 0) return false;
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (dir === dirname(dir)) return true;
  }
}

function expectOneLine(result: RunResult, message: RegExp): void {
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(message);
  expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe('sequent-server serve --data', () => {
  const file = join(root, 'a-file');
  writeFileSync(file, 'not a directory');

  it('names a data dir that is a file', () => {
    expectOneLine(run(['serve', '--port', '0', '--data', file]), /^sequent-server serve: --data .*a-file is a file, not a directory/);
  });

  it('names a data dir under a file', () => {
    expectOneLine(run(['serve', '--port', '0', '--data', join(file, 'data')]), /^sequent-server serve: --data .*a-file\/data is under a file/);
  });

  // Root writes anywhere, so as root the CLI runs as an unprivileged user: that user must be
  // able to reach the package (a clone under a private 0700 directory, as CI's may be, is not).
  const asRoot = process.getuid?.() === 0;
  const reachable = !asRoot || othersCanReach(BIN);
  if (!reachable) console.warn(`SKIP: ${BIN} is not readable by other users, so the read-only data dir cannot be tried as one`);

  it.skipIf(!reachable)('names a data dir this user cannot write', () => {
    const readOnly = join(root, 'read-only');
    mkdirSync(readOnly);
    chmodSync(readOnly, 0o555);
    const asUser = asRoot ? { uid: 65534, gid: 65534 } : {};
    const result = run(['serve', '--port', '0', '--data', readOnly], { SEQUENT_SECRET: TEST_SECRET, HOME: root }, asUser);
    expectOneLine(result, /^sequent-server serve: --data .*read-only is not writable by this user \(EACCES\)/);
  });
});

describe('sequent-server serve --postgres', async () => {
  const available = await serviceAvailable('postgres', POSTGRES_URL);

  it.skipIf(!available)('answers a URL without a user (the README example) with one line naming --postgres', () => {
    const url = new URL(POSTGRES_URL);
    const result = run(['serve', '--port', '0', '--data', join(root, 'pg'), '--postgres', `postgres://${url.host}/sequent_no_such_db`], {
      SEQUENT_SECRET: TEST_SECRET,
      PGUSER: '',
      USER: 'sequent_no_such_role',
    });
    // The OS user name stands in for the missing one, as with psql; the server's verdict is one line.
    expectOneLine(result, /^sequent-server serve: cannot use the database given by --postgres \((28000|28P01|3D000): .*sequent_no_such_(role|db)/);
  });

  it('answers an unreachable database with one line naming --postgres', () => {
    const result = run(['serve', '--port', '0', '--data', join(root, 'pg2'), '--postgres', 'postgres://u@127.0.0.1:1/db'], { SEQUENT_SECRET: TEST_SECRET });
    expectOneLine(result, /^sequent-server serve: cannot use the database given by --postgres \(ECONNREFUSED/);
  });
});
