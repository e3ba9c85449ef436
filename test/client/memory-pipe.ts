/**
 * An in-memory WebSocket stand-in: a client end (a TransportConnection) and a
 * server end, joined by FIFO queues. Events fire asynchronously (microtasks),
 * as the transport contract requires.
 */
import type { TransportConnection } from '../../packages/client/src/client/transport.js';

export interface ServerEnd {
  /** Queues a frame to the client (after everything queued before it). */
  send(text: string): void;
  /** Delivers a frame after `ms`, overtaking what is queued behind it (a reordering network). */
  sendLater(text: string, ms: number): void;
  /** A clean close: frames queued before it arrive first. */
  close(code: number, reason?: string): void;
  /** An abrupt cut: nothing queued arrives; both ends see 1006. */
  cut(): void;
  readonly closed: boolean;
  onmessage: ((text: string) => void) | null;
  onclose: ((code: number, reason: string) => void) | null;
}

export function createPipe(): { client: TransportConnection; server: ServerEnd } {
  let opened = false;
  let closed = false;
  let cut = false;

  const finish = (code: number, reason: string): void => {
    if (closed) return;
    closed = true;
    client.onclose?.(code, reason);
    server.onclose?.(code, reason);
  };

  const client: TransportConnection = {
    send(text) {
      if (!opened || closed) return;
      queueMicrotask(() => {
        if (!closed && !cut) server.onmessage?.(text);
      });
    },
    close(code = 1005, reason = '') {
      if (closed) return;
      queueMicrotask(() => finish(code, reason));
    },
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
  };

  const server: ServerEnd = {
    send(text) {
      if (closed) return;
      queueMicrotask(() => {
        if (!closed && !cut) client.onmessage?.(text);
      });
    },
    sendLater(text, ms) {
      setTimeout(() => {
        if (!closed && !cut) client.onmessage?.(text);
      }, ms);
    },
    close(code, reason = '') {
      queueMicrotask(() => finish(code, reason));
    },
    cut() {
      if (closed) return;
      cut = true;
      queueMicrotask(() => finish(1006, ''));
    },
    get closed() {
      return closed;
    },
    onmessage: null,
    onclose: null,
  };

  queueMicrotask(() => {
    if (closed) return;
    opened = true;
    client.onopen?.();
  });
  return { client, server };
}

/** A connection attempt that fails, as a refused WebSocket does: error, then close 1006. */
export function refusedConnection(): TransportConnection {
  const connection: TransportConnection = {
    send() {},
    close() {},
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
  };
  queueMicrotask(() => {
    connection.onerror?.(new Error('connection refused'));
    connection.onclose?.(1006, '');
  });
  return connection;
}
