/**
 * The page's seam on the SDK's transport: it records every frame for the
 * debug panel, and it carries the page's own history reads ("load earlier").
 * The SDK keeps cursors, not messages, so what lies at or before a
 * conversation's cursor after a reload is read here with `sync` requests of
 * the page's own, numbered far above the SDK's request ids, answered to the
 * page and never shown to the SDK.
 */
import { webSocketTransport, type Entry, type Transport, type TransportConnection } from 'sequent-client';

/** The SDK numbers its requests from 1 on each connection; these never meet them. */
const FIRST_PAGE_ID = 2 ** 50;

export interface FrameRecord {
  at: number;
  connection: number;
  direction: 'in' | 'out';
  text: string;
  /** A request of the page's own (history), or its answer: not the SDK's traffic. */
  page: boolean;
}

interface Waiting {
  resolve(reply: { msgs: Entry[]; last: number }): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Wire {
  readonly transport: Transport;
  private current: TransportConnection | undefined;
  private open = false;
  private connections = 0;
  private nextId = FIRST_PAGE_ID;
  private readonly waiting = new Map<number, Waiting>();
  private readonly frameListeners = new Set<(record: FrameRecord) => void>();

  constructor(inner: Transport = webSocketTransport()) {
    this.transport = { open: (url) => this.wrap(inner.open(url)) };
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

  /**
   * Reads entries after..(after + limit) of a conversation from the server's
   * log over the SDK's current connection; rejects when there is none.
   */
  history(conv: string, after: number, limit: number, timeoutMs = 10_000): Promise<{ msgs: Entry[]; last: number }> {
    const connection = this.current;
    if (!connection || !this.open) return Promise.reject(new Error('offline'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error('no answer in time'));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      const text = JSON.stringify({ t: 'sync', id, conv, after, limit });
      this.record(this.connections, 'out', text, true);
      connection.send(text);
    });
  }

  private wrap(inner: TransportConnection): TransportConnection {
    const number = ++this.connections;
    this.current = inner;
    this.open = false;
    const outer: TransportConnection = {
      send: (text) => {
        this.record(number, 'out', text, false);
        inner.send(text);
      },
      close: (code, reason) => inner.close(code, reason),
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    inner.onopen = () => {
      if (this.current === inner) this.open = true;
      outer.onopen?.();
    };
    inner.onmessage = (text) => {
      const page = this.answerPage(text);
      this.record(number, 'in', text, page);
      if (!page) outer.onmessage?.(text);
    };
    inner.onerror = (error) => outer.onerror?.(error);
    inner.onclose = (code, reason) => {
      if (this.current === inner) {
        this.open = false;
        this.current = undefined;
        for (const [id, waiting] of this.waiting) {
          clearTimeout(waiting.timer);
          waiting.reject(new Error('connection lost'));
          this.waiting.delete(id);
        }
      }
      outer.onclose?.(code, reason);
    };
    return outer;
  }

  /** True when the frame answers one of the page's own requests (then the SDK never sees it). */
  private answerPage(text: string): boolean {
    // Cheap test first: nearly every frame is the SDK's.
    if (!text.includes('"id":')) return false;
    let frame: { t?: unknown; id?: unknown; conv?: unknown; msgs?: unknown; last?: unknown; code?: unknown; message?: unknown };
    try {
      frame = JSON.parse(text) as typeof frame;
    } catch {
      return false;
    }
    if (typeof frame.id !== 'number' || frame.id < FIRST_PAGE_ID) return false;
    const waiting = this.waiting.get(frame.id);
    if (!waiting) return true;
    this.waiting.delete(frame.id);
    clearTimeout(waiting.timer);
    if (frame.t === 'batch' && Array.isArray(frame.msgs) && typeof frame.last === 'number') {
      const conv = String(frame.conv);
      waiting.resolve({ msgs: (frame.msgs as Omit<Entry, 'conv'>[]).map((msg) => ({ ...msg, conv })), last: frame.last });
    } else {
      waiting.reject(new Error(`${String(frame.code ?? frame.t)}: ${String(frame.message ?? 'unexpected reply')}`));
    }
    return true;
  }

  private record(connection: number, direction: 'in' | 'out', text: string, page: boolean): void {
    const record = { at: Date.now(), connection, direction, text, page };
    for (const listener of this.frameListeners) listener(record);
  }
}
