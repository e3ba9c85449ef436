/**
 * Real services for tests that claim to test them. URLs come from the environment
 * with the local defaults. An unreachable service skips its tests with one loud
 * line, except under CI=true, where it fails them.
 */
import net from 'node:net';

export const POSTGRES_URL = process.env['SEQUENT_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env['SEQUENT_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const NATS_URL = process.env['SEQUENT_TEST_NATS_URL'] ?? 'nats://127.0.0.1:4222';

const inCI = process.env['CI'] === 'true';

function reachable(url: string, defaultPort: number, timeoutMs = 1000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname || '127.0.0.1', port: Number(port || defaultPort) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Resolves true when the service answers. When it does not: under CI=true it throws
 * (the suite fails); elsewhere it prints one loud line and resolves false, and the
 * caller skips (`describe.skipIf(!available)`).
 */
export async function serviceAvailable(name: 'postgres' | 'redis' | 'nats', url: string): Promise<boolean> {
  const defaultPort = { postgres: 5432, redis: 6379, nats: 4222 }[name];
  if (await reachable(url, defaultPort)) return true;
  const line = `!!! ${name} is not reachable at ${url}: its tests are ${inCI ? 'FAILING (CI=true)' : 'SKIPPED'} !!!`;
  if (inCI) throw new Error(line);
  process.stderr.write(`${line}\n`);
  return false;
}
