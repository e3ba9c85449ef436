/**
 * Forwarded requests in batches on core NATS, with our own correlation.
 *
 * A nats.js request per forwarded send cost a NATS message each way, a timer,
 * a mux entry and an Error object (its `cancel` builds one even after the
 * reply came), and each message its own parse and socket write. Here the
 * gateway queues the requests of one event-loop turn by where they go and
 * sends each queue as one message; the owner answers each request as soon as
 * it is decided, and the answers decided in one turn for one batch go back as
 * one message. Replies come on one subscription (`<inbox>.<batch id>`), and one
 * sweep timer ends the batches whose time is up.
 *
 * Where a batch goes: a request whose slot has no known holder goes to the
 * slot's subject, which its holder serves in the owners' queue group, as
 * before. Every answer names the node that gave it; from then on requests for
 * that slot are queued with every other request for that node and the batch
 * goes to the subject of its first request's slot. The node that gets a batch
 * answers the requests of the slots it serves and sends back "not here" for
 * the others, which the gateway then sends once more to their own slot's
 * subject (without a hint): a stale hint costs a round trip, never a wrong
 * owner, since only a slot's holder ever runs its requests.
 *
 * Nothing is acked here: a request is answered with the owner's frame, or is
 * `unavailable` (nobody serves the slot, no answer in time, the owner failed,
 * the bus closed), and the client resends with the same cmid and dseq.
 *
 * Order: requests of one (device, conversation) go to the same queue, so they
 * leave in the order they came, in one batch or in batches published one after
 * another on one connection; the owner starts them in batch order. (A request
 * sent again after "not here" can pass a later one; the owner's dseq hold-back
 * puts them back in order.)
 */
import { createInbox, ErrorCode, type Msg, type NatsConnection, NatsError, type Subscription } from 'nats';
import type { Subjects } from './subjects.js';

export type UnavailableCause = 'no-responders' | 'timeout' | 'owner-error' | 'closed' | 'moved';
export type ForwardResult = { ok: true; reply: Uint8Array } | { ok: false; error: 'unavailable'; cause: UnavailableCause };

export type SlotHandler = (request: Uint8Array, slot: number) => Uint8Array | Promise<Uint8Array>;

/** A batch stays well under NATS's default 1 MiB max_payload. */
export const MAX_BATCH_BYTES = 256 * 1024;
/** Requests per batch at most: bounds what one lost batch or one reply costs. */
export const MAX_BATCH_REQUESTS = 256;
const ITEM_HEADER_BYTES = 8;
const ANSWER_HEADER_BYTES = 9;

const enum AnswerKind {
  Answer = 0,
  /** The node does not serve the request's slot: not run, send it to the slot's own subject. */
  NotHere = 1,
  /** The owner's handler failed: not answered. */
  Failed = 2,
}

const EMPTY = new Uint8Array(0);

// --- wire format ---
// batch:  ([u32 slot][u32 length][request bytes])*
// reply:  [u8 length][responder id] ([u32 index][u8 kind][u32 length][answer bytes])*

export function encodeBatch(items: readonly { slot: number; request: Uint8Array }[]): Uint8Array {
  let size = 0;
  for (const item of items) size += ITEM_HEADER_BYTES + item.request.length;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const item of items) {
    out.writeUInt32BE(item.slot, at);
    out.writeUInt32BE(item.request.length, at + 4);
    out.set(item.request, at + ITEM_HEADER_BYTES);
    at += ITEM_HEADER_BYTES + item.request.length;
  }
  return out;
}

export function decodeBatch(bytes: Uint8Array): { slot: number; request: Uint8Array }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const items: { slot: number; request: Uint8Array }[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + ITEM_HEADER_BYTES > bytes.length) throw new RangeError('a forwarded batch ends inside a request header');
    const slot = view.getUint32(at);
    const length = view.getUint32(at + 4);
    const start = at + ITEM_HEADER_BYTES;
    if (start + length > bytes.length) throw new RangeError('a forwarded batch ends inside a request');
    items.push({ slot, request: bytes.subarray(start, start + length) });
    at = start + length;
  }
  return items;
}

interface Answer {
  index: number;
  kind: AnswerKind;
  bytes: Uint8Array;
}

function encodeAnswers(responder: Uint8Array, answers: readonly Answer[]): Uint8Array {
  let size = 1 + responder.length;
  for (const a of answers) size += ANSWER_HEADER_BYTES + a.bytes.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = responder.length;
  out.set(responder, 1);
  let at = 1 + responder.length;
  for (const a of answers) {
    out.writeUInt32BE(a.index, at);
    out[at + 4] = a.kind;
    out.writeUInt32BE(a.bytes.length, at + 5);
    out.set(a.bytes, at + ANSWER_HEADER_BYTES);
    at += ANSWER_HEADER_BYTES + a.bytes.length;
  }
  return out;
}

function decodeAnswers(bytes: Uint8Array): { responder: string; answers: Answer[] } {
  if (bytes.length < 1 || bytes.length < 1 + bytes[0]!) throw new RangeError('a forwarded reply ends inside its responder');
  const responder = Buffer.from(bytes.buffer, bytes.byteOffset + 1, bytes[0]!).toString('latin1');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const answers: Answer[] = [];
  let at = 1 + bytes[0]!;
  while (at < bytes.length) {
    if (at + ANSWER_HEADER_BYTES > bytes.length) throw new RangeError('a forwarded reply ends inside an answer header');
    const index = view.getUint32(at);
    const kind = bytes[at + 4]! as AnswerKind;
    const length = view.getUint32(at + 5);
    const start = at + ANSWER_HEADER_BYTES;
    if (start + length > bytes.length) throw new RangeError('a forwarded reply ends inside an answer');
    answers.push({ index, kind, bytes: bytes.subarray(start, start + length) });
    at = start + length;
  }
  return { responder, answers };
}

// --- the gateway's side ---

interface Waiting {
  slot: number;
  request: Uint8Array;
  timeoutMs: number;
  resolve: (result: ForwardResult) => void;
  /** Sent once more to its own slot's subject after a "not here" or a stale hint: never a third time. */
  rerouted: boolean;
}

interface Queue {
  /** The node the hints say holds every slot in it, or undefined: one slot's requests, to its subject. */
  responder: string | undefined;
  items: Waiting[];
  bytes: number;
}

interface InFlight {
  /** Answered entries become undefined, so a duplicate answer is ignored. */
  items: (Waiting | undefined)[];
  left: number;
  deadline: number;
  subjectSlot: number;
  responder: string | undefined;
}

const unavailable = (cause: UnavailableCause): ForwardResult => ({ ok: false, error: 'unavailable', cause });

const isClosing = (error: unknown): boolean =>
  error instanceof NatsError && (error.code === ErrorCode.ConnectionDraining || error.code === ErrorCode.ConnectionClosed);

export class ForwardClient {
  private readonly inbox = createInbox();
  private readonly sub: Subscription;
  /** Requests of this turn by destination: `n<responder>` or `s<slot>`. */
  private readonly queues = new Map<string, Queue>();
  /** Batches sent and not fully answered, in the order they were sent. */
  private readonly inFlight = new Map<number, InFlight>();
  /** Slot → the node that last answered a request of it. At most one entry per slot. */
  private readonly hints = new Map<number, string>();
  private nextBatch = 1;
  private flushScheduled = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepEveryMs = 250;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    private readonly onError: (error: unknown) => void,
  ) {
    this.sub = nc.subscribe(`${this.inbox}.*`, {
      callback: (error, msg) => {
        if (error !== null) this.onError(error);
        else this.onReply(msg);
      },
    });
  }

  forward(slot: number, request: Uint8Array, timeoutMs: number): Promise<ForwardResult> {
    if (this.closed) return Promise.resolve(unavailable('closed'));
    return new Promise((resolve) => this.enqueue({ slot, request, timeoutMs, resolve, rerouted: false }));
  }

  /** Requests queued and in flight, for tests and metrics. */
  get outstanding(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.items.length;
    for (const b of this.inFlight.values()) n += b.left;
    return n;
  }

  /** Everything not answered yet is `closed`; call after the connection drained (replies that came are in). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const q of this.queues.values()) for (const w of q.items) w.resolve(unavailable('closed'));
    this.queues.clear();
    for (const b of this.inFlight.values()) for (const w of b.items) w?.resolve(unavailable('closed'));
    this.inFlight.clear();
    this.sub.unsubscribe();
  }

  private enqueue(w: Waiting): void {
    const responder = this.hints.get(w.slot);
    const key = responder === undefined ? `s${w.slot}` : `n${responder}`;
    let queue = this.queues.get(key);
    const size = ITEM_HEADER_BYTES + w.request.length;
    if (queue !== undefined && (queue.items.length >= MAX_BATCH_REQUESTS || queue.bytes + size > MAX_BATCH_BYTES)) {
      // Full: it leaves now, ahead of anything queued after it for the same place.
      this.queues.delete(key);
      this.send(queue);
      queue = undefined;
    }
    if (queue === undefined) {
      queue = { responder, items: [], bytes: 0 };
      this.queues.set(key, queue);
    }
    queue.items.push(w);
    queue.bytes += size;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const queues = [...this.queues.values()];
    this.queues.clear();
    for (const queue of queues) this.send(queue);
  }

  private send(queue: Queue): void {
    if (this.closed) {
      for (const w of queue.items) w.resolve(unavailable('closed'));
      return;
    }
    const id = this.nextBatch++;
    const subjectSlot = queue.items[0]!.slot;
    // One deadline per batch, its longest request's (every caller gives the same timeout).
    let timeoutMs = 0;
    for (const w of queue.items) timeoutMs = Math.max(timeoutMs, w.timeoutMs);
    const batch: InFlight = { items: queue.items, left: queue.items.length, deadline: performance.now() + timeoutMs, subjectSlot, responder: queue.responder };
    this.inFlight.set(id, batch);
    this.armSweep(timeoutMs);
    try {
      this.nc.publish(this.subjects.own(subjectSlot), encodeBatch(queue.items), { reply: `${this.inbox}.${id}` });
    } catch (error) {
      // Publishing fails only once the connection is draining or closed: the bus is closing.
      this.inFlight.delete(id);
      if (!isClosing(error)) this.onError(error);
      for (const w of queue.items) w.resolve(unavailable('closed'));
    }
  }

  private onReply(msg: Msg): void {
    const id = Number(msg.subject.slice(this.inbox.length + 1));
    const batch = this.inFlight.get(id);
    if (batch === undefined) return; // timed out already, or a duplicate
    if (msg.data.length === 0 && msg.headers?.code === 503) return this.noResponders(id, batch);
    let decoded;
    try {
      decoded = decodeAnswers(msg.data);
    } catch (error) {
      this.onError(error);
      return;
    }
    for (const answer of decoded.answers) {
      const w = batch.items[answer.index];
      if (w === undefined) continue;
      batch.items[answer.index] = undefined;
      batch.left--;
      switch (answer.kind) {
        case AnswerKind.Answer:
          this.hints.set(w.slot, decoded.responder);
          w.resolve({ ok: true, reply: answer.bytes });
          break;
        case AnswerKind.NotHere:
          if (this.hints.get(w.slot) === decoded.responder) this.hints.delete(w.slot);
          this.reroute(w, 'moved');
          break;
        default:
          w.resolve(unavailable('owner-error'));
      }
    }
    if (batch.left === 0) this.inFlight.delete(id);
  }

  /** Nobody serves the batch's subject: its own slot's requests are unavailable; the others are asked at their own slots once. */
  private noResponders(id: number, batch: InFlight): void {
    this.inFlight.delete(id);
    // The node the batch was meant for holds that slot no more, or is gone: none of its hints can be trusted.
    if (batch.responder !== undefined) this.forgetResponder(batch.responder);
    this.hints.delete(batch.subjectSlot);
    for (const w of batch.items) {
      if (w === undefined) continue;
      if (w.slot === batch.subjectSlot) w.resolve(unavailable('no-responders'));
      else this.reroute(w, 'no-responders');
    }
  }

  private reroute(w: Waiting, cause: UnavailableCause): void {
    if (w.rerouted || this.closed) return w.resolve(unavailable(this.closed ? 'closed' : cause));
    w.rerouted = true;
    this.hints.delete(w.slot);
    this.enqueue(w);
  }

  private forgetResponder(responder: string): void {
    for (const [slot, r] of this.hints) if (r === responder) this.hints.delete(slot);
  }

  private armSweep(timeoutMs: number): void {
    // Precise enough: a request ends between its timeout and a quarter of it later (at most 250 ms).
    const every = Math.max(5, Math.min(250, Math.floor(timeoutMs / 4)));
    if (this.sweepTimer !== undefined && every >= this.sweepEveryMs) return;
    clearInterval(this.sweepTimer);
    this.sweepEveryMs = every;
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    const now = performance.now();
    for (const [id, batch] of this.inFlight) {
      if (batch.deadline > now) continue;
      this.inFlight.delete(id);
      if (batch.responder !== undefined) this.forgetResponder(batch.responder);
      for (const w of batch.items) {
        if (w === undefined) continue;
        this.hints.delete(w.slot);
        w.resolve(unavailable('timeout'));
      }
    }
    if (this.inFlight.size === 0) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
      this.sweepEveryMs = 250;
    }
  }
}

// --- the owner's side ---

/**
 * Answers the batches that reach this node's slot subscriptions: each request
 * of a slot it serves goes to the handler, any other is "not here"; the answers
 * a turn decides go back as one reply per batch.
 */
export class BatchAnswerer {
  private readonly responder: Uint8Array;
  private readonly ready = new Map<string, Answer[]>();
  private flushScheduled = false;

  constructor(
    private readonly nc: NatsConnection,
    /** This connection's name in replies: a gateway queues requests for the same responder together. */
    responder: string,
    private readonly serves: (slot: number) => boolean,
    private readonly onError: (error: unknown) => void,
  ) {
    this.responder = Buffer.from(responder, 'latin1');
    if (this.responder.length > 255) throw new RangeError('a responder id is at most 255 bytes');
  }

  take(msg: Msg, handler: SlotHandler): void {
    const reply = msg.reply;
    if (reply === undefined || reply === '') return;
    let items;
    try {
      items = decodeBatch(msg.data);
    } catch (error) {
      this.onError(error);
      return;
    }
    for (let index = 0; index < items.length; index++) {
      const { slot, request } = items[index]!;
      if (!this.serves(slot)) {
        this.add(reply, { index, kind: AnswerKind.NotHere, bytes: EMPTY });
        continue;
      }
      const failed = (error: unknown): void => {
        this.onError(error);
        this.add(reply, { index, kind: AnswerKind.Failed, bytes: EMPTY });
      };
      try {
        const answer = handler(request, slot);
        if (answer instanceof Promise) answer.then((bytes) => this.add(reply, { index, kind: AnswerKind.Answer, bytes }), failed);
        else this.add(reply, { index, kind: AnswerKind.Answer, bytes: answer });
      } catch (error) {
        failed(error);
      }
    }
  }

  private add(reply: string, answer: Answer): void {
    const list = this.ready.get(reply);
    if (list === undefined) this.ready.set(reply, [answer]);
    else list.push(answer);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const [reply, answers] of this.ready) {
      // Answers are small (an ack, an error); a reply of many still stays under the batch bound.
      for (let from = 0; from < answers.length; ) {
        let bytes = 1 + this.responder.length;
        let to = from;
        while (to < answers.length && (to === from || bytes + ANSWER_HEADER_BYTES + answers[to]!.bytes.length <= MAX_BATCH_BYTES)) {
          bytes += ANSWER_HEADER_BYTES + answers[to]!.bytes.length;
          to++;
        }
        try {
          this.nc.publish(reply, encodeAnswers(this.responder, answers.slice(from, to)));
        } catch (error) {
          this.onError(error);
        }
        from = to;
      }
    }
    this.ready.clear();
  }
}
