/**
 * A TCP relay on 127.0.0.1 that delays every chunk by half of `rttMs` in each
 * direction, order kept: a database on another host, as far as round trips go,
 * for a benchmark whose database runs on this one.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface DelayRelay {
  port: number;
  close(): Promise<void>;
}

function delayed(from: Socket, to: Socket, oneWayMs: number): void {
  let lastDue = 0;
  from.on('data', (chunk: Buffer) => {
    // never earlier than the chunk before: a delay must not reorder a TCP stream
    const due = Math.max(lastDue, performance.now() + oneWayMs);
    lastDue = due;
    setTimeout(() => to.write(chunk), due - performance.now());
  });
  from.on('end', () => setTimeout(() => to.end(), Math.max(0, lastDue - performance.now())));
  from.on('error', () => to.destroy());
}

export async function startDelayRelay(host: string, port: number, rttMs: number): Promise<DelayRelay> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
    }
    delayed(client, upstream, rttMs / 2);
    delayed(upstream, client, rttMs / 2);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
