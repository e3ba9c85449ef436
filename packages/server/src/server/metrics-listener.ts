/**
 * /metrics on a listen address of its own, never on the public port: what the
 * server counts (connections, users' traffic, commit timings) is for the operator's
 * scraper, not for every client that can reach the WebSocket. Plain HTTP on
 * loopback by default; /healthz is answered here too, for a sidecar that probes
 * both from the same place.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServerMetrics } from './metrics.js';

/** The metrics port could not be bound; `code` is the system's (EADDRINUSE, EACCES, …). */
export class MetricsListenError extends Error {
  constructor(
    readonly code: string | undefined,
    readonly address: string,
    cause: unknown,
  ) {
    super(`cannot listen on ${address} for metrics${code === undefined ? '' : ` (${code})`}`, { cause });
    this.name = 'MetricsListenError';
  }
}

export interface MetricsListener {
  readonly port: number;
  /** http://host:port/metrics */
  readonly url: string;
  close(): Promise<void>;
}

export async function listenForMetrics(metrics: ServerMetrics, host: string, port: number, serving: () => boolean): Promise<MetricsListener> {
  const http: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        () => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'metrics_failed' }));
        },
      );
      return;
    }
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(serving() ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: serving() ? 'ok' : 'draining' }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not_found' }));
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', (error: NodeJS.ErrnoException) => reject(new MetricsListenError(error.code, `${host}:${port}`, error)));
    http.listen(port, host, () => {
      http.removeAllListeners('error');
      resolve();
    });
  });
  const bound = (http.address() as AddressInfo).port;
  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  return {
    port: bound,
    url: `http://${hostForUrl}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}
