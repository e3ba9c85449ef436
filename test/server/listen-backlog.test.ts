/**
 * The server listens with a deep accept queue: in a reconnect storm the kernel holds the
 * handshakes that arrive while the event loop is busy instead of dropping them.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { LISTEN_BACKLOG } from '../../packages/server/src/server/server.js';
import { startTestServer } from '../support/wire.js';

/** The listening socket's backlog as the kernel reports it (ss prints it as Send-Q), or undefined without ss. */
function listenBacklog(port: number): number | undefined {
  let out: string;
  try {
    out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
  } catch {
    return undefined;
  }
  const fields = out.trim().split(/\s+/);
  return fields.length >= 3 ? Number(fields[2]) : undefined;
}

it('listens with a backlog of LISTEN_BACKLOG, as far as net.core.somaxconn allows', async (context) => {
  const test = await startTestServer();
  try {
    const backlog = listenBacklog(test.server.port);
    if (backlog === undefined) return context.skip();
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    expect(backlog).toBe(Math.min(LISTEN_BACKLOG, somaxconn));
  } finally {
    await test.stop();
  }
});
