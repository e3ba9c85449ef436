/**
 * One logical connection to the server that survives any number of physical
 * ones: opens the transport, says hello, matches replies to requests by id,
 * keeps a heartbeat, and reconnects with full-jitter backoff. Its state is an
 * explicit enum and every transition is reported.
 *
 *   idle → connecting → authenticating → syncing → ready
 *            ↑                                       │ (closed, timed out)
 *            └──────────────── waiting ←─────────────┘
 *   any → stopped (stop(), or a close that retrying cannot fix: 4426, 4401 with a fixed token)
 *
 * `syncing` means authenticated and catching up; the client facade moves it to
 * `ready` once every conversation is caught up (markReady).
 */
import type { ClientFrame, ServerFrame, WelcomeFrame } from '../protocol/frames.js';
import { PROTO_VERSION } from '../protocol/limits.js';
import { fullJitter, startTimer, type TimerHandle } from './backoff.js';
import { SequentClientError } from './errors.js';
import type { ResolvedClientOptions } from './options.js';
import type { Transport, TransportConnection } from './transport.js';

export const CLIENT_STATES = ['idle', 'connecting', 'authenticating', 'syncing', 'ready', 'waiting', 'stopped'] as const;
export type ClientState = (typeof CLIENT_STATES)[number];

export interface StateChange {
  from: ClientState;
  to: ClientState;
  /** Why, when it is not the normal next step (a close, a timeout, stop()). */
  reason?: string;
  /** The close code, when a close caused the change. */
  code?: number;
}

/** A client frame before the connection numbers it. */
export type Request = ClientFrame extends infer F ? (F extends { id: number } ? Omit<F, 'id'> : never) : never;

/** Called with the reply, or null when the connection closed first. */
export type ReplyHandler = (reply: ServerFrame | null) => void;

export interface ConnectionHooks {
  state(change: StateChange): void;
  /** The server accepted hello; `epoch` numbers this physical connection. */
  welcome(welcome: WelcomeFrame, epoch: number): void;
  /** A frame that answers no request: pushes and unsolicited errors. */
  push(frame: ServerFrame): void;
  /** An authenticated connection ended. */
  lost(): void;
  error(error: SequentClientError): void;
}

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_UNSUPPORTED_PROTO = 4426;

export class Connection {
  private current: ClientState = 'idle';
  private socket: TransportConnection | undefined;
  private epochCounter = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, ReplyHandler>();
  private attempt = 0;
  private connectTimer: TimerHandle | undefined;
  private reconnectTimer: TimerHandle | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  private lastFrameAt = 0;
  private pingSentAt: number | undefined;
  private authenticatedWaiters: (() => void)[] = [];
  /** Why the last attempt failed, until one gets a welcome: what ready() names when it gives up. */
  private failure: string | undefined;

  constructor(
    private readonly options: ResolvedClientOptions,
    private readonly transport: Transport,
    private readonly device: () => string,
    private readonly hooks: ConnectionHooks,
  ) {}

  get state(): ClientState {
    return this.current;
  }

  /** Why the connection is not up, if an attempt failed (the transport's reason, a refused hello, a timeout). */
  get lastFailure(): string | undefined {
    return this.failure;
  }

  get epoch(): number {
    return this.epochCounter;
  }

  /** True while requests can be sent (after welcome, before the close). */
  get authenticated(): boolean {
    return this.current === 'syncing' || this.current === 'ready';
  }

  start(): void {
    if (this.current !== 'idle') return;
    void this.connect();
  }

  /** Closes for good: no reconnect, every pending request is answered with null. */
  stop(): void {
    if (this.current === 'stopped') return;
    this.shutdown('stopped', 'stop()');
  }

  /** Ends the current physical connection and reconnects (after a backoff). */
  reconnect(reason: string): void {
    if (this.current === 'stopped' || this.current === 'idle' || this.current === 'waiting') return;
    const socket = this.socket;
    this.onClose(this.epochCounter, 4000, reason);
    socket?.close(4000, reason);
  }

  /** Stops for good because of an error retrying cannot fix. */
  fail(error: SequentClientError): void {
    this.hooks.error(error);
    this.shutdown('stopped', error.message);
  }

  markReady(epoch: number): void {
    if (epoch === this.epochCounter && this.current === 'syncing') this.setState('ready');
  }

  /** Sends a request now; returns its id, or undefined when not authenticated (nothing is sent). */
  request(frame: Request, onReply: ReplyHandler): number | undefined {
    if (!this.authenticated || !this.socket) return undefined;
    return this.sendRequest(frame, onReply);
  }

  /**
   * A request as a promise: rejects when not authenticated, when the connection
   * closes before the reply (the request may or may not have run), or after timeoutMs.
   */
  ask(frame: Request, timeoutMs: number): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const id = this.request(frame, (reply) => {
        clearTimeout(timer);
        if (reply === null) reject(new SequentClientError('connection_lost', `the connection closed before the reply to ${frame.t}`));
        else resolve(reply);
      });
      if (id === undefined) {
        reject(new SequentClientError('connection_lost', `not connected: ${frame.t} not sent`));
        return;
      }
      timer = startTimer(() => {
        this.waiting.delete(id);
        reject(new SequentClientError('timeout', `no reply to ${frame.t} within ${timeoutMs} ms`));
      }, timeoutMs);
    });
  }

  /** Resolves once the connection is authenticated; rejects after timeoutMs or on stop(). */
  whenAuthenticated(timeoutMs: number): Promise<void> {
    if (this.authenticated) return Promise.resolve();
    if (this.current === 'stopped') return Promise.reject(new SequentClientError('stopped', 'the client is stopped'));
    return new Promise((resolve, reject) => {
      const timer = startTimer(() => {
        this.authenticatedWaiters = this.authenticatedWaiters.filter((w) => w !== wake);
        reject(new SequentClientError('timeout', `not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      const wake = (): void => {
        clearTimeout(timer);
        if (this.authenticated) resolve();
        else reject(new SequentClientError('stopped', 'the client is stopped'));
      };
      this.authenticatedWaiters.push(wake);
    });
  }

  private sendRequest(frame: Request, onReply: ReplyHandler): number {
    const id = this.nextId++;
    this.waiting.set(id, onReply);
    this.socket?.send(JSON.stringify({ ...frame, id }));
    return id;
  }

  private setState(to: ClientState, reason?: string, code?: number): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    const change: StateChange = { from, to };
    if (reason !== undefined) change.reason = reason;
    if (code !== undefined) change.code = code;
    this.hooks.state(change);
    if (to === 'syncing' || to === 'stopped') {
      for (const wake of this.authenticatedWaiters.splice(0)) wake();
    }
  }

  private async connect(): Promise<void> {
    this.reconnectTimer = undefined;
    const epoch = ++this.epochCounter;
    this.nextId = 1;
    this.setState('connecting');
    // Covers getToken, the transport's open and the hello: all of it must fit in connectTimeoutMs.
    this.connectTimer = startTimer(() => {
      if (epoch === this.epochCounter && !this.authenticated) this.reconnect('connect timeout');
    }, this.options.connectTimeoutMs);
    let token: string;
    try {
      token = this.options.getToken ? await this.options.getToken(this.device()) : (this.options.token as string);
    } catch (error) {
      if (epoch !== this.epochCounter || this.current === 'stopped') return;
      this.hooks.error(new SequentClientError('unauthorized', 'getToken failed', error));
      this.scheduleReconnect('getToken failed');
      return;
    }
    if (epoch !== this.epochCounter || this.current === 'stopped') return;
    let socket: TransportConnection;
    try {
      socket = this.transport.open(this.options.url);
    } catch (error) {
      this.hooks.error(new SequentClientError('connection_lost', 'the transport could not open', error));
      this.scheduleReconnect('transport open failed');
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (epoch !== this.epochCounter || this.current !== 'connecting') return;
      this.setState('authenticating');
      this.sendRequest({ t: 'hello', proto: PROTO_VERSION, token }, (reply) => this.onHelloReply(epoch, reply));
    };
    socket.onmessage = (text) => {
      if (epoch === this.epochCounter) this.onMessage(text);
    };
    let openError: string | undefined;
    socket.onerror = (error) => {
      if (epoch !== this.epochCounter) return;
      this.options.logger?.debug({ error: String(error) }, 'transport error');
      // Once open, the close that follows says enough; before, this is the only word on a wrong URL or port.
      if (this.current !== 'connecting' || openError !== undefined) return;
      openError = `could not connect to ${this.options.url}: ${describeError(error)}`;
      this.failure = openError;
      this.hooks.error(new SequentClientError('connect_failed', openError, error));
    };
    socket.onclose = (code, reason) => this.onClose(epoch, code, reason || openError || '');
  }

  private onHelloReply(epoch: number, reply: ServerFrame | null): void {
    if (reply === null || epoch !== this.epochCounter) return;
    if (reply.t === 'welcome') {
      clearTimeout(this.connectTimer);
      this.attempt = 0;
      this.failure = undefined;
      this.setState('syncing');
      this.startHeartbeat(epoch);
      this.hooks.welcome(reply, epoch);
      return;
    }
    // The server closes right after a refused hello (4401, 4426); the close decides what next.
    const code = reply.t === 'error' ? reply.code : 'protocol';
    const message = reply.t === 'error' ? reply.message : `unexpected reply to hello: ${reply.t}`;
    this.failure = `hello refused (${code}): ${message}`;
    this.hooks.error(new SequentClientError(code, message));
  }

  private onMessage(text: string): void {
    this.lastFrameAt = this.options.now();
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      this.hooks.error(new SequentClientError('protocol', 'the server sent a frame that is not JSON'));
      return;
    }
    if (typeof frame !== 'object' || frame === null) return;
    const id = (frame as { id?: unknown }).id;
    const handler = typeof id === 'number' ? this.waiting.get(id) : undefined;
    if (handler && typeof id === 'number') {
      this.waiting.delete(id);
      handler(frame);
      return;
    }
    this.hooks.push(frame);
  }

  private onClose(epoch: number, code: number, reason: string): void {
    if (epoch !== this.epochCounter || this.current === 'stopped' || this.current === 'waiting') return;
    const wasAuthenticated = this.authenticated;
    this.clearConnection();
    if (wasAuthenticated) this.hooks.lost();
    if (code === CLOSE_UNSUPPORTED_PROTO) {
      this.fail(new SequentClientError('unsupported_proto', `the server does not speak protocol ${PROTO_VERSION}`));
      return;
    }
    if (code === CLOSE_UNAUTHENTICATED && !this.options.getToken) {
      this.fail(new SequentClientError('unauthorized', 'the server refused the token'));
      return;
    }
    this.scheduleReconnect(reason || `closed with ${code}`, code);
  }

  private scheduleReconnect(reason: string, code?: number): void {
    if (this.current === 'stopped') return;
    if (!this.authenticated) this.failure ??= reason;
    this.clearConnection();
    this.setState('waiting', reason, code);
    const delay = fullJitter(this.attempt++, this.options.backoff, this.options.random);
    // The reconnect timer keeps a Node process alive, as an open socket would.
    this.reconnectTimer = startTimer(() => void this.connect(), delay, true);
  }

  /** Forgets the physical connection: timers off, pending requests answered with null. */
  private clearConnection(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.heartbeatTimer);
    this.pingSentAt = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.onopen = null;
      socket.onmessage = null;
      socket.onclose = null;
      socket.onerror = null;
    }
    const handlers = [...this.waiting.values()];
    this.waiting.clear();
    for (const handler of handlers) handler(null);
  }

  private shutdown(to: 'stopped', reason: string): void {
    const socket = this.socket;
    // Without a socket the loss was already reported (a close that led here).
    const wasAuthenticated = this.authenticated && socket !== undefined;
    clearTimeout(this.reconnectTimer);
    this.epochCounter++;
    this.clearConnection();
    socket?.close(1000, 'client stopped');
    if (wasAuthenticated) this.hooks.lost();
    this.setState(to, reason);
  }

  /**
   * Any frame from the server proves the path works; after pingIntervalMs of
   * silence a ping goes out, and pingTimeoutMs more of silence drops the
   * connection (browsers cannot see WebSocket pings, hence the protocol's own).
   */
  private startHeartbeat(epoch: number): void {
    this.lastFrameAt = this.options.now();
    const check = (): void => {
      if (epoch !== this.epochCounter || !this.authenticated) return;
      const now = this.options.now();
      if (this.pingSentAt !== undefined) {
        if (this.lastFrameAt > this.pingSentAt) {
          this.pingSentAt = undefined;
        } else if (now - this.pingSentAt >= this.options.pingTimeoutMs) {
          this.reconnect('heartbeat timeout');
          return;
        }
      }
      const idle = now - this.lastFrameAt;
      if (this.pingSentAt === undefined && idle >= this.options.pingIntervalMs) {
        this.pingSentAt = now;
        this.sendRequest({ t: 'ping' }, () => undefined);
      }
      const wait =
        this.pingSentAt !== undefined
          ? this.options.pingTimeoutMs - (now - this.pingSentAt)
          : this.options.pingIntervalMs - idle;
      this.heartbeatTimer = startTimer(check, Math.max(1, wait));
    };
    this.heartbeatTimer = startTimer(check, this.options.pingIntervalMs);
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
  }
  // A browser's error event carries no reason; the close code that follows is all there is.
  return 'the transport reported an error without a reason';
}
