/**
 * A byte-level TCP (or Unix socket) relay between one cluster node and a service
 * it depends on (PostgreSQL, NATS), which the chaos run can hurt:
 *
 * - `cut()`: every relayed connection destroyed at once, both sides (a restarted
 *   NATS server, a reset middlebox); new connections are accepted again at once.
 * - `blackhole(true)`: every byte in either direction vanishes and nothing is
 *   closed — the node's sockets stay open, writes succeed, answers never come,
 *   as when a firewall drops packets. New connections are accepted and then hear
 *   nothing either. `blackhole(false)` lets traffic flow again; what vanished
 *   stays lost, so the protocol on top of it is broken for those connections and
 *   it is up to the node (keepalives, timeouts) to give them up.
 * - `delayUpstream(ms)`: every later node→service chunk is held this long, order
 *   kept, as a slow path to the service would hold it.
 *
 * The kernel still acknowledges the bytes to the node's socket (the relay reads
 * them), so TCP keepalives and `tcp_user_timeout` on the node's side do not fire
 * here; the nftables drop (netns.ts) is the faithful one, this is the fallback
 * that works anywhere.
 */
import net from 'node:net';

export type Endpoint = { host: string; port: number } | { path: string };

export interface LinkProxy {
  /** Where the node connects: a loopback port, or the Unix socket path it listens on. */
  readonly listen: Endpoint;
  /** The loopback port, when it listens on TCP. */
  readonly port: number | undefined;
  /** Destroys every relayed connection, both sides. */
  cut(): void;
  /** While on, traffic in both directions is silently discarded and no socket is closed. */
  blackhole(on: boolean): void;
  readonly blackholed: boolean;
  /** Holds every later chunk towards the target this long (0: none); chunks keep their order. */
  delayUpstream(ms: number): void;
  /** Connections being relayed now. */
  connections(): number;
  readonly stats: { accepted: number; cut: number; droppedBytes: number };
  close(): Promise<void>;
}

export async function startLinkProxy(target: Endpoint, listen: Endpoint = { host: '127.0.0.1', port: 0 }): Promise<LinkProxy> {
  const live = new Set<net.Socket>();
  const stats = { accepted: 0, cut: 0, droppedBytes: 0 };
  let holed = false;
  let upstreamDelayMs = 0;
  const server = net.createServer((client) => {
    stats.accepted++;
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
    const relay = (to: net.Socket) => (chunk: Buffer) => {
      if (holed) stats.droppedBytes += chunk.length;
      else to.write(chunk);
    };
    const toUpstream = relay(upstream);
    // equal delays fire in order, so delayed chunks keep their order
    client.on('data', (chunk: Buffer) => (upstreamDelayMs === 0 ? toUpstream(chunk) : setTimeout(toUpstream, upstreamDelayMs, chunk)));
    upstream.on('data', relay(client));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in listen) server.listen(listen.path, resolve);
    else server.listen(listen.port, listen.host, resolve);
  });
  const address = server.address();
  const bound: Endpoint = typeof address === 'object' && address !== null ? { host: address.address, port: address.port } : { path: String(address) };
  return {
    listen: bound,
    port: 'port' in bound ? bound.port : undefined,
    cut() {
      stats.cut += live.size / 2;
      for (const socket of live) socket.destroy();
      live.clear();
    },
    blackhole(on) {
      holed = on;
    },
    get blackholed() {
      return holed;
    },
    delayUpstream(ms) {
      upstreamDelayMs = ms;
    },
    connections: () => live.size / 2,
    stats,
    close: async () => {
      for (const socket of live) socket.destroy();
      live.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `postgres://…@127.0.0.1:5432/db` with its host and port replaced (credentials, path and query kept). */
export function withHostPort(url: string, host: string, port: number): string {
  const u = new URL(url);
  u.hostname = host;
  u.port = String(port);
  return u.toString();
}

/** Host and port of a service URL, with the scheme's default port. */
export function endpointOf(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) };
}
