/**
 * A message-level WebSocket fault proxy for the chaos run. It sits between
 * clients and a Sequent server and, per frame: delays it, duplicates it
 * (client → server only, to exercise idempotent resends), or cuts the whole
 * connection abruptly (both sides, no close frame). Delays never reorder frames
 * within one direction of one connection (WebSocket is ordered, and a client
 * may rely on it); different connections interleave differently, which is the
 * reordering a real network produces.
 *
 * Besides these per-frame faults, the runner fires targeted ones at planned
 * times, on one connection: a cut; a stall (every frame in both directions
 * vanishes for a while, no close: a silent drop; for ever: a half-open
 * connection); a duplicate of the next client frame; a duplicate or a reorder
 * of the next server frames; and a lost reply (the next matching request
 * reaches the server, its answers vanish, then the connection is cut). A
 * server frame the proxy duplicated or held back is marked `"_chaos":"dup"` or
 * `"_chaos":"reorder"`, so the history can tell the proxy's doing from the
 * server's (clients ignore fields they do not know).
 *
 * Decisions come from a seeded PRNG forked per connection (by accept order)
 * and per direction, and every frame draws the same numbers whatever the
 * current fault settings, so one seed gives one schedule of faults.
 *
 * The upstream connection is opened before the client's handshake is
 * answered: when the server is down or refuses (404, 503), the client sees
 * the same failed handshake it would see without the proxy.
 */
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer, type RawData } from 'ws';
import { Prng } from './prng.js';

export interface DelayRange {
  /** ms, included */
  min: number;
  /** ms, included */
  max: number;
}

export interface FaultOptions {
  /** Random delay of each client → server frame. */
  toServerDelayMs: DelayRange;
  /** Random delay of each server → client frame. */
  toClientDelayMs: DelayRange;
  /** Probability that a client → server frame is sent twice. */
  duplicateToServer: number;
  /** Probability, per frame in either direction, that the connection is cut instead of the frame delivered. */
  cutPerFrame: number;
}

export const NO_FAULTS: Readonly<FaultOptions> = Object.freeze({
  toServerDelayMs: { min: 0, max: 0 },
  toClientDelayMs: { min: 0, max: 0 },
  duplicateToServer: 0,
  cutPerFrame: 0,
});

export interface FaultProxyOptions {
  /** ws url of the server, e.g. ws://127.0.0.1:PORT/v1/ws */
  target: string;
  seed: number;
  faults?: Partial<FaultOptions>;
  /** default 127.0.0.1 */
  host?: string;
  /** default 0 (any free port) */
  port?: number;
  /** Called when the proxy cuts a connection (a fault or `cutAll`), e.g. to record it in a history. */
  onCut?: (connection: number, reason: 'fault' | 'cutAll') => void;
}

export interface FaultStats {
  /** Client connections accepted (upstream opened). */
  connections: number;
  /** Handshakes refused because the upstream refused or was unreachable. */
  refused: number;
  toServer: number;
  toClient: number;
  /** Extra copies sent (each duplicated frame counts once here and twice in toServer). */
  duplicated: number;
  /** Frames held back by a delay above 0. */
  delayed: number;
  /** Connections cut by a fault. */
  cutByFault: number;
  /** Connections cut by `cutAll` or `cut`. */
  cutByCall: number;
  /** Frames that vanished in a stall. */
  dropped: number;
}

/** A targeted fault on one connection, fired by the runner. */
export type TargetedFault =
  | { kind: 'cut' }
  | { kind: 'stall'; ms: number }
  | { kind: 'dup-to-server' }
  | { kind: 'dup-to-client' }
  | { kind: 'reorder-to-client' }
  | { kind: 'lost-reply'; match: (frame: Record<string, unknown>) => boolean; cutAfterMs: number };

export interface FaultProxy {
  /** ws url of the proxy, with the target's path and query. */
  readonly url: string;
  readonly port: number;
  /** A live view of the counters. */
  readonly stats: Readonly<FaultStats>;
  /** Replaces the given settings (a delay range as a whole); the rest stay. */
  setFaults(faults: Partial<FaultOptions>): void;
  faults(): FaultOptions;
  /** Drops every open connection abruptly on both sides (no close frames); frames in flight are lost. */
  cutAll(): void;
  /** Ids of the connections now linked, in accept order. */
  open(): number[];
  /** Arms a fault on one connection; false when it is gone. */
  inject(connection: number, fault: TargetedFault): boolean;
  /** Cuts every connection and stops listening. */
  close(): Promise<void>;
}

/** Large enough to pass any frame the server would judge itself (it answers `too_large`). */
const MAX_PAYLOAD = 64 * 1024 * 1024;

/** Handshake headers that ws sets itself for the upstream connection. */
const OWN_HEADERS = new Set([
  'host',
  'connection',
  'upgrade',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-extensions',
  'sec-websocket-protocol',
  'content-length',
  'transfer-encoding',
]);

type Item =
  | { kind: 'frame'; due: number; data: RawData; binary: boolean }
  | { kind: 'cut'; due: number }
  | { kind: 'close'; due: number; code: number; reason: Buffer };

/** One direction of one connection: a FIFO with nondecreasing due times and a single timer, so order holds. */
class Lane {
  private readonly queue: Item[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastDue = 0;

  constructor(
    private readonly deliver: (item: Item) => void,
    private readonly ready: () => boolean,
  ) {}

  push(item: Item, delayMs: number): void {
    const now = Date.now();
    item.due = Math.max(this.lastDue, now + delayMs);
    this.lastDue = item.due;
    this.queue.push(item);
    this.pump();
  }

  pump(): void {
    if (this.timer !== undefined || !this.ready()) return;
    const now = Date.now();
    let head = this.queue[0];
    while (head !== undefined && head.due <= now) {
      this.queue.shift();
      this.deliver(head);
      if (!this.ready()) return;
      head = this.queue[0];
    }
    if (head === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, head.due - now);
  }

  drop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

/** Close codes that may be sent in a close frame; others (1005, 1006, 1015) mean "no code". */
function sendableCode(code: number): number | undefined {
  if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return undefined;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const root = new Prng(options.seed, 'proxy');
  let current: FaultOptions = { ...NO_FAULTS, ...options.faults };
  validateFaults(current);
  const stats: FaultStats = {
    connections: 0,
    refused: 0,
    toServer: 0,
    toClient: 0,
    duplicated: 0,
    delayed: 0,
    cutByFault: 0,
    cutByCall: 0,
    dropped: 0,
  };
  const cutters = new Set<(reason: 'fault' | 'cutAll') => void>();
  const injectors = new Map<number, (fault: TargetedFault) => void>();
  let accepted = 0;

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD, perMessageDeflate: false });
  const http: HttpServer = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('WebSocket only');
  });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const upstreamUrl = new URL(req.url ?? '/', `${target.protocol}//${target.host}`);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!OWN_HEADERS.has(name) && value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    const protocols = req.headers['sec-websocket-protocol']?.split(',').map((p) => p.trim()).filter((p) => p !== '');
    const upstream = new WebSocket(upstreamUrl, protocols ?? [], {
      headers,
      maxPayload: MAX_PAYLOAD,
      perMessageDeflate: false,
    });
    // Frames arriving from the server before the client side is up wait in the lane.
    const early: { data: RawData; binary: boolean }[] = [];
    const earlyClose: { code?: number; reason?: Buffer } = {};
    upstream.on('message', (data, binary) => early.push({ data, binary }));
    upstream.on('close', (code, reason) => {
      earlyClose.code = code;
      earlyClose.reason = reason;
    });
    let refused = false;
    let linked = false;
    const refuse = (status: number, text: string): void => {
      if (refused) return;
      refused = true;
      stats.refused++;
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\n\r\n`);
    };
    upstream.once('unexpected-response', (_request, response) => {
      refuse(response.statusCode ?? 502, response.statusMessage ?? 'Bad Gateway');
      upstream.terminate();
    });
    // Kept for the socket's whole life: an unhandled 'error' would crash the process.
    upstream.on('error', () => {
      if (upstream.readyState !== WebSocket.OPEN && !linked) refuse(502, 'Bad Gateway');
    });
    socket.on('error', () => upstream.terminate());
    upstream.once('open', () => {
      if (socket.destroyed) {
        upstream.terminate();
        return;
      }
      wss.handleUpgrade(req, socket, head, (client) => {
        linked = true;
        const id = ++accepted;
        stats.connections++;
        upstream.removeAllListeners('message');
        upstream.removeAllListeners('close');
        link(id, client, upstream, early, earlyClose);
      });
    });
  };
  http.on('upgrade', onUpgrade);

  function link(
    id: number,
    client: WebSocket,
    upstream: WebSocket,
    early: { data: RawData; binary: boolean }[],
    earlyClose: { code?: number; reason?: Buffer },
  ): void {
    const up = root.fork(`conn:${id}/to-server`);
    const down = root.fork(`conn:${id}/to-client`);
    let cut = false;

    const cutNow = (reason: 'fault' | 'cutAll'): void => {
      if (cut) return;
      cut = true;
      cutters.delete(cutNow);
      injectors.delete(id);
      clearTimeout(held?.timer);
      toServer.drop();
      toClient.drop();
      client.terminate();
      upstream.terminate();
      if (reason === 'fault') stats.cutByFault++;
      else stats.cutByCall++;
      options.onCut?.(id, reason);
    };
    cutters.add(cutNow);

    const deliverTo = (socket: WebSocket, direction: 'toServer' | 'toClient') => (item: Item) => {
      if (cut) return;
      if (item.kind === 'cut') return cutNow('fault');
      if (item.kind === 'close') {
        // 1006: the peer vanished without a close frame; mirror that abruptly.
        if (item.code === 1006) return socket.terminate();
        const code = sendableCode(item.code);
        if (code === undefined) socket.close();
        else socket.close(code, item.reason);
        return;
      }
      if (socket.readyState !== WebSocket.OPEN) return;
      stats[direction]++;
      socket.send(item.data, { binary: item.binary });
    };
    const toServer = new Lane(deliverTo(upstream, 'toServer'), () => upstream.readyState !== WebSocket.CONNECTING);
    const toClient = new Lane(deliverTo(client, 'toClient'), () => client.readyState !== WebSocket.CONNECTING);

    // Targeted faults armed on this connection.
    let stalledUntil = 0;
    let dupNextToServer = false;
    let dupNextToClient = false;
    let reorderNext = false;
    let held: { data: RawData; binary: boolean; timer: NodeJS.Timeout } | undefined;
    let loseReply: Extract<TargetedFault, { kind: 'lost-reply' }> | undefined;
    injectors.set(id, (fault) => {
      if (fault.kind === 'cut') cutNow('cutAll');
      else if (fault.kind === 'stall') stalledUntil = Date.now() + fault.ms;
      else if (fault.kind === 'dup-to-server') dupNextToServer = true;
      else if (fault.kind === 'dup-to-client') dupNextToClient = true;
      else if (fault.kind === 'reorder-to-client') reorderNext = true;
      else loseReply = fault;
    });
    const releaseHeld = (): void => {
      if (!held) return;
      clearTimeout(held.timer);
      const { data, binary } = held;
      held = undefined;
      toClient.push({ kind: 'frame', due: 0, data: marked(data, binary, 'reorder'), binary }, 0);
    };

    // Every frame draws delay, (duplicate,) cut numbers whatever the settings, so streams stay aligned.
    // Settings are read at each frame, so setFaults applies to open connections too.
    const onFrame = (lane: Lane, prng: Prng, direction: 'toServer' | 'toClient') => (data: RawData, binary: boolean) => {
      if (cut) return;
      if (Date.now() < stalledUntil) {
        // A silent drop: the frame vanishes and nobody is told.
        stats.dropped++;
        return;
      }
      if (direction === 'toServer' && loseReply !== undefined && !binary && loseReply.match(parseFrame(data))) {
        const fault = loseReply;
        loseReply = undefined;
        lane.push({ kind: 'frame', due: 0, data, binary }, 0);
        // The request reaches the server; whatever comes back vanishes, then the connection drops.
        stalledUntil = Infinity;
        setTimeout(() => cutNow('cutAll'), fault.cutAfterMs);
        return;
      }
      if (direction === 'toServer' && dupNextToServer) {
        dupNextToServer = false;
        stats.duplicated++;
        lane.push({ kind: 'frame', due: 0, data, binary }, 0);
      }
      if (direction === 'toClient' && !binary) {
        if (dupNextToClient) {
          dupNextToClient = false;
          lane.push({ kind: 'frame', due: 0, data, binary }, 0);
          lane.push({ kind: 'frame', due: 0, data: marked(data, binary, 'dup'), binary }, 0);
          return;
        }
        if (reorderNext && held === undefined) {
          // Held back until the next server frame has passed it (or a moment, if none comes).
          reorderNext = false;
          held = { data, binary, timer: setTimeout(releaseHeld, 200) };
          return;
        }
        if (held) {
          lane.push({ kind: 'frame', due: 0, data, binary }, 0);
          releaseHeld();
          return;
        }
      }
      const delay = drawDelay(prng, direction === 'toServer' ? current.toServerDelayMs : current.toClientDelayMs);
      const duplicate = direction === 'toServer' && prng.chance(current.duplicateToServer);
      if (prng.chance(current.cutPerFrame)) {
        lane.push({ kind: 'cut', due: 0 }, delay);
        return;
      }
      if (delay > 0) stats.delayed++;
      lane.push({ kind: 'frame', due: 0, data, binary }, delay);
      if (duplicate) {
        stats.duplicated++;
        lane.push({ kind: 'frame', due: 0, data, binary }, delay);
      }
    };
    const fromServer = onFrame(toClient, down, 'toClient');
    for (const frame of early) fromServer(frame.data, frame.binary);
    client.on('message', onFrame(toServer, up, 'toServer'));
    upstream.on('message', fromServer);

    // A close travels behind the frames sent before it.
    let openSides = 2;
    const sideClosed = (): void => {
      if (--openSides > 0) return;
      // Forget the link, or every reconnect of a long run would keep its sockets and queues alive.
      cutters.delete(cutNow);
      injectors.delete(id);
      clearTimeout(held?.timer);
      held = undefined;
    };
    client.on('close', (code, reason) => {
      if (!cut) toServer.push({ kind: 'close', due: 0, code, reason }, 0);
      sideClosed();
    });
    if (earlyClose.code !== undefined) {
      toClient.push({ kind: 'close', due: 0, code: earlyClose.code, reason: earlyClose.reason ?? Buffer.alloc(0) }, 0);
      sideClosed();
    } else {
      upstream.on('close', (code, reason) => {
        if (!cut) toClient.push({ kind: 'close', due: 0, code, reason }, 0);
        sideClosed();
      });
    }
    client.on('error', () => upstream.terminate());
    upstream.on('error', () => client.terminate());
    toServer.pump();
    toClient.pump();
  }

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  const host = options.host ?? '127.0.0.1';
  const hostForUrl = host.includes(':') ? `[${host}]` : host;

  const cutAll = (): void => {
    for (const cutter of [...cutters]) cutter('cutAll');
  };
  const inject = (connection: number, fault: TargetedFault): boolean => {
    const to = injectors.get(connection);
    if (!to) return false;
    to(fault);
    return true;
  };

  return {
    url: `ws://${hostForUrl}:${port}${target.pathname}${target.search}`,
    port,
    stats,
    setFaults(faults) {
      const next = { ...current, ...faults };
      validateFaults(next);
      current = next;
    },
    faults: () => ({ ...current }),
    cutAll,
    open: () => [...injectors.keys()],
    inject,
    async close() {
      cutAll();
      http.off('upgrade', onUpgrade);
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}

function parseFrame(data: RawData): Record<string, unknown> {
  try {
    const value = JSON.parse(rawText(data)) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

/** The frame with `"_chaos": mark` added, so the history knows the proxy made this copy or this order. */
function marked(data: RawData, binary: boolean, mark: 'dup' | 'reorder'): RawData {
  if (binary) return data;
  const frame = parseFrame(data);
  if (Object.keys(frame).length === 0) return data;
  return Buffer.from(JSON.stringify({ ...frame, _chaos: mark }));
}

function drawDelay(prng: Prng, range: DelayRange): number {
  // Draw even for a zero range, so the stream does not depend on the settings.
  const r = prng.next();
  return range.min + Math.floor(r * (range.max - range.min + 1));
}

function validateFaults(faults: FaultOptions): void {
  for (const [name, range] of [
    ['toServerDelayMs', faults.toServerDelayMs],
    ['toClientDelayMs', faults.toClientDelayMs],
  ] as const) {
    if (!Number.isInteger(range.min) || !Number.isInteger(range.max) || range.min < 0 || range.max < range.min) {
      throw new RangeError(`${name}: need integers with 0 <= min <= max, got ${JSON.stringify(range)}`);
    }
  }
  for (const [name, p] of [
    ['duplicateToServer', faults.duplicateToServer],
    ['cutPerFrame', faults.cutPerFrame],
  ] as const) {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`${name}: need a probability in [0, 1], got ${p}`);
  }
}
