/**
 * The seam between the SDK and the network: open a URL, send text, get text.
 * Protocol and state logic never touch a socket, so the SDK runs over the
 * browser's WebSocket, `ws` in Node, an in-memory pipe in tests, or any of
 * those wrapped by a harness that records or disturbs frames.
 *
 * Contract for implementations:
 * - `open()` returns at once; events fire only later (asynchronously), so the
 *   caller can set the handlers right after `open()` returns.
 * - `onopen` fires at most once; `onclose` fires exactly once, also when the
 *   connection never opened (after `onerror`), and nothing fires after it.
 * - `send()` before `onopen` or after `onclose` is ignored (never throws).
 */

export interface TransportConnection {
  send(text: string): void;
  close(code?: number, reason?: string): void;
  onopen: (() => void) | null;
  onmessage: ((text: string) => void) | null;
  onclose: ((code: number, reason: string) => void) | null;
  onerror: ((error: unknown) => void) | null;
}

export interface Transport {
  open(url: string): TransportConnection;
}

/**
 * The part of the WHATWG WebSocket the SDK uses (the browser's, Node 22's, or
 * `ws`'s). The handlers are typed `unknown` on purpose: each implementation
 * types its events its own way, and the SDK only ever sets them (see
 * `Handlers`), so any of those classes fits without a cast.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: unknown;
  onmessage: unknown;
  onclose: unknown;
  onerror: unknown;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** What the SDK assigns to a WebSocketLike's handlers. */
interface Handlers {
  onopen: (event: unknown) => void;
  onmessage: (event: { data: unknown }) => void;
  onclose: (event: { code: number; reason: string }) => void;
  onerror: (event: unknown) => void;
}

/**
 * Why a connection failed, from an error event: `ws` gives an Error (with
 * ECONNREFUSED, ENOTFOUND, a bad status…), a browser gives no reason at all.
 */
export function errorReason(event: unknown): unknown {
  if (typeof event !== 'object' || event === null) return event;
  const { error, message } = event as { error?: unknown; message?: unknown };
  if (error instanceof Error) return error;
  if (typeof message === 'string' && message !== '') return new Error(message);
  return event;
}

const OPEN = 1;

/**
 * A transport over a WebSocket class: the global one by default. In Node 20,
 * pass `WebSocket` from the `ws` package.
 */
export function webSocketTransport(WebSocketClass?: WebSocketConstructor): Transport {
  return {
    open(url: string): TransportConnection {
      const Ctor = WebSocketClass ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (!Ctor) {
        throw new TypeError('no global WebSocket: pass a WebSocket class, e.g. webSocketTransport(WebSocket) from the "ws" package');
      }
      const socket = new Ctor(url);
      let closed = false;
      const connection: TransportConnection = {
        send(text) {
          if (socket.readyState === OPEN) socket.send(text);
        },
        close(code, reason) {
          try {
            socket.close(code, reason);
          } catch {
            // A code the WebSocket refuses must not leave the connection open.
            socket.close();
          }
        },
        onopen: null,
        onmessage: null,
        onclose: null,
        onerror: null,
      };
      const handlers = socket as unknown as Handlers;
      handlers.onopen = () => connection.onopen?.();
      handlers.onmessage = (event) => {
        // Binary frames are not part of the protocol; ignore them.
        if (typeof event.data === 'string') connection.onmessage?.(event.data);
      };
      handlers.onerror = (event) => connection.onerror?.(errorReason(event));
      handlers.onclose = (event) => {
        if (closed) return;
        closed = true;
        connection.onclose?.(event.code, event.reason);
      };
      return connection;
    },
  };
}

/** What a tap sees: every frame in both directions, per connection (numbered from 1 in open order). */
export interface TransportTap {
  opened?(connection: number, url: string): void;
  sent?(connection: number, text: string): void;
  received?(connection: number, text: string): void;
  closed?(connection: number, code: number, reason: string): void;
}

/** Wraps a transport so that `tap` sees every frame sent and received, without changing them. */
export function tapTransport(inner: Transport, tap: TransportTap): Transport {
  let count = 0;
  return {
    open(url) {
      const number = ++count;
      const connection = inner.open(url);
      tap.opened?.(number, url);
      const outer: TransportConnection = {
        send(text) {
          tap.sent?.(number, text);
          connection.send(text);
        },
        close: (code, reason) => connection.close(code, reason),
        onopen: null,
        onmessage: null,
        onclose: null,
        onerror: null,
      };
      connection.onopen = () => outer.onopen?.();
      connection.onmessage = (text) => {
        tap.received?.(number, text);
        outer.onmessage?.(text);
      };
      connection.onerror = (error) => outer.onerror?.(error);
      connection.onclose = (code, reason) => {
        tap.closed?.(number, code, reason);
        outer.onclose?.(code, reason);
      };
      return outer;
    },
  };
}
