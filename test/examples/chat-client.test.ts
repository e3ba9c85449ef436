/** The example chat client, run as a user would: lines typed go out in order and the other side's messages print. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/wire.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/dist/chat-client.js', import.meta.url));
let t: TestServer | undefined;
const dir = mkdtempSync(join(tmpdir(), 'sequent-chat-'));
afterEach(async () => {
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('sends typed lines in order and prints the conversation', async () => {
  t = await startTestServer();
  const bob = await t.connect('bob', 'phone');
  await bob.request({ t: 'send', conv: 'dm:alice:bob', cmid: 'b1', dseq: 1, body: { text: 'hello alice' } });

  const child = spawn(process.execPath, [EXAMPLE, t.server.url, await t.server.mintToken('alice', 'laptop'), 'dm:alice:bob', join(dir, 'alice.json')], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stdin.write('first\nsecond\n');
  child.stdin.end();
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code).toBe(0);

  expect(out).toContain('#1 bob: hello alice');
  const pushes = await bob.waitForPushes(2);
  expect(pushes.map((p) => [p.seq, p.from, (p.body as { text: string }).text])).toEqual([
    [2, 'alice', 'first'],
    [3, 'alice', 'second'],
  ]);
}, 20_000);

it('creates a group with /create, sends into it, and prints a refused send instead of crashing', async () => {
  t = await startTestServer();
  const bob = await t.connect('bob', 'phone');
  await bob.request({ t: 'create', conv: 'g:private', members: [] });
  const child = spawn(process.execPath, [EXAMPLE, t.server.url, await t.server.mintToken('alice', 'laptop'), 'g:private', join(dir, 'alice2.json')], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  child.stdin.write('not a member here\n/create g:team bob\nhello team\n');
  const lines = async (check: () => boolean) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  };
  await lines(() => /hello team/.test(out) || err.includes('forbidden'));
  await lines(() => err.includes('forbidden') && err.includes('created g:team'));
  child.stdin.end();
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(err).toMatch(/error forbidden: /);
  expect(err).toMatch(/created g:team at #1/);
  expect(code).toBe(0);
  const { msgs } = await bob.syncAll('g:team');
  expect(msgs.map((m) => [m.seq, m.kind, m.from])).toEqual([
    [1, 'system', 'alice'],
    [2, 'msg', 'alice'],
  ]);
  expect((msgs[1]!.body as { text: string }).text).toBe('hello team');
}, 20_000);
