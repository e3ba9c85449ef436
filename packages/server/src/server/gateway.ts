/**
 * The edge: HTTP (/healthz; /metrics has a listener of its own) and the WebSocket at /v1/ws. It checks
 * every frame against the schema, authenticates the hello, applies the
 * per-connection rate limit, and hands each request to its handler. Nothing
 * here decides order; that is the sequencer's job.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { CLOSE_CODES, PROTO_VERSION, decodeClientFrame, type ClientFrame, type DecodeResult, type HelloFrame } from 'sequent-client/protocol';
import { TokenError, type Identity, type TokenAuthority } from './auth.js';
import { Admission } from './admission.js';
import { failureCode, failureMessage } from './failures.js';
import type { ServerMetrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { Reads } from './reads.js';
import type { ChatState } from './chat-state.js';
import type { Presence } from './delivery.js';
import type { OwnerRequests } from './owner-requests.js';
import { Session, TokenBucket } from './session.js';
import type { FrameFlusher } from './turn-frames.js';

export interface Handlers {
  /** send, create, members, read: decided by the conversation's owner. */
  owner: OwnerRequests<Session>;
  reads: Reads;
  presence: Presence<Session>;
  chat: ChatState;
}

export const WS_PATH = '/v1/ws';
const MAX_QUEUED_BEFORE_WELCOME = 64;

export class Gateway {
  readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<Session>();
  private readonly pingTimer: NodeJS.Timeout;
  private readonly admission: Admission;
  serving = true;

  constructor(
    private readonly options: ResolvedOptions,
    private readonly tokens: TokenAuthority,
    private readonly handlers: Handlers,
    /** Writes the sessions' queued frames once per turn. */
    private readonly flusher: FrameFlusher,
    private readonly metrics: ServerMetrics,
    private readonly logger: Logger,
    /** A cluster node: its state as JSON at GET /cluster (`?conv=ID` adds where that conversation is decided), and whether it is fit to serve. */
    private readonly cluster?: { status(conv: string | undefined): Promise<unknown>; unhealthy(): string | undefined },
  ) {
    this.admission = new Admission(options);
    const serve = (req: IncomingMessage, res: ServerResponse) => void this.serveHttp(req, res);
    // An https server is an http server over TLS: the same handlers serve wss:// and https://.
    this.http = options.tls ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, serve) : createServer(serve);
    // ws refuses frames above maxPayload by closing the socket; the protocol wants an
    // error frame for a frame over maxFrame, so ws lets through a margin and we judge.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.maxFrame * 4 + 1024 });
    this.http.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== WS_PATH || !this.serving) {
        socket.end(`HTTP/1.1 ${this.serving ? '404 Not Found' : '503 Service Unavailable'}\r\nConnection: close\r\n\r\n`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, req.socket.remoteAddress ?? ''));
    });
    this.pingTimer = setInterval(() => this.heartbeat(), options.pingIntervalMs);
    this.pingTimer.unref();
  }

  openSessions(): Session[] {
    return [...this.sessions];
  }

  /** Stops the heartbeat and refuses new connections; open ones stay until closed. */
  stopAccepting(): void {
    this.serving = false;
    clearInterval(this.pingTimer);
  }

  private async serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [path, query] = (req.url ?? '').split('?');
    if (req.method === 'GET' && path === '/healthz') {
      // A cluster node that cannot reach PostgreSQL or NATS is not fit for new clients: the balancer sends them elsewhere.
      const problem = this.serving ? this.cluster?.unhealthy() : 'draining';
      res.writeHead(problem === undefined ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(problem === undefined ? { status: 'ok' } : { status: this.serving ? 'unhealthy' : 'draining', ...(this.serving ? { problem } : {}) }));
      return;
    }
    if (req.method === 'GET' && path === '/cluster' && this.cluster) {
      const conv = new URLSearchParams(query ?? '').get('conv') ?? undefined;
      try {
        const status = await this.cluster.status(conv);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(status));
      } catch (error) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'unavailable', message: error instanceof Error ? error.message : String(error) }));
      }
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'not_found' }));
  }

  private accept(ws: WebSocket, raw: Duplex, address: string): void {
    const session = new Session(ws, address, raw, this.options.maxBuffered, this.metrics, new TokenBucket(this.options.ratePerSecond, this.options.rateBurst), this.flusher);
    this.sessions.add(session);
    this.metrics.connections.inc();
    const admitted = this.admission.admitAddress(address);
    const helloTimer = setTimeout(() => session.close(CLOSE_CODES.hello_timeout.code, 'no hello in time'), this.options.helloTimeoutMs);
    helloTimer.unref();

    ws.on('pong', () => {
      session.alive = true;
    });
    ws.on('message', (data, isBinary) => this.onFrame(session, data, isBinary, helloTimer));
    this.answerOversizedFrames(ws, session);
    ws.on('error', (error) => this.logger.debug({ err: error, session: session.id }, 'socket error'));
    ws.on('close', (peerCode) => {
      const code = session.closedWith ?? peerCode;
      const who = { session: session.id, user: session.user || undefined, device: session.device || undefined, code };
      if (code === CLOSE_CODES.slow_consumer.code) this.logger.warn(who, 'slow consumer cut');
      this.logger.debug(who, 'connection closed');
      clearTimeout(helloTimer);
      session.ended();
      this.sessions.delete(session);
      if (admitted) this.admission.releaseAddress(session.address);
      if (session.authenticated) {
        this.admission.releaseUser(session.user);
        this.handlers.presence.leave(session);
      }
      this.metrics.connections.dec();
    });
    if (!admitted) session.close(CLOSE_CODES.too_many_connections.code, 'too many connections from this address');
  }

  /**
   * ws closes a connection whose frame is over its maxPayload before reading
   * the frame; the client is told why first (without an id: none was read).
   */
  private answerOversizedFrames(ws: WebSocket, session: Session): void {
    const receiver = (ws as unknown as { _receiver?: EventEmitter })._receiver;
    receiver?.prependListener('error', (error: { code?: string }) => {
      if (error.code !== 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return;
      session.error(undefined, 'too_large', `frame far larger than maxFrame (${this.options.maxFrame} bytes); closing`);
      session.flushNow();
    });
  }

  /** No input of any shape may throw out of here: the socket's event emitter would take the process down. */
  private onFrame(session: Session, data: RawData, isBinary: boolean, helloTimer: NodeJS.Timeout): void {
    if (session.closed) return;
    try {
      this.handleFrame(session, data, isBinary, helloTimer);
    } catch (error) {
      this.logger.error({ err: error, session: session.id }, 'frame failed');
      session.error(undefined, 'internal', 'internal error');
    }
  }

  private handleFrame(session: Session, data: RawData, isBinary: boolean, helloTimer: NodeJS.Timeout): void {
    if (!session.authenticated && session.verifying) {
      // A client may pipeline requests behind its hello; they wait for the verdict.
      if (session.queued.length >= MAX_QUEUED_BEFORE_WELCOME) session.close(CLOSE_CODES.not_authenticated.code, 'hello must come first');
      else session.queued.push({ data, isBinary });
      return;
    }
    const receivedAt = performance.now();
    const text = isBinary ? null : rawText(data);
    const decoded: DecodeResult =
      text === null
        ? { ok: false, code: 'bad_request', message: 'frames must be text' }
        : decodeClientFrame(text, this.options.maxFrame, this.options.maxBody);
    if (!session.authenticated) return this.beforeHello(session, decoded, helloTimer);
    // Every frame counts against the rate, valid or not: refusing one costs little less than serving it.
    if (!session.rate.take()) {
      session.error(decoded.ok ? decoded.frame.id : decoded.id, 'rate_limited', `more than ${this.options.ratePerSecond} frames per second`);
      return this.countBadFrame(session);
    }
    if (!decoded.ok) {
      session.error(decoded.id, decoded.code, decoded.message);
      return this.countBadFrame(session);
    }
    const frame = decoded.frame;
    this.metrics.framesIn.inc(frame.t);
    if (frame.t === 'hello') {
      session.error(frame.id, 'bad_request', 'already authenticated on this connection');
      return this.countBadFrame(session);
    }
    const failed = (error: unknown) => {
      const code = failureCode(error);
      this.logger[code === 'internal' ? 'error' : 'warn']({ err: error, session: session.id, t: frame.t }, 'request failed');
      session.error(frame.id, code, failureMessage(code));
    };
    try {
      const handled = this.dispatch(session, frame, receivedAt, decoded.bodyJson);
      if (handled instanceof Promise) handled.catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  /** Frames the client should not have sent (malformed, over the rate, a second hello): past maxBadFrames the connection ends. */
  private countBadFrame(session: Session): void {
    if (++session.badFrames >= this.options.maxBadFrames) {
      session.close(CLOSE_CODES.repeated_bad_frames.code, 'too many bad frames');
    }
  }

  /** Only a hello may come first. A hello that fails the schema is told why (as a hello with a bad token would be), then closed. */
  private beforeHello(session: Session, decoded: DecodeResult, helloTimer: NodeJS.Timeout): void {
    if (!decoded.ok || decoded.frame.t !== 'hello') {
      if (!decoded.ok && decoded.type === 'hello') {
        session.error(decoded.id, decoded.path === '/token' ? 'unauthorized' : decoded.code, decoded.message);
      }
      session.close(CLOSE_CODES.not_authenticated.code, 'hello must come first');
      return;
    }
    this.metrics.framesIn.inc('hello');
    clearTimeout(helloTimer);
    void this.hello(session, decoded.frame).then(() => {
      for (const queued of session.queued.splice(0)) this.onFrame(session, queued.data, queued.isBinary, helloTimer);
    });
  }

  private async hello(session: Session, frame: HelloFrame): Promise<void> {
    session.verifying = true;
    try {
      await this.verifyHello(session, frame);
    } catch (error) {
      this.logger.error({ err: error, session: session.id }, 'hello failed');
      session.error(frame.id, 'internal', 'internal error');
      session.close(CLOSE_CODES.not_authenticated.code, 'authentication failed');
    } finally {
      session.verifying = false;
    }
  }

  private async verifyHello(session: Session, frame: HelloFrame): Promise<void> {
    if (frame.proto !== PROTO_VERSION) {
      session.error(frame.id, 'bad_request', `unsupported proto ${frame.proto}; this server speaks ${PROTO_VERSION}`);
      session.close(CLOSE_CODES.unsupported_proto.code, 'unsupported protocol version');
      return;
    }
    let identity: Identity;
    try {
      identity = await this.tokens.verify(frame.token);
    } catch (error) {
      const reason = error instanceof TokenError ? error.message : 'token is not valid';
      this.logger.info({ session: session.id, reason }, 'token refused');
      session.error(frame.id, 'unauthorized', reason);
      session.close(CLOSE_CODES.not_authenticated.code, 'authentication failed');
      return;
    }
    if (session.closed) return;
    if (!this.admission.admitUser(identity.user)) {
      session.close(CLOSE_CODES.too_many_connections.code, `${identity.user} has too many connections open`);
      return;
    }
    session.user = identity.user;
    session.device = identity.device;
    session.authenticated = true;
    session.expireAt(identity.expiresAt);
    this.logger.debug({ session: session.id, user: session.user, device: session.device }, 'connection opened');
    this.handlers.presence.join(session);
    session.send({
      t: 'welcome',
      id: frame.id,
      user: session.user,
      device: session.device,
      serverTime: Date.now(),
      limits: { maxBody: this.options.maxBody, maxFrame: this.options.maxFrame },
      holdMs: this.options.holdMs,
    });
  }

  /** A handler's work; a send that needs no store read completes synchronously. */
  private dispatch(session: Session, frame: Exclude<ClientFrame, HelloFrame>, receivedAt: number, bodyJson: string | undefined): void | Promise<void> {
    switch (frame.t) {
      case 'send':
        return this.handlers.owner.send(session, frame, receivedAt, bodyJson ?? JSON.stringify(frame.body));
      case 'create':
        return this.handlers.owner.create(session, frame);
      case 'members':
        return this.handlers.owner.members(session, frame);
      case 'sync':
        return this.handlers.reads.sync(session, frame);
      case 'convs':
        return this.handlers.reads.convs(session, frame);
      case 'ping':
        return session.send({ t: 'pong', id: frame.id, serverTime: Date.now() });
      case 'read':
        return this.handlers.owner.read(session, frame);
      case 'info':
        return this.handlers.chat.info(session, frame);
      case 'typing':
        return this.handlers.chat.typing(session, frame);
    }
  }

  private heartbeat(): void {
    for (const session of this.sessions) {
      if (!session.alive) {
        session.terminate();
        continue;
      }
      session.alive = false;
      session.ping();
    }
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
