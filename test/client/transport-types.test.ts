/**
 * `webSocketTransport(WebSocket)` as the docs write it, with `ws` and with the
 * DOM's class. The calls are type-checked by `npm run typecheck` (tsc over
 * test/), so a signature that stops fitting either class fails the build.
 */
import WebSocket from 'ws';
import { expect, expectTypeOf, it } from 'vitest';
import { webSocketTransport, type Transport } from '../../packages/client/src/client/index.js';

it('takes the ws class without a cast', () => {
  expectTypeOf(webSocketTransport(WebSocket)).toEqualTypeOf<Transport>();
  expect(typeof webSocketTransport(WebSocket).open).toBe('function');
});

it("takes the DOM's WebSocket class without a cast", () => {
  // Node 20 has no global WebSocket: only the types are checked here, and the call not made.
  const inBrowser = (): Transport => webSocketTransport(globalThis.WebSocket);
  expectTypeOf(inBrowser).returns.toEqualTypeOf<Transport>();
  const domClass: typeof globalThis.WebSocket | undefined = undefined;
  expectTypeOf(webSocketTransport).toBeCallableWith(domClass ?? globalThis.WebSocket);
});
