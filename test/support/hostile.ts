/**
 * Helpers for the hardening tests: a real `sequent-server serve` process, clients of
 * it, its memory as the kernel reports it, and a bystander whose requests must
 * keep being served whatever the attacker does.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { TokenAuthority } from '../../packages/server/src/server/index.js';
import { spawnServer, TEST_SECRET, type ServerProcess } from './cli-server.js';
import { WireClient } from './wire.js';

export const tokens = new TokenAuthority(TEST_SECRET);

export interface HostileServer extends ServerProcess {
  dataDir: string;
  stop(): Promise<void>;
}

export async function startHostileServer(args: string[] = []): Promise<HostileServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sequent-hostile-'));
  const server = await spawnServer(join(dataDir, 'data'), ['--durability', 'process', ...args]);
  return {
    ...server,
    dataDir: join(dataDir, 'data'),
    async stop() {
      server.child.kill('SIGTERM');
      await server.exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function connectAs(server: { url: string }, user: string, device = 'd1', ttlSeconds?: number): Promise<WireClient> {
  const client = await WireClient.open(server.url);
  const welcome = await client.hello(await tokens.mint(user, device, ttlSeconds));
  if (welcome.t !== 'welcome') throw new Error(`hello failed: ${JSON.stringify(welcome)}`);
  return client;
}

/** The server's resident memory, in MiB. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kib / 1024;
}

let bystanders = 0;

/** A user the attack has nothing to do with: a fresh connection's send is acked, and a ping answered. */
export async function expectBystanderServed(server: { url: string }): Promise<void> {
  const n = ++bystanders;
  const client = await connectAs(server, 'bystander', `b${n}`);
  const ack = await client.request({ t: 'send', conv: 'dm:bystander:friend', cmid: `by-${n}-${Date.now()}`, dseq: 1, body: { n } });
  expect(ack).toMatchObject({ t: 'ack', conv: 'dm:bystander:friend' });
  expect(await client.request({ t: 'ping' })).toMatchObject({ t: 'pong' });
  client.close();
}

/** Resolves with the close code, or 'open' if the connection is still open after `ms`. */
export async function closedWithin(client: WireClient, ms: number): Promise<number | 'open'> {
  const result = await Promise.race([client.closed.then((c) => c.code), new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), ms))]);
  return result;
}

/** Stops the socket from reading: the server's writes to it pile up, as with a client that never reads. */
export function stopReading(client: WireClient): void {
  (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
}
