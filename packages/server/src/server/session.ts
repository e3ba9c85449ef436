/**
 * One client connection after the socket is open: its identity, its outgoing
 * frames (with a bounded send buffer) and its rate limit. Protocol logic lives
 * in the handlers; this only moves frames.
 */
import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { CLOSE_CODES, encodeAck, type AckFrame, type ErrorCode, type ServerFrame } from 'sequent-client/protocol';
import type { ServerMetrics } from './metrics.js';
import type { Requester } from './origin.js';
import { TurnFrames, type FrameFlusher } from './turn-frames.js';

export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.refilledAt = now();
  }

  take(): boolean {
    const now = this.now();
    const elapsed = now - this.refilledAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.perSecond) / 1000);
      this.refilledAt = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Connection ids are meant to be unique across a cluster's processes, not only in this one: a push
 * that crosses the bus skips the connection that sent its entry by this id. Each process counts up
 * from a random multiple of 2^32 (below 2^53); two live processes share a block with odds of 1 in 2^21,
 * and then a push may be skipped on one connection, which its client notices as a gap and syncs.
 */
let nextSessionId = randomInt(1, 2 ** 21) * 2 ** 32 + 1;

/** A local connection is the origin of the requests it reads. */
export class Session implements Requester {
  readonly id = nextSessionId++;
  user = '';
  device = '';
  authenticated = false;
  /** The hello's token is being checked; frames that arrive meanwhile wait in `queued`. */
  verifying = false;
  readonly queued: { data: RawData; isBinary: boolean }[] = [];
  badFrames = 0;
  /** sync and convs requests waiting for the store. */
  pendingReads = 0;
  alive = true;
  closed = false;
  /** Closes the connection when its token expires. */
  private expiry: NodeJS.Timeout | undefined;
  /** The code this side closed with (the peer's echo may differ, or never come), for the close log line. */
  closedWith: number | undefined;

  private readonly frames: TurnFrames;

  constructor(
    private readonly socket: WebSocket,
    /** The peer's IP address, for the per-address connection cap. */
    readonly address: string,
    /** The TCP socket under the WebSocket: a turn's data frames are written to it in one write. */
    raw: Duplex,
    private readonly maxBuffered: number,
    private readonly metrics: ServerMetrics,
    readonly rate: TokenBucket,
    flusher: FrameFlusher,
  ) {
    this.frames = new TurnFrames({
      get open() {
        return socket.readyState === socket.OPEN;
      },
      write: (chunk) => raw.write(chunk),
    }, flusher);
  }

  /** Sends a frame; a client whose buffer is over the limit is closed instead (it will resync). */
  send(frame: ServerFrame): void {
    this.sendText(JSON.stringify(frame));
  }

  /**
   * A frame's JSON, as a string or already UTF-8 encoded (a push shared by many
   * connections is encoded once). What waits for the client never passes
   * maxBuffered, except one frame into an empty buffer.
   */
  sendText(text: string | Buffer): void {
    if (this.closed) return;
    const waiting = this.waitingBytes;
    if (waiting > 0 && waiting + text.length > this.maxBuffered) {
      this.metrics.slowConsumers.inc();
      this.close(CLOSE_CODES.slow_consumer.code, 'send buffer over limit: reconnect and sync');
      return;
    }
    this.frames.push(text);
  }

  get connection(): number {
    return this.id;
  }

  ack(frame: AckFrame): void {
    this.sendText(encodeAck(frame));
  }

  ok(id: number, conv: string, seq: number): void {
    this.send({ t: 'ok', id, conv, seq });
  }

  error(id: number | undefined, code: ErrorCode, message: string, extra?: { expected?: number }): void {
    this.metrics.errors.inc({ code });
    const frame: ServerFrame = { t: 'error', code, message, ...extra };
    if (id !== undefined) frame.id = id;
    this.send(frame);
  }

  /** Bytes written but not yet taken by the client's TCP stack, and bytes queued in this turn. */
  get waitingBytes(): number {
    return this.socket.bufferedAmount + this.frames.queuedBytes;
  }

  /** Ends the connection when the token expires: the client reconnects with a fresh one. */
  expireAt(expiresAt: number | undefined, now = Date.now()): void {
    if (expiresAt === undefined || this.closed) return;
    // setTimeout holds at most 2^31-1 ms; a later expiry re-arms in steps.
    const delay = Math.min(Math.max(0, expiresAt - now), 2 ** 31 - 1);
    this.expiry = setTimeout(() => {
      if (Date.now() >= expiresAt) this.close(CLOSE_CODES.not_authenticated.code, 'token expired');
      else this.expireAt(expiresAt);
    }, delay);
    this.expiry.unref();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiry);
    this.closedWith = code;
    // The close frame must follow the data frames sent before it.
    this.frames.flush();
    this.socket.close(code, reason);
    // A peer that never answers the close handshake must not hold the socket open.
    setTimeout(() => this.socket.terminate(), 2000).unref();
  }

  /** The socket closed, from either side. */
  ended(): void {
    this.closed = true;
    clearTimeout(this.expiry);
  }

  /** Writes what is queued now instead of at the end of the turn (before ws closes the socket itself). */
  flushNow(): void {
    this.frames.flush();
  }

  terminate(): void {
    this.closed = true;
    clearTimeout(this.expiry);
    this.socket.terminate();
  }

  ping(): void {
    this.frames.flush();
    this.socket.ping();
  }
}
