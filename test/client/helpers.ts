/** Shared set-up for the SDK tests over the fake server. */
import { vi } from 'vitest';
import { SequentClient } from '../../packages/client/src/client/client.js';
import type { ClientOptions } from '../../packages/client/src/client/options.js';
import { MemoryClientStore } from '../../packages/client/src/client/store.js';
import type { FakeServer } from './fake-server.js';

/** Fast timings so that retries and gap fills happen within milliseconds. */
export const FAST: Partial<ClientOptions> = {
  gapWaitMs: 20,
  ackTimeoutMs: 40,
  backoff: { baseMs: 5, maxMs: 20 },
  pingIntervalMs: 60_000,
  requestTimeoutMs: 2000,
};

export function fakeClient(fake: FakeServer, user: string, device: string, options: Partial<ClientOptions> = {}): SequentClient {
  return new SequentClient({
    url: 'ws://fake.test/v1/ws',
    token: `${user}/${device}`,
    transport: fake.transport,
    store: new MemoryClientStore(),
    ...FAST,
    ...options,
  });
}

/** Waits (polling) until `check` passes; fails with its last error after `timeout` ms. */
export async function eventually(check: () => void, timeout = 5000): Promise<void> {
  await vi.waitFor(check, { timeout, interval: 5 });
}

export function seqsOf(client: SequentClient, conv: string): number[] {
  return client.entries(conv).map((entry) => entry.seq);
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
