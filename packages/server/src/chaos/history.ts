/**
 * The recorded history of a chaos run: what every client sent and was told,
 * in the order it happened, so that the checker can judge the server's
 * promises afterwards without trusting any client's own bookkeeping.
 *
 * Format. A history is an array of events, each a plain JSON object with a
 * `type` and `at`: milliseconds on one monotonic clock for the whole run
 * (e.g. `performance.now()` minus the run's start). Events are appended as
 * they happen, so `at` never decreases along the array. A history is stored
 * as JSON Lines (one event per line): a run streams it to disk as it goes
 * (`HistoryFile` in history-file.ts), so a long run never holds it in memory;
 * `toJsonLines` / `parseJsonLines` are for small histories (tests).
 *
 * Identities. `user` and `device` are the protocol's; `conn` names one
 * WebSocket connection of one device (any string unique in the run, e.g.
 * "u1/d2#7"), so pushes can be grouped per connection.
 *
 * Events:
 * - `send`         a send frame went out: user, device, conv, cmid, dseq, body
 *                  (text or digest, for reading evidence), conn, attempt (1 the
 *                  first time, 2+ for a resend of the same cmid); kind and ref
 *                  for an edit, delete or reaction.
 * - `ack`          the ack of a send: user, device, conv, cmid, dseq, seq, mid, ts, conn.
 *                  `at` is when the ack reached the client. Every answer is recorded,
 *                  also a second one to the same request (a duplicated frame), so
 *                  that dedup answers can be compared.
 * - `error`        an error answering a send: user, device, conv, cmid, dseq, code,
 *                  expected (with out_of_order), conn.
 * - `push`         a msg frame arrived: conn, user, device, conv, entry.
 * - `sync-start`   a sync frame went out: sync (an id unique in the run), user, device,
 *                  conv, after, limit, conn; `before` for a page of older history.
 * - `sync-result`  its batch: sync, user, device, conv, after, limit, entries, last.
 * - `membership`   a create or members request: user (who asked), conv, op
 *                  ('create' | 'members'), add, remove, and seq once acked
 *                  (absent when it failed or was never answered), or the error
 *                  `code` that refused it. A members change that changed nothing
 *                  is answered with the conversation's current seq, which may be
 *                  a message's.
 * - `fault`        a fault the harness injected: kind (see FAULT_KINDS), and what it
 *                  hit (conn, user, device) where known.
 * - `pending`      at the end of a run, a send its device still holds unacked: user,
 *                  device, conv, cmid, dseq, state ('sending' | 'failed'), reason.
 * - `final-refused` the final read of a device was refused or failed: user, device,
 *                  conv (when one conversation failed), reason.
 * - `connect` / `disconnect`   a connection of a device opened / closed (code, reason).
 * - `server-kill`, `server-start`   the server was SIGKILLed / (re)started and serves.
 * - `client-kill`, `client-start`   a device's client was killed / restarted from its
 *                  persisted store.
 * - `final-log`    at the end, a device's whole readable log of one conversation,
 *                  synced page by page after all faults stopped: entries and the
 *                  `last` the server reported.
 * - `read-result`  the answer to a `read` request: user, device, conv, asked (the seq
 *                  requested), seq (the position the server answered), sentAt (the
 *                  request's `at`), conn.
 * - `read-push`    a `read` push arrived: conn, user, device, conv, reader, seq.
 * - `convs-result` the answer to a `convs` request: user, device, sentAt, since (when
 *                  asked), version, full, rows (conv, last, read, unread), unread.
 * - `final-view`   at the end, the folded view a device's SDK shows of one
 *                  conversation (see chat-state-checker.ts `FoldedItem`).
 *
 * Pure: no Node built-ins, so it runs anywhere the checker does.
 */
import type { AckFrame, Entry } from 'sequent-client/protocol';

/**
 * One log entry as seen by a client (a push or a batch item), reduced to what the
 * checks need: the protocol's Entry without its conversation (the event names it)
 * and ctx; `body` is the body as received, or a digest of it (system entries keep
 * their body: membership ops).
 */
export type HistoryEntry = Omit<Entry, 'conv' | 'ctx' | 'body'> & { body?: unknown };

interface Base {
  /** ms on the run's monotonic clock */
  at: number;
}

interface DeviceRef {
  user: string;
  device: string;
}

export interface SendEvent extends Base, DeviceRef {
  type: 'send';
  conv: string;
  cmid: string;
  dseq: number;
  body?: unknown;
  conn?: string;
  attempt?: number;
  /** absent for a message */
  kind?: 'edit' | 'delete' | 'react';
  ref?: number;
}

/** An ack as the client received it: the protocol's AckFrame without its framing (t, request id). */
export interface AckEvent extends Base, DeviceRef, Omit<AckFrame, 't' | 'id'> {
  type: 'ack';
  conn?: string;
  injected?: InjectedMark;
}

export interface SendErrorEvent extends Base, DeviceRef {
  type: 'error';
  conv: string;
  cmid: string;
  dseq: number;
  code: string;
  expected?: number;
  conn?: string;
}

/** Set on a frame the fault proxy duplicated or held back: not the server's doing. */
export type InjectedMark = 'dup' | 'reorder';

export interface PushEvent extends Base, DeviceRef {
  type: 'push';
  conn: string;
  conv: string;
  entry: HistoryEntry;
  injected?: InjectedMark;
}

export interface SyncStartEvent extends Base, DeviceRef {
  type: 'sync-start';
  sync: string;
  conv: string;
  after: number;
  limit: number;
  /** an older-history page (`sync` with `before`): the entries just below it; `after` is then 0 */
  before?: number;
  conn?: string;
}

export interface SyncResultEvent extends Base, DeviceRef {
  type: 'sync-result';
  sync: string;
  conv: string;
  after: number;
  limit: number;
  before?: number;
  entries: HistoryEntry[];
  last: number;
}

export interface MembershipEvent extends Base {
  type: 'membership';
  user: string;
  conv: string;
  op: 'create' | 'members';
  add: string[];
  remove: string[];
  seq?: number;
  /** the error code that refused it */
  code?: string;
}

/** Every fault the harness can inject; each fired one is a `fault` event. */
export const FAULT_KINDS = [
  'server-kill',
  'server-pause',
  'clock-step',
  'client-kill',
  'cut',
  'stall',
  'half-open',
  'lost-reply',
  'dup-to-server',
  'dup-to-client',
  'reorder-to-client',
] as const;
/** Faults only a cluster run has: one node's (or every node's) NATS connections cut, one node's PostgreSQL packets dropped. */
export const CLUSTER_FAULT_KINDS = ['nats-cut', 'pg-drop'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number] | (typeof CLUSTER_FAULT_KINDS)[number];

export interface FaultEvent extends Base {
  type: 'fault';
  kind: FaultKind;
  /** cluster runs: the node it hit ('all' for every node) */
  node?: string;
  conn?: string;
  user?: string;
  device?: string;
  /** e.g. the pause or stall length, the clock offset, the sends in flight at a kill */
  detail?: string;
}

/** Cluster runs: the lease epoch of every entry of a conversation, in seq order, read from the database at the end. */
export interface EpochsEvent extends Base {
  type: 'epochs';
  conv: string;
  seqs: number[];
  epochs: number[];
}

/** The faults stopped: every send must be acked within `boundMs` of this (or of its first try, if later). */
export interface FaultsStopEvent extends Base {
  type: 'faults-stop';
  boundMs: number;
}

/** Cluster runs: a node killed, paused or cut off from PostgreSQL, with the conversations of the slots it held. */
export interface NodeHurtEvent extends Base {
  type: 'node-hurt';
  node: string;
  fault: 'server-kill' | 'server-pause' | 'pg-drop';
  slots: number;
  convs: string[];
}

/** Cluster runs: the hurt node restarted, resumed or reaching PostgreSQL again. */
export interface NodeHealedEvent extends Base {
  type: 'node-healed';
  node: string;
  fault: NodeHurtEvent['fault'];
}

/** Cluster runs: a node's restart under its name failed (`gaveUp` once every attempt did). */
export interface NodeStartFailedEvent extends Base {
  type: 'node-start-failed';
  node: string;
  attempt: number;
  error: string;
  gaveUp?: true;
}

/**
 * Cluster runs, from polling GET /cluster: every slot the hurt node held is held
 * again by a live node (another, or itself after a restart), `ms` after the fault;
 * `by` is 'timeout' when that was not seen within the poll's bound.
 */
export interface TakeoverEvent extends Base {
  type: 'takeover';
  node: string;
  fault: NodeHurtEvent['fault'];
  ms: number;
  by: 'others' | 'itself' | 'timeout';
  slots: number;
}

export interface PendingEvent extends Base, DeviceRef {
  type: 'pending';
  conv: string;
  cmid: string;
  dseq: number;
  state: 'sending' | 'failed';
  reason: string;
}

export interface FinalRefusedEvent extends Base, DeviceRef {
  type: 'final-refused';
  conv?: string;
  reason: string;
}

export interface ConnectEvent extends Base, DeviceRef {
  type: 'connect';
  conn: string;
}

export interface DisconnectEvent extends Base, DeviceRef {
  type: 'disconnect';
  conn: string;
  code?: number;
  reason?: string;
}

export interface ServerKillEvent extends Base {
  type: 'server-kill';
}

export interface ServerStartEvent extends Base {
  type: 'server-start';
}

export interface ClientKillEvent extends Base, DeviceRef {
  type: 'client-kill';
}

export interface ClientStartEvent extends Base, DeviceRef {
  type: 'client-start';
}

export interface FinalLogEvent extends Base, DeviceRef {
  type: 'final-log';
  conv: string;
  entries: HistoryEntry[];
  last: number;
}

export interface ReadResultEvent extends Base, DeviceRef {
  type: 'read-result';
  conv: string;
  asked: number;
  seq: number;
  sentAt: number;
  conn?: string;
}

export interface ReadPushEvent extends Base, DeviceRef {
  type: 'read-push';
  conn: string;
  conv: string;
  reader: string;
  seq: number;
  injected?: InjectedMark;
}

/** A row of a `convs` answer; read and unread only from a server that has the chat state. */
export interface ConvsRow {
  conv: string;
  last: number;
  read?: number;
  unread?: number;
}

export interface ConvsResultEvent extends Base, DeviceRef {
  type: 'convs-result';
  sentAt: number;
  since?: number;
  version: number;
  full: boolean;
  more: boolean;
  /** the server left its least recently active rows out (maxConvs) */
  truncated?: true;
  rows: ConvsRow[];
  unread?: number;
  conn?: string;
}

/** One folded message as the SDK shows it (chat-state-checker.ts judges it). */
export interface FinalViewItem {
  seq: number;
  from: string;
  body: unknown;
  deleted: boolean;
  reactions: Record<string, string[]>;
}

export interface FinalViewEvent extends Base, DeviceRef {
  type: 'final-view';
  conv: string;
  items: FinalViewItem[];
}

export type HistoryEvent =
  | ReadResultEvent
  | ReadPushEvent
  | ConvsResultEvent
  | FinalViewEvent
  | SendEvent
  | AckEvent
  | SendErrorEvent
  | PushEvent
  | SyncStartEvent
  | SyncResultEvent
  | MembershipEvent
  | ConnectEvent
  | DisconnectEvent
  | ServerKillEvent
  | ServerStartEvent
  | ClientKillEvent
  | ClientStartEvent
  | FinalLogEvent
  | FaultEvent
  | PendingEvent
  | FinalRefusedEvent
  | EpochsEvent
  | FaultsStopEvent
  | NodeHurtEvent
  | NodeHealedEvent
  | NodeStartFailedEvent
  | TakeoverEvent;

export type HistoryEventType = HistoryEvent['type'];
export type History = readonly HistoryEvent[];

/** Where a recorder puts its events: an array (tests) or a file written as the run goes. */
export interface HistorySink {
  write(event: HistoryEvent): void;
}

/** An event as given to `record`, without its time. */
export type Unstamped<E extends HistoryEvent = HistoryEvent> = E extends HistoryEvent ? Omit<E, 'at'> : never;

/**
 * Appends events stamped with one monotonic clock. Without a sink it keeps them
 * in `events`; with one it keeps nothing, so memory does not grow with the run.
 */
export class HistoryRecorder {
  private readonly list: HistoryEvent[] = [];
  private lastAt = 0;
  private readonly start: number;
  private recorded = 0;

  /** @param clock ms, monotonic; defaults to `performance.now()` (global in Node and browsers) */
  constructor(
    private readonly clock: () => number = () => performance.now(),
    private readonly sink?: HistorySink,
  ) {
    this.start = clock();
  }

  /** Records an event now and returns it. */
  record<E extends HistoryEvent>(event: Unstamped<E>): E {
    // Clamp: two clocks or rounding must never make `at` go backwards in the file.
    const at = Math.max(this.lastAt, Math.round((this.clock() - this.start) * 1000) / 1000);
    this.lastAt = at;
    const stamped = { ...event, at } as E;
    this.recorded++;
    if (this.sink) this.sink.write(stamped);
    else this.list.push(stamped);
    return stamped;
  }

  /** Events recorded so far (also those handed to a sink). */
  get count(): number {
    return this.recorded;
  }

  /** Ms since the recorder started, on the same clock as `at`. */
  now(): number {
    return this.clock() - this.start;
  }

  get events(): History {
    return this.list;
  }
}

/** Turns a pushed frame or batch item into a history entry; `body` decides how the body is kept. */
export function toHistoryEntry(
  entry: Omit<Entry, 'conv' | 'ctx'>,
  body: (body: unknown) => unknown = bodyDigest,
): HistoryEntry {
  const out: HistoryEntry = { seq: entry.seq, kind: entry.kind, mid: entry.mid, ts: entry.ts, from: entry.from, dev: entry.dev };
  if (entry.cmid !== undefined) out.cmid = entry.cmid;
  if (entry.dseq !== undefined) out.dseq = entry.dseq;
  if (entry.ref !== undefined) out.ref = entry.ref;
  if (entry.edited !== undefined) out.edited = entry.edited;
  if (entry.deleted !== undefined) out.deleted = entry.deleted;
  // A null body stays null (a deleted message, a delete), so a leaked body shows; system
  // entries and reactions keep theirs: the checker folds memberships and reactions from them.
  out.body = entry.body === null || entry.kind === 'system' || entry.kind === 'react' ? entry.body : body(entry.body);
  return out;
}

/** A short stable digest of a JSON body (FNV-1a 32 over its JSON), enough to tell two bodies apart in evidence. */
export function bodyDigest(body: unknown): string {
  // Keys sorted: a store may hand a body back with its keys in another order (PostgreSQL's jsonb does).
  const text = JSON.stringify(body, (_key, value: unknown) =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value,
  ) ?? 'undefined';
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return `#${(hash >>> 0).toString(16).padStart(8, '0')}`;
}

export function toJsonLines(history: History): string {
  return history.map((event) => JSON.stringify(event)).join('\n') + (history.length > 0 ? '\n' : '');
}

/** One line of a history file as an event; `line` (1-based) names it in the error. */
export function parseEventLine(text: string, line: number): HistoryEvent {
  let event: HistoryEvent;
  try {
    event = JSON.parse(text) as HistoryEvent;
  } catch {
    throw new Error(`history line ${line}: not JSON`);
  }
  if (typeof event !== 'object' || event === null || typeof event.type !== 'string' || typeof event.at !== 'number') {
    throw new Error(`history line ${line}: not an event`);
  }
  return event;
}

export function parseJsonLines(text: string): HistoryEvent[] {
  const out: HistoryEvent[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() !== '') out.push(parseEventLine(line, index + 1));
  });
  return out;
}
