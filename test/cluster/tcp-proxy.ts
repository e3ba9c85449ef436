/** A loopback TCP proxy a test can cut (every connection destroyed at once), to make a client reconnect without touching the shared server. */
import net from 'node:net';

export interface TcpProxy {
  url(scheme: string): string;
  /** Destroys every proxied connection, both sides; new connections are accepted again at once. */
  cut(): void;
  /** Holds every later client→server chunk this long (order kept), as a slow path to the server would. */
  delayUpstream(ms: number): void;
  connections(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const live = new Set<net.Socket>();
  let upstreamDelayMs = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    live.add(client);
    live.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    // equal delays fire in order, so chunks keep their order
    client.on('data', (chunk: Buffer) => {
      if (upstreamDelayMs === 0) upstream.write(chunk);
      else setTimeout(() => upstream.write(chunk), upstreamDelayMs);
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    cut: () => {
      for (const socket of live) socket.destroy();
      live.clear();
    },
    delayUpstream: (ms) => {
      upstreamDelayMs = ms;
    },
    connections: () => live.size / 2,
    close: async () => {
      for (const socket of live) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
