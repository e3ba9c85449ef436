/**
 * The send queue. Per conversation, messages take consecutive dseqs in send()
 * order, are written to the store before their frame goes out, and are sent
 * (and resent) with the same cmid and dseq until an ack — or the entry itself,
 * seen in a push or sync — proves the server has them. The server answers a
 * resend with the original ack, so resending is always safe; the server keeps
 * seq order = dseq order, so the order on screen is the order of send().
 *
 * Resend triggers: ack timeout (after a full-jitter backoff), a new connection
 * (everything unacked, in dseq order), `out_of_order` (everything from the
 * dseq the server expects), and `unavailable`/`internal`/`rate_limited`
 * (that message, after a backoff).
 *
 * A message not acked within sendDeadlineMs is `failed`, and so is every later
 * one of its conversation (`blocked`): a dseq cannot be skipped, so they could
 * never be accepted before it. retry() — or a new send() into that
 * conversation — puts them all back to `sending`, oldest first.
 *
 * A refusal the server would repeat (REFUSED) blocks the conversation for
 * good, across restarts, until the app discards: the refused message (the
 * ones behind it take its dseq and go out) or all of them. Only then is
 * discarding safe: the server has none of the conversation's unacked
 * messages, since it takes dseqs in order and refused the oldest.
 */
import type { AckFrame, ServerFrame } from '../protocol/frames.js';
import { fullJitter, startTimer, type TimerHandle } from './backoff.js';
import type { ReplyHandler, Request } from './connection.js';
import { SequentClientError } from './errors.js';
import { newCmid } from './ids.js';
import type { ResolvedClientOptions } from './options.js';
import { SendHandle, type SendState } from './send-handle.js';
import type { ClientSnapshot, ClientStore, OutboxEntry, SendError } from './store.js';

export interface OutboxHooks {
  /** Sends a request if a connection is authenticated; undefined when not (nothing sent). */
  request(frame: Request, onReply: ReplyHandler): number | undefined;
  /** A handle was created (previous undefined) or changed state. */
  changed(handle: SendHandle, previous: SendState | undefined): void;
  /** An ack settled a handle (the client then delivers the entry it stands for). */
  acked(handle: SendHandle, ack: AckFrame): void;
  /** The conversation's oldest unacked message failed: nothing of it goes out until retry() or discard(). */
  blocked(conv: BlockedConversation): void;
  error(error: SequentClientError): void;
}

/** What an edit, delete or reaction acts on. */
export interface MessageAction {
  kind: 'edit' | 'delete' | 'react';
  ref: number;
}

/** A conversation whose sends are stuck behind its oldest unacked one, which failed. */
export interface BlockedConversation {
  conv: string;
  /** Why the oldest failed. */
  error: SendError;
  /** Every unacked message of the conversation, oldest (the failed one) first. */
  handles: SendHandle[];
  /** True when the refusal is one the server would repeat: discard() works, retry() would fail again. */
  discardable: boolean;
}

interface Item {
  readonly entry: OutboxEntry;
  readonly handle: SendHandle;
  persisted: boolean;
  /** Request id of the attempt whose answer we wait for. */
  inFlight: number | undefined;
  backoffAttempt: number;
  ackTimer: TimerHandle | undefined;
  retryTimer: TimerHandle | undefined;
  deadlineTimer: TimerHandle | undefined;
}

const RETRYABLE = new Set(['unavailable', 'internal', 'rate_limited']);
/**
 * Refusals the server repeats for the same message: the send never took its dseq.
 * `conflict` is an edit or reaction of a deleted message, or a second delete.
 */
export const REFUSED = new Set(['forbidden', 'not_found', 'too_large', 'bad_request', 'conflict']);

export class Outbox {
  private readonly queues = new Map<string, Item[]>();
  private readonly nextDseqs = new Map<string, number>();
  /** Per conversation, store writes run one after another, in call order. */
  private readonly chains = new Map<string, Promise<void>>();
  private ackTimeoutMs: number;

  constructor(
    private readonly options: ResolvedClientOptions,
    private readonly store: ClientStore,
    private readonly hooks: OutboxHooks,
  ) {
    this.ackTimeoutMs = options.ackTimeoutMs;
  }

  /** Takes back what a previous run left: counters and unacked sends (failed ones stay failed). */
  restore(snapshot: ClientSnapshot): void {
    for (const record of snapshot.convs) this.nextDseqs.set(record.conv, record.nextDseq);
    const entries = [...snapshot.outbox].sort((a, b) => (a.conv < b.conv ? -1 : a.conv > b.conv ? 1 : a.dseq - b.dseq));
    for (const entry of entries) {
      this.nextDseqs.set(entry.conv, Math.max(this.nextDseqs.get(entry.conv) ?? 1, entry.dseq + 1));
      const item = this.createItem(entry);
      item.persisted = true;
      this.queue(entry.conv).push(item);
      this.hooks.changed(item.handle, undefined);
      if (item.handle.state === 'sending') this.armDeadline(item);
    }
    for (const conv of this.queues.keys()) {
      const blocked = this.blockedInfo(conv);
      if (blocked) this.hooks.blocked(blocked);
    }
  }

  /** The server holds a dseq gap for holdMs before answering: do not time out an ack well before that. */
  setHoldMs(holdMs: number | undefined): void {
    this.ackTimeoutMs = Math.max(this.options.ackTimeoutMs, Math.ceil((holdMs ?? 0) * 1.5));
  }

  /** `action`: an edit, delete or reaction of the message at `ref`; they share the messages' dseqs, order and retries. */
  enqueue(conv: string, body: unknown, seen: number | undefined, action?: MessageAction): SendHandle {
    const dseq = this.nextDseqs.get(conv) ?? 1;
    this.nextDseqs.set(conv, dseq + 1);
    const createdAt = this.options.now();
    const entry: OutboxEntry = { conv, cmid: newCmid(createdAt), dseq, body, createdAt, tries: 0 };
    if (seen !== undefined) entry.seen = seen;
    if (action) {
      entry.kind = action.kind;
      entry.ref = action.ref;
    }
    const item = this.createItem(entry);
    // Order: nothing of this conversation may overtake an older failed message, so those go again first.
    const resumed = this.resumeFailed(conv);
    this.queue(conv).push(item);
    this.hooks.changed(item.handle, undefined);
    this.armDeadline(item);
    for (const earlier of resumed) this.transmit(earlier);
    this.persist(conv, () => this.store.enqueue(entry)).then(
      () => this.onPersisted(item),
      (error: unknown) => {
        // Keep sending from memory: only a crash before the ack could lose it now.
        this.hooks.error(new SequentClientError('store', `could not save the send of ${conv} dseq ${dseq}`, error));
        this.onPersisted(item);
      },
    );
    return item.handle;
  }

  /** A connection is ready: send everything unacked, per conversation in dseq order. */
  flush(): void {
    for (const items of this.queues.values()) {
      for (const item of items) this.transmit(item);
    }
  }

  /** The connection closed: no attempt is in flight any more. */
  disconnected(): void {
    for (const items of this.queues.values()) {
      for (const item of items) this.cancelAttempt(item);
    }
  }

  /** The server has this message (an ack, or its entry in a push or sync): done with it. */
  settle(conv: string, cmid: string, info: { seq: number; mid: string; ts: number }): SendHandle | undefined {
    const items = this.queues.get(conv);
    const index = items?.findIndex((item) => item.entry.cmid === cmid) ?? -1;
    if (!items || index < 0) return undefined;
    const wasBlocked = this.blockedInfo(conv) !== undefined;
    const item = items.splice(index, 1)[0] as Item;
    if (items.length === 0) this.queues.delete(conv);
    this.cancelAttempt(item);
    clearTimeout(item.deadlineTimer);
    const previous = item.handle.state;
    item.handle.markSent({ seq: info.seq, mid: info.mid, ts: info.ts });
    this.hooks.changed(item.handle, previous);
    // A send that failed behind this one is now the oldest: the conversation is blocked from here on.
    const blocked = wasBlocked ? undefined : this.blockedInfo(conv);
    if (blocked) this.hooks.blocked(blocked);
    this.persist(conv, () => this.store.removeOutbox(conv, cmid)).catch((error: unknown) => {
      this.hooks.error(new SequentClientError('store', `could not remove the acked send ${cmid} of ${conv}`, error));
    });
    return item.handle;
  }

  /** Puts every failed message of the handle's conversation back to sending, oldest first. */
  retry(handle: SendHandle): void {
    this.resumeFailed(handle.conv);
    for (const item of this.queues.get(handle.conv) ?? []) this.transmit(item);
  }

  /** The conversations whose oldest unacked message failed. */
  blocked(): BlockedConversation[] {
    return [...this.queues.keys()].flatMap((conv) => this.blockedInfo(conv) ?? []);
  }

  /**
   * Drops `only` (or every failed message of conv) for good; the rest move down
   * to close the dseq gap, and go out again if the oldest was among the dropped.
   */
  async discard(conv: string, only?: SendHandle): Promise<SendHandle[]> {
    const items = this.queues.get(conv) ?? [];
    if (only && !items.some((item) => item.handle === only)) return [];
    const blocked = this.blockedInfo(conv);
    if (!blocked) {
      if (!only && items.length === 0) return [];
      throw new SequentClientError('cannot_discard', `${conv} is not blocked: only a failed send can be discarded`);
    }
    if (!blocked.discardable) {
      throw new SequentClientError(
        'cannot_discard',
        `${conv} failed with ${blocked.error.code}: the server may have that message already; retry() instead`,
      );
    }
    const replace = this.store.replaceOutbox?.bind(this.store);
    if (!replace) throw new SequentClientError('store', 'this client store has no replaceOutbox, so sends cannot be discarded');
    const head = items[0] as Item;
    const gone = items.filter((item) => (only ? item.handle === only : item.handle.state === 'failed'));
    const kept = items.filter((item) => !gone.includes(item));
    const first = head.entry.dseq;
    // In memory first and at once, so a send() meanwhile takes the right dseq and waits behind this write.
    for (const item of gone) {
      this.cancelAttempt(item);
      clearTimeout(item.deadlineTimer);
    }
    kept.forEach((item, index) => {
      this.cancelAttempt(item);
      item.entry.dseq = first + index;
      item.handle.renumber(first + index);
      item.persisted = false;
    });
    if (kept.length === 0) this.queues.delete(conv);
    else this.queues.set(conv, kept);
    this.nextDseqs.set(conv, first + kept.length);
    const write = this.persist(conv, () => replace(conv, kept.map((item) => ({ ...item.entry })), first + kept.length));
    for (const item of gone) {
      item.handle.markDiscarded();
      this.hooks.changed(item.handle, 'failed');
    }
    const resume = gone.includes(head) ? this.resumeFailed(conv) : [];
    try {
      await write;
    } finally {
      // Renumbered messages may go out only once the new numbers are stored (or, if that failed, from memory).
      for (const item of kept) item.persisted = true;
      for (const item of resume) this.transmit(item);
    }
    return gone.map((item) => item.handle);
  }

  /** Unsettled handles, per conversation in dseq order. */
  handles(conv?: string): SendHandle[] {
    const lists = conv === undefined ? [...this.queues.values()] : [this.queues.get(conv) ?? []];
    return lists.flatMap((items) => items.map((item) => item.handle));
  }

  /** Waits for the store writes already started. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
  }

  stop(): void {
    for (const items of this.queues.values()) {
      for (const item of items) {
        this.cancelAttempt(item);
        clearTimeout(item.deadlineTimer);
      }
    }
  }

  private createItem(entry: OutboxEntry): Item {
    const handle = new SendHandle(
      {
        conv: entry.conv,
        cmid: entry.cmid,
        dseq: entry.dseq,
        body: entry.body,
        seen: entry.seen,
        kind: entry.kind ?? 'msg',
        ref: entry.ref,
        createdAt: entry.createdAt,
        tries: entry.tries,
        failed: entry.failed,
      },
      { retry: (h) => this.retry(h), discard: async (h) => void (await this.discard(h.conv, h)) },
    );
    return { entry, handle, persisted: false, inFlight: undefined, backoffAttempt: 0, ackTimer: undefined, retryTimer: undefined, deadlineTimer: undefined };
  }

  private queue(conv: string): Item[] {
    let items = this.queues.get(conv);
    if (!items) {
      items = [];
      this.queues.set(conv, items);
    }
    return items;
  }

  private persist(conv: string, write: () => Promise<void>): Promise<void> {
    const chain = (this.chains.get(conv) ?? Promise.resolve()).catch(() => undefined).then(write);
    this.chains.set(conv, chain);
    void chain.finally(() => {
      if (this.chains.get(conv) === chain) this.chains.delete(conv);
    }).catch(() => undefined);
    return chain;
  }

  private onPersisted(item: Item): void {
    item.persisted = true;
    this.transmit(item);
  }

  private transmit(item: Item): void {
    if (!item.persisted || item.handle.state !== 'sending' || item.inFlight !== undefined) return;
    if (!this.isQueued(item)) return;
    clearTimeout(item.retryTimer);
    item.retryTimer = undefined;
    const { conv, cmid, dseq, body, seen, kind, ref } = item.entry;
    const frame: Extract<Request, { t: 'send' }> = { t: 'send', conv, cmid, dseq, body };
    if (seen !== undefined) frame.ctx = { seen };
    if (kind !== undefined && ref !== undefined) {
      frame.kind = kind;
      frame.ref = ref;
    }
    let id = -1;
    const sent = this.hooks.request(frame, (reply) => this.onReply(item, id, reply));
    if (sent === undefined) return;
    id = sent;
    item.inFlight = id;
    item.entry.tries++;
    item.handle.markTry();
    // First tries are not written (the common case costs no extra write); resends are.
    if (item.entry.tries > 1) this.saveState(item);
    item.ackTimer = startTimer(() => this.onAckTimeout(item, id), this.ackTimeoutMs);
  }

  private onReply(item: Item, id: number, reply: ServerFrame | null): void {
    if (reply !== null && reply.t === 'ack') {
      // An ack settles the message whichever attempt it answers.
      const handle = this.settle(reply.conv, reply.cmid, reply);
      if (handle) this.hooks.acked(handle, reply);
      return;
    }
    if (item.inFlight !== id) return;
    this.cancelAttempt(item);
    if (reply === null) return; // the connection closed; flush() resends on the next one
    if (reply.t !== 'error') {
      this.hooks.error(new SequentClientError('protocol', `unexpected reply to send: ${reply.t}`));
      this.scheduleRetry(item);
    } else if (reply.code === 'out_of_order' && typeof reply.expected === 'number') {
      this.resendFrom(item.entry.conv, reply.expected);
    } else if (RETRYABLE.has(reply.code)) {
      this.scheduleRetry(item);
    } else {
      this.failFrom(item, { code: reply.code, message: reply.message });
    }
  }

  private onAckTimeout(item: Item, id: number): void {
    if (item.inFlight !== id) return;
    item.inFlight = undefined;
    item.ackTimer = undefined;
    this.scheduleRetry(item);
  }

  private scheduleRetry(item: Item): void {
    clearTimeout(item.retryTimer);
    const delay = fullJitter(item.backoffAttempt++, this.options.backoff, this.options.random);
    item.retryTimer = startTimer(() => {
      item.retryTimer = undefined;
      this.transmit(item);
    }, delay);
  }

  /** The server waits for `expected` first: resend it and everything after it, in order. */
  private resendFrom(conv: string, expected: number): void {
    const items = this.queues.get(conv) ?? [];
    const first = items[0];
    if (!first || expected < first.entry.dseq || expected > (items.at(-1) as Item).entry.dseq) {
      this.hooks.error(
        new SequentClientError('protocol', `server expects dseq ${expected} of ${conv}, unacked here: ${items.map((i) => i.entry.dseq).join(',') || 'none'}`),
      );
      return;
    }
    for (const item of items) {
      if (item.entry.dseq < expected) continue;
      this.cancelAttempt(item);
      this.transmit(item);
    }
  }

  private failFrom(from: Item, error: SendError): void {
    const items = this.queues.get(from.entry.conv) ?? [];
    const wasBlocked = items[0]?.handle.state === 'failed';
    for (const item of items) {
      if (item.entry.dseq < from.entry.dseq || item.handle.state !== 'sending') continue;
      const reason =
        item === from ? error : { code: 'blocked', message: `waits for dseq ${from.entry.dseq}, which failed (${error.code})` };
      this.cancelAttempt(item);
      clearTimeout(item.deadlineTimer);
      item.entry.failed = reason;
      item.handle.markFailed(reason);
      this.hooks.changed(item.handle, 'sending');
      this.saveState(item);
    }
    const blocked = wasBlocked ? undefined : this.blockedInfo(from.entry.conv);
    if (blocked) this.hooks.blocked(blocked);
  }

  private blockedInfo(conv: string): BlockedConversation | undefined {
    const items = this.queues.get(conv) ?? [];
    const head = items[0];
    if (!head || head.handle.state !== 'failed' || !head.entry.failed) return undefined;
    const error = head.entry.failed;
    return { conv, error: { ...error }, handles: items.map((item) => item.handle), discardable: REFUSED.has(error.code) };
  }

  /** Puts the conversation's failed messages back to sending; returns them. */
  private resumeFailed(conv: string): Item[] {
    const resumed: Item[] = [];
    for (const item of this.queues.get(conv) ?? []) {
      if (item.handle.state !== 'failed') continue;
      resumed.push(item);
      delete item.entry.failed;
      item.backoffAttempt = 0;
      item.handle.markSending();
      this.hooks.changed(item.handle, 'failed');
      this.armDeadline(item);
      this.saveState(item);
    }
    return resumed;
  }

  private saveState(item: Item): void {
    const entry = { ...item.entry };
    this.persist(entry.conv, () => this.store.updateOutbox(entry)).catch((error: unknown) => {
      this.hooks.error(new SequentClientError('store', `could not update the send ${entry.cmid} of ${entry.conv}`, error));
    });
  }

  private armDeadline(item: Item): void {
    clearTimeout(item.deadlineTimer);
    item.deadlineTimer = undefined;
    const deadline = this.options.sendDeadlineMs;
    if (!Number.isFinite(deadline)) return;
    item.deadlineTimer = startTimer(() => {
      item.deadlineTimer = undefined;
      if (item.handle.state === 'sending' && this.isQueued(item)) {
        this.failFrom(item, { code: 'deadline', message: `not acknowledged within ${deadline} ms` });
      }
    }, deadline);
  }

  private cancelAttempt(item: Item): void {
    clearTimeout(item.ackTimer);
    clearTimeout(item.retryTimer);
    item.ackTimer = undefined;
    item.retryTimer = undefined;
    item.inFlight = undefined;
  }

  private isQueued(item: Item): boolean {
    return this.queues.get(item.entry.conv)?.includes(item) ?? false;
  }
}
