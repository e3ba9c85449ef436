/**
 * The page's seam on the SDK's transport: it records every frame for the
 * debug panel, and lets the page drop the connection when the browser says
 * the network is gone.
 */
import { webSocketTransport, type Transport, type TransportConnection } from 'sequent-client';

export interface FrameRecord {
  at: number;
  connection: number;
  direction: 'in' | 'out';
  text: string;
}

export class Wire {
  readonly transport: Transport;
  private current: TransportConnection | undefined;
  private connections = 0;
  private readonly frameListeners = new Set<(record: FrameRecord) => void>();

  constructor(inner: Transport = webSocketTransport()) {
    this.transport = { open: (url) => this.wrap(inner.open(url)) };
  }

  /** How many connections the SDK has opened so far: a reconnect raises it. */
  get opened(): number {
    return this.connections;
  }

  onFrame(listener: (record: FrameRecord) => void): () => void {
    this.frameListeners.add(listener);
    return () => this.frameListeners.delete(listener);
  }

  /**
   * Ends the current connection, as when the browser says the network is gone:
   * the SDK notices at once (instead of after its heartbeat) and reconnects
   * with its backoff, resending what is unacked.
   */
  drop(): void {
    this.current?.close(4000, 'the browser went offline');
  }

  private wrap(inner: TransportConnection): TransportConnection {
    const number = ++this.connections;
    this.current = inner;
    const outer: TransportConnection = {
      send: (text) => {
        this.record(number, 'out', text);
        inner.send(text);
      },
      close: (code, reason) => inner.close(code, reason),
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    inner.onopen = () => outer.onopen?.();
    inner.onmessage = (text) => {
      this.record(number, 'in', text);
      outer.onmessage?.(text);
    };
    inner.onerror = (error) => outer.onerror?.(error);
    inner.onclose = (code, reason) => {
      if (this.current === inner) this.current = undefined;
      outer.onclose?.(code, reason);
    };
    return outer;
  }

  private record(connection: number, direction: 'in' | 'out', text: string): void {
    const record = { at: Date.now(), connection, direction, text };
    for (const listener of this.frameListeners) listener(record);
  }
}
