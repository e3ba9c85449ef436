/**
 * What send() returns: the app's handle on one outgoing message. Its state
 * goes sending → sent (seq, mid, ts known) or sending → failed; a failed one
 * goes back to sending on retry(), and to sent if a late ack still arrives.
 */
import type { SendError } from './store.js';

export type SendState = 'sending' | 'sent' | 'failed';

export interface SentInfo {
  seq: number;
  mid: string;
  ts: number;
}

export interface SendHandleInit {
  conv: string;
  cmid: string;
  dseq: number;
  body: unknown;
  seen: number | undefined;
  createdAt: number;
  tries: number;
  failed: SendError | undefined;
}

export class SendHandle {
  readonly conv: string;
  readonly cmid: string;
  readonly dseq: number;
  readonly body: unknown;
  /** The ctx.seen sent with the message. */
  readonly seen: number | undefined;
  readonly createdAt: number;
  private currentState: SendState;
  private sentInfo: SentInfo | undefined;
  private failure: SendError | undefined;
  private attempts: number;
  private waiters: ((info: SentInfo) => void)[] = [];

  constructor(
    init: SendHandleInit,
    private readonly onRetry: (handle: SendHandle) => void,
  ) {
    this.conv = init.conv;
    this.cmid = init.cmid;
    this.dseq = init.dseq;
    this.body = init.body;
    this.seen = init.seen;
    this.createdAt = init.createdAt;
    this.attempts = init.tries;
    this.failure = init.failed;
    this.currentState = init.failed ? 'failed' : 'sending';
  }

  get state(): SendState {
    return this.currentState;
  }

  /** The conversation seq, once sent. */
  get seq(): number | undefined {
    return this.sentInfo?.seq;
  }

  get mid(): string | undefined {
    return this.sentInfo?.mid;
  }

  get ts(): number | undefined {
    return this.sentInfo?.ts;
  }

  /** Why it failed, while failed. */
  get error(): SendError | undefined {
    return this.failure;
  }

  /** Send frames that went out for this message (over every connection and restart). */
  get tries(): number {
    return this.attempts;
  }

  /** Sends a failed message again, same cmid and dseq (and any failed ones before it in its conversation). */
  retry(): void {
    if (this.currentState === 'failed') this.onRetry(this);
  }

  /** Resolves when the message is sent; stays pending while it is failed. */
  whenSent(): Promise<SentInfo> {
    if (this.sentInfo) return Promise.resolve(this.sentInfo);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** @internal the outbox's side of the state machine. */
  markTry(): void {
    this.attempts++;
  }

  /** @internal */
  markSent(info: SentInfo): void {
    this.sentInfo = info;
    this.failure = undefined;
    this.currentState = 'sent';
    for (const wake of this.waiters.splice(0)) wake(info);
  }

  /** @internal */
  markFailed(error: SendError): void {
    this.failure = error;
    this.currentState = 'failed';
  }

  /** @internal */
  markSending(): void {
    this.failure = undefined;
    this.currentState = 'sending';
  }
}
