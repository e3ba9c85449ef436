/**
 * What send() returns: the app's handle on one outgoing message. Its state
 * goes sending → sent (seq, mid, ts known) or sending → failed; a failed one
 * goes back to sending on retry(), to sent if a late ack still arrives, and to
 * discarded (for good) on discard().
 */
import { SequentClientError, type ClientErrorCode } from './errors.js';
import type { ErrorCode } from '../protocol/errors.js';
import type { SendError } from './store.js';

export type SendState = 'sending' | 'sent' | 'failed' | 'discarded';

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
  kind: 'msg' | 'edit' | 'delete' | 'react';
  ref: number | undefined;
  createdAt: number;
  tries: number;
  failed: SendError | undefined;
}

export interface SendActions {
  retry(handle: SendHandle): void;
  discard(handle: SendHandle): Promise<void>;
}

interface Waiter {
  resolve(info: SentInfo): void;
  reject(error: SequentClientError): void;
}

export class SendHandle<Body = unknown> {
  readonly conv: string;
  readonly cmid: string;
  readonly body: Body;
  /** The ctx.seen sent with the message. */
  readonly seen: number | undefined;
  /** `msg` for send(); `edit`, `delete`, `react` for those calls. */
  readonly kind: 'msg' | 'edit' | 'delete' | 'react';
  /** For edit, delete and react: the seq of the message acted on. */
  readonly ref: number | undefined;
  readonly createdAt: number;
  private currentState: SendState;
  private sentInfo: SentInfo | undefined;
  private failure: SendError | undefined;
  private attempts: number;
  private currentDseq: number;
  private waiters: Waiter[] = [];

  constructor(
    init: SendHandleInit,
    private readonly actions: SendActions,
  ) {
    this.conv = init.conv;
    this.cmid = init.cmid;
    this.currentDseq = init.dseq;
    this.body = init.body as Body;
    this.seen = init.seen;
    this.kind = init.kind;
    this.ref = init.ref;
    this.createdAt = init.createdAt;
    this.attempts = init.tries;
    this.failure = init.failed;
    this.currentState = init.failed ? 'failed' : 'sending';
  }

  get state(): SendState {
    return this.currentState;
  }

  /** This device's counter for the conversation; it moves down when an earlier refused send is discarded. */
  get dseq(): number {
    return this.currentDseq;
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
    if (this.currentState === 'failed') this.actions.retry(this as SendHandle);
  }

  /**
   * Drops a failed message for good: from the outbox, the store and the view.
   * Only when its conversation is blocked by a refusal the server would repeat
   * (`forbidden`, `not_found`, `too_large`, `bad_request`, `conflict`), because then the
   * server has none of the conversation's unacked messages; otherwise it
   * rejects with `cannot_discard` (a message failed on its deadline may be in
   * the log already: retry it). Messages behind it keep their order and move
   * down one dseq; if it blocked them, they are sent.
   */
  discard(): Promise<void> {
    if (this.currentState === 'discarded') return Promise.resolve();
    return this.actions.discard(this as SendHandle);
  }

  /**
   * Resolves when the message is sent; rejects with the error when it fails
   * (or is discarded). After retry(), call it again for the new outcome.
   */
  whenSent(): Promise<SentInfo> {
    if (this.sentInfo) return Promise.resolve(this.sentInfo);
    if (this.currentState === 'failed' || this.currentState === 'discarded') return Promise.reject(this.rejection());
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
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
    for (const waiter of this.waiters.splice(0)) waiter.resolve(info);
  }

  /** @internal */
  markFailed(error: SendError): void {
    this.failure = error;
    this.currentState = 'failed';
    this.rejectWaiters();
  }

  /** @internal */
  markDiscarded(): void {
    this.currentState = 'discarded';
    this.rejectWaiters();
  }

  /** @internal a discarded send before this one freed its dseq. */
  renumber(dseq: number): void {
    this.currentDseq = dseq;
  }

  private rejectWaiters(): void {
    const waiters = this.waiters.splice(0);
    if (waiters.length === 0) return;
    const error = this.rejection();
    for (const waiter of waiters) waiter.reject(error);
  }

  private rejection(): SequentClientError {
    if (this.currentState === 'discarded') return new SequentClientError('discarded', `the send ${this.cmid} of ${this.conv} was discarded`);
    const failure = this.failure ?? { code: 'protocol', message: 'failed' };
    return new SequentClientError(failure.code as ClientErrorCode | ErrorCode, failure.message);
  }

  /** @internal */
  markSending(): void {
    this.failure = undefined;
    this.currentState = 'sending';
  }
}
