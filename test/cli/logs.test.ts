/** The log lines an operator needs from `sequent-server serve`: what started where, who connected, what was refused or cut. */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, expect, it } from 'vitest';
import { spawnServer, TEST_SECRET } from '../support/cli-server.js';
import { startTestServer, WireClient } from '../support/wire.js';

const root = mkdtempSync(join(tmpdir(), 'sequent-logs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

type Line = Record<string, unknown>;

function parsed(lines: string[]): Line[] {
  return lines.flatMap((chunk) => chunk.split('\n')).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!check()) throw new Error(`never logged: ${what}`);
}

it('logs the start (ISO time, absolute data dir, secret source), each connection with user, device and close code, and each refused token', async () => {
  const server = await spawnServer(join(root, 'serve'), ['--log-level', 'debug']);
  try {
    const logs = () => parsed(server.logs);
    const start = logs().find((l) => l['msg'] === 'listening')!;
    expect(start['time']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(start).toMatchObject({ data: join(root, 'serve'), secret: 'SEQUENT_SECRET', store: 'sqlite' });

    const { TokenAuthority } = await import('../../packages/server/src/server/index.js');
    const alice = await WireClient.open(server.url);
    await alice.hello(await new TokenAuthority(TEST_SECRET).mint('alice', 'phone'));
    alice.socket.close(4000, 'bye');
    await eventually(() => logs().some((l) => l['msg'] === 'connection closed' && l['user'] === 'alice'), 'connection closed');
    expect(logs().find((l) => l['msg'] === 'connection opened')).toMatchObject({ user: 'alice', device: 'phone' });
    expect(logs().find((l) => l['msg'] === 'connection closed')).toMatchObject({ user: 'alice', device: 'phone', code: 4000 });

    const badToken = await new TokenAuthority('another-secret-0123456789abcdefghijkl').mint('mallory', 'x');
    const mallory = await WireClient.open(server.url);
    await mallory.hello(badToken);
    await eventually(() => logs().some((l) => l['msg'] === 'token refused'), 'token refused');
    const refused = logs().find((l) => l['msg'] === 'token refused')!;
    expect(refused).toMatchObject({ level: 30, reason: 'token is not valid' });
    expect(JSON.stringify(logs())).not.toContain(badToken);
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
});

it('logs a slow-consumer cut with the user and device', async () => {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) }));
  const s = await startTestServer({ maxBuffered: 64 * 1024, logger });
  try {
    const writer = await s.connect('alice');
    const reader = await s.connect('bob', 'tablet');
    await writer.request({ t: 'create', conv: 'g:big', members: ['bob'] });
    (reader.socket as unknown as { _socket: Socket })._socket.pause();
    const body = 'x'.repeat(60_000);
    const cut = () => parsed(lines).some((l) => l['msg'] === 'slow consumer cut');
    for (let dseq = 0; !cut() && dseq < 2000; ) {
      await Promise.all(Array.from({ length: 20 }, () => writer.request({ t: 'send', conv: 'g:big', cmid: `c${++dseq}`, dseq, body })));
    }
    (reader.socket as unknown as { _socket: Socket })._socket.resume();
    await eventually(cut, 'slow consumer cut');
    expect(parsed(lines).find((l) => l['msg'] === 'slow consumer cut')).toMatchObject({ user: 'bob', device: 'tablet', code: 4429 });
  } finally {
    await s.stop();
  }
});
