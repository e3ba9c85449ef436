/**
 * Two SDK clients talk to the real server through the message-level fault
 * proxy (src/chaos/proxy.ts): frames delayed by random amounts (so the two
 * connections interleave differently), client frames duplicated, connections
 * cut at random and all at once. Both still end with the same gapless,
 * duplicate-free view holding every message at its acked seq.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../../packages/server/src/chaos/proxy.js';
import type { SendHandle } from '../../packages/client/src/client/send-handle.js';
import { webSocketTransport, type WebSocketConstructor } from '../../packages/client/src/client/transport.js';
import { startTestServer, type TestServer } from '../support/wire.js';
import { expectConverged, realClient } from './converge.js';

let server: TestServer;
let proxy: FaultProxy;
const transport = webSocketTransport(WebSocket as unknown as WebSocketConstructor);

beforeAll(async () => {
  server = await startTestServer({ holdMs: 300 });
  proxy = await startFaultProxy({ target: server.server.url, seed: 20_241_122 });
});

afterAll(async () => {
  await proxy.close();
  await server.stop();
});

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('SDK through the fault proxy', () => {
  it('two clients converge despite delays, duplicated frames and cut connections', async () => {
    const alice = realClient(server, transport, 'alice', 'a-chaos', {}, proxy.url);
    const bob = realClient(server, transport, 'bob', 'b-chaos', { delivery: 'immediate' }, proxy.url);
    try {
      await Promise.all([alice.start(), bob.start()]);
      await Promise.all([alice.ready(), bob.ready()]);
      // The group exists before the faults start: create is not idempotent.
      await alice.create('g:chaos', ['bob']);
      proxy.setFaults({
        toServerDelayMs: { min: 0, max: 15 },
        toClientDelayMs: { min: 0, max: 15 },
        duplicateToServer: 0.1,
        cutPerFrame: 0.01,
      });
      const handles: SendHandle[] = [];
      for (let round = 0; round < 10; round++) {
        for (let i = 0; i < 5; i++) {
          handles.push(alice.send('g:chaos', { round, i, from: 'alice' }));
          handles.push(bob.send('g:chaos', { round, i, from: 'bob' }));
        }
        if (round === 3 || round === 7) proxy.cutAll();
        await pause(20);
      }
      await Promise.all(handles.map((h) => h.whenSent()));
      proxy.setFaults({ cutPerFrame: 0 });
      await expectConverged([alice, bob], 'g:chaos', handles, 101, 30_000);
      expect(proxy.stats.cutByCall).toBeGreaterThan(0);
      expect(proxy.stats.duplicated).toBeGreaterThan(0);
      expect(proxy.stats.connections).toBeGreaterThan(2);
    } finally {
      await Promise.all([alice.stop(), bob.stop()]);
    }
  });
});
