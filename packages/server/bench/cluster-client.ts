/**
 * A cluster benchmark client: one user with one device, sending into one
 * conversation over raw protocol-v1 WebSocket frames, and doing what the SDK
 * does when a node goes away. An `unavailable` error resends the same cmid and
 * dseq after a short pause; a lost connection reconnects (to the node `route`
 * names then) and resends every unacknowledged send in dseq order, so the
 * store's dedup answers with the original ack. Latency counts from the first
 * transmission, resends included.
 */
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { newCmid } from 'sequent-client';
import type { LoadClient } from './load.js';
import { MicrotaskCork } from './microtask-cork.js';

type Reply = { t: string; id?: number; code?: string; message?: string; conv?: string; seq?: number; cmid?: string };

interface PendingSend {
  cmid: string;
  dseq: number;
  /** performance.now() of the first and of the latest transmission. */
  firstAt: number;
  lastAt: number;
  acked(): void;
  failed(error: Error): void;
}

/** One acknowledged send, as the client saw it: what the store must hold at the end. */
export interface AckRecord {
  conv: string;
  cmid: string;
  seq: number;
  firstAt: number;
  lastAt: number;
  at: number;
}

export interface ClusterClientOptions {
  user: string;
  token: string;
  conv: string;
  bodyJson: string;
  /** The node to (re)connect to now: the client's own node while it lives, else a survivor. */
  route(): string;
  /** Every ack, in arrival order. */
  onAck(ack: AckRecord): void;
  /** Pause before resending a send answered `unavailable`. */
  retryMs: number;
  log(line: string): void;
}

const RECONNECT_MS = 100;
const MSG_PUSH = Buffer.from('{"t":"msg"');

export class ClusterClient implements LoadClient {
  private ws: WebSocket | undefined;
  private cork: MicrotaskCork | undefined;
  private ready = false;
  private closed = false;
  private nextId = 1;
  private dseq = 0;
  private readonly pending = new Map<number, PendingSend>();
  /** Request id → the dseq of the send it carried (a resend gets a new id). */
  private readonly inFlight = new Map<number, number>();
  private readonly requests = new Map<number, { resolve(reply: Reply): void; reject(error: Error): void }>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly sendPrefix: string;
  /** The url of the current connection. */
  url = '';
  resends = 0;
  reconnects = 0;
  /** Acks whose seq differed from an earlier ack of the same send: must stay 0. */
  seqMismatches = 0;
  private readonly ackedSeq = new Map<number, number>();

  constructor(private readonly options: ClusterClientOptions) {
    this.sendPrefix = `{"t":"send","conv":${JSON.stringify(options.conv)},"body":${options.bodyJson},`;
  }

  get conv(): string {
    return this.options.conv;
  }

  get unacked(): number {
    return this.pending.size;
  }

  /** Connects to `route()` and says hello; resolves once welcomed. */
  async connect(): Promise<void> {
    const url = this.options.route();
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    this.url = url;
    this.ws = ws;
    this.cork = new MicrotaskCork((ws as unknown as { _socket: Socket })._socket);
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('close', () => this.lost(ws));
    ws.on('error', () => this.lost(ws));
    await this.request({ t: 'hello', proto: 1, token: this.options.token });
    this.ready = true;
    const unacked = [...this.pending.values()].sort((a, b) => a.dseq - b.dseq);
    for (const send of unacked) this.transmit(send);
  }

  request(frame: Record<string, unknown>): Promise<Reply> {
    const ws = this.ws;
    if (!ws) return Promise.reject(new Error(`${this.options.user}: not connected`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject });
      ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  send(acked: () => void, failed: (error: Error) => void): void {
    const now = performance.now();
    const send: PendingSend = { cmid: newCmid(), dseq: ++this.dseq, firstAt: now, lastAt: now, acked, failed };
    this.pending.set(send.dseq, send);
    if (this.ready) this.transmit(send);
  }

  /** Closes the connection on purpose and connects again to `route()` (moving back to a restarted node). */
  move(): void {
    const ws = this.ws;
    if (!ws) return;
    ws.close();
    this.lost(ws);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.ws?.close();
    this.ws = undefined;
  }

  private transmit(send: PendingSend): void {
    if (!this.ready || !this.ws) return;
    const id = this.nextId++;
    this.inFlight.set(id, send.dseq);
    send.lastAt = performance.now();
    this.cork!.hold();
    this.ws.send(`${this.sendPrefix}"id":${id},"cmid":"${send.cmid}","dseq":${send.dseq}}`);
  }

  private onFrame(data: Buffer): void {
    // Pushes carry no id and are not counted: the clients must not be the bottleneck.
    if (data.subarray(0, MSG_PUSH.length).equals(MSG_PUSH)) return;
    const frame = JSON.parse(data.toString('utf8')) as Reply;
    if (frame.id === undefined) return;
    const dseq = this.inFlight.get(frame.id);
    if (dseq !== undefined) {
      this.inFlight.delete(frame.id);
      this.answer(dseq, frame);
      return;
    }
    const request = this.requests.get(frame.id);
    if (!request) return;
    this.requests.delete(frame.id);
    if (frame.t === 'error') request.reject(new Error(`${frame.code}: ${frame.message}`));
    else request.resolve(frame);
  }

  private answer(dseq: number, frame: Reply): void {
    const send = this.pending.get(dseq);
    if (frame.t === 'ack') {
      const seq = Number(frame.seq);
      const earlier = this.ackedSeq.get(dseq);
      if (earlier !== undefined && earlier !== seq) {
        this.seqMismatches++;
        this.options.log(`${this.options.user}: dseq ${dseq} acked at seq ${earlier} and again at seq ${seq}`);
      }
      if (!send) return; // a resend's second ack
      this.ackedSeq.set(dseq, seq);
      this.pending.delete(dseq);
      this.options.onAck({ conv: this.options.conv, cmid: send.cmid, seq, firstAt: send.firstAt, lastAt: send.lastAt, at: performance.now() });
      send.acked();
      return;
    }
    if (!send) return;
    if (frame.code === 'unavailable') {
      this.resends++;
      setTimeout(() => {
        if (this.pending.get(dseq) === send) this.transmit(send);
      }, this.options.retryMs);
      return;
    }
    this.pending.delete(dseq);
    send.failed(new Error(`${this.options.user} send dseq ${dseq} to ${this.options.conv}: ${frame.code ?? frame.t} ${frame.message ?? ''}`));
  }

  /** The connection is gone: forget what was in flight on it (it is resent after the reconnect) and reconnect. */
  private lost(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.ready = false;
    this.inFlight.clear();
    for (const request of this.requests.values()) request.reject(new Error(`${this.options.user}: connection lost`));
    this.requests.clear();
    if (!this.closed) this.scheduleReconnect(0);
  }

  private scheduleReconnect(delayMs: number): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (this.closed) return;
      this.reconnects++;
      this.connect().catch(() => {
        this.ws?.terminate();
        this.ws = undefined;
        this.ready = false;
        this.scheduleReconnect(RECONNECT_MS);
      });
    }, delayMs);
  }
}
