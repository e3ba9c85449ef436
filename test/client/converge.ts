/** Shared by the real-server tests: SDK clients on a TestServer, and the convergence check. */
import { expect } from 'vitest';
import { SequentClient } from '../../packages/client/src/client/client.js';
import type { ClientOptions } from '../../packages/client/src/client/options.js';
import type { SendHandle } from '../../packages/client/src/client/send-handle.js';
import type { Transport } from '../../packages/client/src/client/transport.js';
import type { TestServer } from '../support/wire.js';
import { eventually } from './helpers.js';

export function realClient(
  server: TestServer,
  transport: Transport,
  user: string,
  device: string,
  options: Partial<ClientOptions> = {},
  url = server.server.url,
): SequentClient {
  return new SequentClient({
    url,
    getToken: () => server.server.mintToken(user, device),
    transport,
    gapWaitMs: 50,
    ackTimeoutMs: 1000,
    backoff: { baseMs: 20, maxMs: 200 },
    sendDeadlineMs: Number.POSITIVE_INFINITY,
    requestTimeoutMs: 5000,
    ...options,
  });
}

/**
 * Waits until every client has delivered seqs 1..count of `conv`, then checks
 * that all views are the same entries, gapless, each cmid once, every handle
 * at its acked seq, and each device's messages in dseq order.
 */
export async function expectConverged(clients: SequentClient[], conv: string, handles: SendHandle[], count: number, timeout = 20_000): Promise<void> {
  await eventually(() => {
    for (const client of clients) expect(client.cursor(conv)).toBe(count);
  }, timeout);
  const views = clients.map((client) => client.entries(conv).map((e) => ({ seq: e.seq, mid: e.mid, ts: e.ts, cmid: e.cmid, from: e.from, dev: e.dev, body: e.body })));
  const [first, ...others] = views;
  expect(first?.map((e) => e.seq)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  for (const other of others) expect(other).toEqual(first);
  const cmids = (first ?? []).flatMap((e) => (e.cmid === undefined ? [] : [e.cmid]));
  expect(new Set(cmids).size).toBe(cmids.length);
  for (const handle of handles) {
    expect(handle.state).toBe('sent');
    expect(first?.[(handle.seq as number) - 1]?.cmid).toBe(handle.cmid);
  }
  const entries = clients[0]?.entries(conv) ?? [];
  const byDevice = new Map<string, number[]>();
  for (const entry of entries) {
    if (entry.dseq === undefined) continue;
    const key = `${entry.from}/${entry.dev}`;
    byDevice.set(key, [...(byDevice.get(key) ?? []), entry.dseq]);
  }
  for (const dseqs of byDevice.values()) expect(dseqs).toEqual(Array.from({ length: dseqs.length }, (_, i) => i + 1));
}
