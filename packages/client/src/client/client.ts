/**
 * The SDK's facade: wires the connection, the outbox, the receive side of each
 * conversation, the catch-up logic and the conversation list together, and
 * reports everything through typed events.
 */
import type { AckFrame, Entry, ServerFrame, WelcomeFrame } from '../protocol/frames.js';
import { MAX_REACTION_KEY, ConversationFold, type ChatMessage } from './fold.js';
import { CHAT_SAVE_INTERVAL_MS, ChatWriter } from './chat-writer.js';
import { ReadSender } from './read-sender.js';
import { countUnread } from './unread.js';
import { readableLast } from './syncer.js';
import { parseConvId } from '../protocol/ids.js';
import { DEFAULT_MAX_BODY } from '../protocol/limits.js';
import { Connection, type ClientState } from './connection.js';
import { ConversationList, type ConversationInfo } from './conversations.js';
import { CursorWriter } from './cursor-writer.js';
import { Emitter, type Listener } from './emitter.js';
import type {
  ClientEvents,
  ConversationMembers,
  HistoryOptions,
  HistoryPage,
  MembershipResult,
  ReadOptions,
  SendOptions,
  TypedEntry,
} from './events.js';
import { SequentClientError } from './errors.js';
import { newDeviceId } from './ids.js';
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './options.js';
import { Outbox, type BlockedConversation, type MessageAction } from './outbox.js';
import { Receipts } from './receipts.js';
import { ReorderBuffer } from './reorder.js';
import type { SendHandle } from './send-handle.js';
import { MemoryClientStore, type ClientIdentity, type ClientSnapshot, type ClientStore } from './store.js';
import { Syncer } from './syncer.js';
import { webSocketTransport } from './transport.js';
import { ConversationView, type ViewItem } from './view.js';

const encoder = new TextEncoder();
/** At most one typing frame per conversation this often: the server forwards one a second, others show it for 5 s. */
export const TYPING_THROTTLE_MS = 3000;
/** How long a typing push is shown. */
export const TYPING_SHOW_MS = 5000;
const DEFAULT_HISTORY_LIMIT = 50;

function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** `Body`: the type of the app's message bodies (see TypedEntry); unknown unless given. */
export class SequentClient<Body = unknown> {
  private readonly options: ResolvedClientOptions;
  private readonly store: ClientStore;
  private readonly events = new Emitter<ClientEvents>();
  private readonly connection: Connection;
  private readonly outbox: Outbox;
  private readonly syncer: Syncer;
  private readonly buffers = new Map<string, ReorderBuffer>();
  private readonly views = new Map<string, ConversationView>();
  private readonly folds = new Map<string, ConversationFold>();
  private readonly list = new ConversationList(
    (conv) => this.cursor(conv),
    (conv, anchor, read) => countUnread(anchor, read, this.folds.get(conv), this.user),
  );
  /** Per conversation, the public read positions of the other members (from info() and read pushes). */
  private readonly receipts = new Receipts();
  private readonly typingSentAt = new Map<string, number>();
  private readonly reads: ReadSender;
  private readonly chatWriter: ChatWriter;
  /** The user's list version the saved rows are caught up to. */
  private version: number | undefined;
  private refresh: { timer: ReturnType<typeof setTimeout> | undefined; again: boolean } | undefined;
  private readonly storedCursors = new Map<string, number>();
  private readonly cursors: CursorWriter;
  private loading: Promise<ClientSnapshot> | undefined;
  private identity: ClientIdentity | undefined;
  private self: { user: string; device: string } | undefined;
  private maxBody = DEFAULT_MAX_BODY;
  private started = false;
  private starting: Promise<void> | undefined;
  private conversationsQueued = false;

  constructor(options: ClientOptions) {
    this.options = resolveClientOptions(options);
    this.store = options.store ?? new MemoryClientStore();
    this.cursors = new CursorWriter(this.store, (error) => this.emit('error', error));
    this.chatWriter = new ChatWriter(
      this.store,
      () => ({ ...(this.version === undefined ? {} : { version: this.version }), convs: this.list.snapshot() }),
      (error) => this.emit('error', error),
      CHAT_SAVE_INTERVAL_MS,
      this.options.now,
    );
    this.reads = new ReadSender({
      ask: (frame) => this.connection.ask(frame, this.options.requestTimeoutMs),
      confirmed: (conv, seq) => this.readMoved(conv, seq, true),
      error: (error) => this.emit('error', error),
    });
    const transport = options.transport ?? webSocketTransport();
    this.connection = new Connection(this.options, transport, () => this.identity?.device ?? '', {
      state: (change) => this.emit('state', change),
      welcome: (welcome, epoch) => this.onWelcome(welcome, epoch),
      push: (frame) => this.onPush(frame),
      lost: () => this.outbox.disconnected(),
      error: (error) => this.emit('error', error),
    });
    this.outbox = new Outbox(this.options, this.store, {
      request: (frame, onReply) => this.connection.request(frame, onReply),
      changed: (handle, previous) => {
        if (previous === undefined) this.viewOf(handle.conv).addPending(handle);
        if (handle.state === 'discarded') this.viewOf(handle.conv).takePending(handle.cmid);
        this.emit('send', { handle, state: handle.state, previous });
      },
      acked: (handle, ack) => this.onAck(handle, ack),
      blocked: (info) => this.emit('blocked', info),
      error: (error) => this.emit('error', error),
    });
    this.syncer = new Syncer(this.options, {
      ask: (frame, timeoutMs) => this.connection.ask(frame, timeoutMs),
      cursorOf: (conv) => this.bufferOf(conv).cursor,
      skipTo: (conv, seq) => this.bufferOf(conv).skipTo(seq),
      accept: (entry) => this.accept(entry),
      summaries: (convs) => {
        if (this.list.applySummaries(convs)) this.conversationsChanged();
        for (const summary of convs) {
          // Before `from` lies history this user may not read (it joined later).
          if (summary.from !== undefined && summary.from > 1) this.bufferOf(summary.conv).skipTo(summary.from - 1);
        }
        this.chatWriter.save();
      },
      version: () => this.version,
      versioned: (version) => {
        this.version = version;
        this.chatWriter.save();
      },
      behind: () =>
        this.list.convs().filter((conv) => {
          const info = this.list.get(conv);
          return info !== undefined && readableLast(info) > this.cursor(conv);
        }),
      error: (error) => this.emit('error', error),
    });
  }

  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents<Body>[K]>): () => void {
    return this.events.on(event, listener as Listener<ClientEvents[K]>);
  }

  off<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents<Body>[K]>): void {
    this.events.off(event, listener as Listener<ClientEvents[K]>);
  }

  get state(): ClientState {
    return this.connection.state;
  }

  /** The user this store belongs to (known after the first welcome). */
  get user(): string | undefined {
    return this.self?.user ?? this.identity?.user;
  }

  /** This install's device id, made once and kept in the store. Pass it to your token service. */
  async deviceId(): Promise<string> {
    await this.load();
    return (this.identity as ClientIdentity).device;
  }

  /** Loads the store, restores unacked sends, and starts connecting (it does not wait for the connection). */
  start(): Promise<void> {
    this.starting ??= (async () => {
      const snapshot = await this.load();
      if (this.connection.state === 'stopped') throw new SequentClientError('stopped', 'the client was stopped');
      this.started = true;
      this.outbox.restore(snapshot);
      this.connection.start();
    })();
    return this.starting;
  }

  /**
   * Resolves when the client is connected and caught up; rejects if it stops
   * first or after `timeoutMs` (default: never), naming why the connection is
   * not up when an attempt failed. `ready(ms)` is `ready({ timeoutMs: ms })`.
   */
  ready(options: number | { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = (typeof options === 'number' ? options : options.timeoutMs) ?? Number.POSITIVE_INFINITY;
    if (this.state === 'ready') return Promise.resolve();
    if (this.state === 'stopped') return Promise.reject(new SequentClientError('stopped', 'the client is stopped'));
    return new Promise((resolve, reject) => {
      const timer = Number.isFinite(timeoutMs)
        ? setTimeout(() => {
            off();
            const why = this.connection.lastFailure;
            reject(new SequentClientError('timeout', `not ready within ${timeoutMs} ms${why === undefined ? '' : `: ${why}`}`));
          }, timeoutMs)
        : undefined;
      const off = this.on('state', ({ to }) => {
        if (to !== 'ready' && to !== 'stopped') return;
        off();
        clearTimeout(timer);
        if (to === 'ready') resolve();
        else reject(new SequentClientError('stopped', 'the client is stopped'));
      });
    });
  }

  /** Closes the connection and stops every timer, for good. Unacked sends stay in the store for the next SequentClient on it. */
  async stop(): Promise<void> {
    this.connection.stop();
    this.outbox.stop();
    for (const buffer of this.buffers.values()) buffer.stop();
    clearTimeout(this.refresh?.timer);
    this.refresh = undefined;
    await this.outbox.drain();
    await this.cursors.drain();
    await this.chatWriter.drain();
  }

  /**
   * Queues a message. It is saved before it goes out, sent and resent with the
   * same cmid and dseq until acked, and shown after the last delivered entry
   * until it takes its place at its seq.
   */
  send(conv: string, body: Body, options: SendOptions = {}): SendHandle<Body> {
    this.assertRunning();
    if (!parseConvId(conv)) throw new SequentClientError('invalid_argument', `not a conversation id: ${String(conv)}`);
    const text = JSON.stringify(body);
    if (text === undefined) throw new SequentClientError('invalid_argument', 'the body must be a JSON value');
    const bytes = utf8Length(text);
    if (bytes > this.maxBody) throw new SequentClientError('too_large', `the body is ${bytes} bytes, more than maxBody (${this.maxBody})`);
    const seen = options.seen ?? Math.max(this.viewOf(conv).highestSeq, this.cursor(conv));
    return this.enqueue(conv, body, seen > 0 ? seen : undefined, undefined) as SendHandle<Body>;
  }

  /** Replaces the text of one's own message at `seq` (any device of the author may). Same outbox, order and retries as send(). */
  edit(conv: string, seq: number, body: Body): SendHandle<Body> {
    return this.enqueue(conv, body, undefined, { kind: 'edit', ref: checkSeq(seq) }) as SendHandle<Body>;
  }

  /** Deletes one's own message at `seq`: everyone's view shows a tombstone there, and the server drops the content. */
  delete(conv: string, seq: number): SendHandle<null> {
    return this.enqueue(conv, null, undefined, { kind: 'delete', ref: checkSeq(seq) }) as SendHandle<null>;
  }

  /** Sets (on, the default) or clears this user's reaction `key` (1–32 characters) on the message at `seq`. */
  react(conv: string, seq: number, key: string, on = true): SendHandle<{ key: string; on: boolean }> {
    if (typeof key !== 'string' || key.length < 1 || key.length > MAX_REACTION_KEY) {
      throw new SequentClientError('invalid_argument', `a reaction key has 1 to ${MAX_REACTION_KEY} characters: ${String(key)}`);
    }
    return this.enqueue(conv, { key, on: on === true }, undefined, { kind: 'react', ref: checkSeq(seq) }) as SendHandle<{ key: string; on: boolean }>;
  }

  /**
   * The app has shown the conversation up to `seq`: moves the user's read
   * position there (never back), for all its devices. Calls are coalesced, so
   * call it as often as the screen moves; offline, it goes out on the next
   * connection (and survives a restart with a store that has saveChat).
   */
  markRead(conv: string, seq: number, options: ReadOptions = {}): void {
    this.assertRunning();
    if (!parseConvId(conv)) throw new SequentClientError('invalid_argument', `not a conversation id: ${String(conv)}`);
    // Above the newest known entry the server says bad_request: one cannot have displayed it.
    const target = Math.min(checkSeq(seq), this.list.get(conv)?.last ?? 0);
    if (!this.list.moveRead(conv, target, false)) return;
    this.readMoved(conv, target, false);
    if (this.connection.authenticated) this.reads.want(conv, target, options.private === true);
  }

  /** Messages by other users not yet read, over every conversation. */
  totalUnread(): number {
    return this.list.totalUnread();
  }

  /**
   * The conversation folded for a chat screen: each msg and system entry once
   * in seq order, showing its newest edit and its reactions, or a tombstone
   * (`deleted`, body null) — the same whatever order pushes and syncs came in.
   * Holds what this session delivered and what history() loaded.
   */
  messages(conv: string): ChatMessage<Body>[] {
    return this.foldOf(conv).messages() as ChatMessage<Body>[];
  }

  /** "Load earlier": the entries just below `before` (default: below the oldest held), folded into messages(). */
  async history(conv: string, options: HistoryOptions = {}): Promise<HistoryPage<Body>> {
    this.assertRunning();
    const fold = this.foldOf(conv);
    const before = options.before === undefined ? (fold.lowest ?? this.cursor(conv) + 1) : checkSeq(options.before);
    const limit = Math.min(1000, Math.max(1, Math.floor(options.limit ?? DEFAULT_HISTORY_LIMIT)));
    const readableFrom = this.list.get(conv)?.from ?? 1;
    if (before <= readableFrom) return { messages: [], from: undefined, more: false };
    await this.connection.whenAuthenticated(this.options.requestTimeoutMs);
    const reply = await this.connection.ask({ t: 'sync', conv, before, limit }, this.options.requestTimeoutMs);
    if (reply.t === 'error') throw new SequentClientError(reply.code, `history of ${conv}: ${reply.message}`);
    if (reply.t !== 'batch') throw new SequentClientError('protocol', `unexpected reply to sync: ${reply.t}`);
    for (const msg of reply.msgs) {
      fold.add(msg);
      this.receipts.entry(msg);
    }
    const from = reply.msgs[0]?.seq;
    this.conversationsChanged();
    return {
      messages: fold.messages().filter((m) => from !== undefined && m.seq >= from && m.seq < before) as ChatMessage<Body>[],
      from,
      more: from !== undefined && from > readableFrom,
    };
  }

  /** The user is typing in `conv`: tells the other members, at most once per TYPING_THROTTLE_MS; offline, nothing. */
  typing(conv: string): void {
    this.assertRunning();
    const now = this.options.now();
    if (now - (this.typingSentAt.get(conv) ?? Number.NEGATIVE_INFINITY) < TYPING_THROTTLE_MS) return;
    if (this.connection.request({ t: 'typing', conv }, () => undefined) !== undefined) this.typingSentAt.set(conv, now);
  }

  /** The members and their public read positions; seenBy() stays current from read pushes after it. */
  async info(conv: string): Promise<ConversationMembers> {
    this.assertRunning();
    await this.connection.whenAuthenticated(this.options.requestTimeoutMs);
    const reply = await this.connection.ask({ t: 'info', conv }, this.options.requestTimeoutMs);
    if (reply.t === 'error') throw new SequentClientError(reply.code, `info of ${conv}: ${reply.message}`);
    if (reply.t !== 'info') throw new SequentClientError('protocol', `unexpected reply to info: ${reply.t}`);
    const read = this.receipts.fromInfo(conv, reply.members, reply.read);
    return { conv, members: [...reply.members], last: reply.last, read };
  }

  /**
   * The other members whose public read position is at or past `seq` (after info(), kept current by
   * read pushes and by their own entries); a member added after `seq` never counts.
   */
  seenBy(conv: string, seq: number): string[] {
    return this.receipts.seenBy(conv, seq, this.user);
  }

  /** Creates a group (`g:<name>`); the caller is a member too. Resolves with the seq of its creation entry. */
  async create(conv: string, members: readonly string[]): Promise<MembershipResult> {
    if (parseConvId(conv)?.kind !== 'group') throw new SequentClientError('invalid_argument', `not a group id: ${String(conv)}`);
    return this.membership({ t: 'create', conv, members: [...members] });
  }

  /** Adds and removes members of a group; resolves with the seq of the change. */
  async members(conv: string, change: { add?: readonly string[]; remove?: readonly string[] }): Promise<MembershipResult> {
    if (parseConvId(conv)?.kind !== 'group') throw new SequentClientError('invalid_argument', `not a group id: ${String(conv)}`);
    const frame = { t: 'members' as const, conv, ...(change.add ? { add: [...change.add] } : {}), ...(change.remove ? { remove: [...change.remove] } : {}) };
    return this.membership(frame);
  }

  /** Reads the conversation up to the server's newest entry (waiting for a connection). */
  async sync(conv: string): Promise<void> {
    this.assertRunning();
    await this.connection.whenAuthenticated(this.options.requestTimeoutMs);
    await this.syncer.syncConv(conv);
  }

  /** The user's conversations, most recent activity first, with read positions and unread counts. */
  conversations(): ConversationInfo[] {
    return this.list.list();
  }

  /** The conversation as the app shows it: delivered entries by seq, then own messages on their way. */
  view(conv: string): ViewItem[] {
    return this.viewOf(conv).items();
  }

  /** Entries delivered in this session, ascending seq. */
  entries(conv: string): readonly TypedEntry<Body>[] {
    return this.viewOf(conv).entries as readonly TypedEntry<Body>[];
  }

  /** Unacked sends (sending or failed), per conversation in send order. */
  pending(conv?: string): SendHandle<Body>[] {
    return this.outbox.handles(conv) as SendHandle<Body>[];
  }

  /** Conversations whose sends are stuck behind a failed one (see the `blocked` event), or just that one's. */
  blocked(conv?: string): BlockedConversation[] {
    const all = this.outbox.blocked();
    return conv === undefined ? all : all.filter((info) => info.conv === conv);
  }

  /**
   * Unblocks a conversation the server refused for good (`discardable`): drops
   * every failed send of it from the outbox and the store. Resolves with the
   * dropped handles (now `discarded`); rejects with `cannot_discard` when the
   * server may have them (retry() those).
   */
  discard(conv: string): Promise<SendHandle<Body>[]> {
    this.assertRunning();
    return this.outbox.discard(conv) as Promise<SendHandle<Body>[]>;
  }

  /** Everything up to this seq has been delivered (or is not readable for this user). */
  cursor(conv: string): number {
    return this.buffers.get(conv)?.cursor ?? this.storedCursors.get(conv) ?? 0;
  }

  private load(): Promise<ClientSnapshot> {
    this.loading ??= (async () => {
      const snapshot = await this.store.load();
      for (const record of snapshot.convs) this.storedCursors.set(record.conv, record.cursor);
      if (snapshot.chat) {
        this.list.restore(snapshot.chat.convs);
        this.version = snapshot.chat.version;
      }
      this.identity = snapshot.identity;
      if (!this.identity) {
        this.identity = { device: newDeviceId() };
        await this.store.setIdentity(this.identity);
      }
      return snapshot;
    })();
    return this.loading;
  }

  private assertRunning(): void {
    if (this.connection.state === 'stopped') throw new SequentClientError('stopped', 'the client is stopped');
    if (!this.started) throw new SequentClientError('not_started', 'call start() first');
  }

  private async membership(frame: Parameters<Connection['ask']>[0] & { conv: string }): Promise<MembershipResult> {
    this.assertRunning();
    await this.connection.whenAuthenticated(this.options.requestTimeoutMs);
    const reply = await this.connection.ask(frame, this.options.requestTimeoutMs);
    if (reply.t === 'error') throw new SequentClientError(reply.code, reply.message);
    if (reply.t !== 'ok') throw new SequentClientError('protocol', `unexpected reply to ${frame.t}: ${reply.t}`);
    // This connection gets no push of its own change: read it (and anything before it) from the log.
    this.syncer.syncConv(frame.conv).catch((error: unknown) => this.reportSyncError(frame.conv, error));
    return { conv: reply.conv, seq: reply.seq };
  }

  private onWelcome(welcome: WelcomeFrame, epoch: number): void {
    const identity = this.identity as ClientIdentity;
    if (identity.user !== undefined && (identity.user !== welcome.user || identity.device !== welcome.device)) {
      this.connection.fail(
        new SequentClientError(
          'identity_mismatch',
          `this store belongs to ${identity.user}/${identity.device}, the token to ${welcome.user}/${welcome.device}`,
        ),
      );
      return;
    }
    if (identity.user === undefined) {
      // The first server contact binds the store to the token's user and device.
      this.identity = { user: welcome.user, device: welcome.device };
      this.store.setIdentity(this.identity).catch((error: unknown) => {
        this.emit('error', new SequentClientError('store', 'could not save the identity', error));
      });
    }
    this.self = { user: welcome.user, device: welcome.device };
    this.maxBody = welcome.limits.maxBody;
    this.outbox.setHoldMs(welcome.holdMs);
    this.outbox.flush();
    for (const { conv, read } of this.list.unconfirmedReads()) this.reads.want(conv, read, false);
    this.syncer.catchUp().then(
      () => this.connection.markReady(epoch),
      (error: unknown) => {
        if (error instanceof SequentClientError && error.code === 'connection_lost') return;
        this.emit('error', error instanceof SequentClientError ? error : new SequentClientError('protocol', 'catch-up failed', error));
        // Catch-up is retried on the next connection; a connection that cannot catch up is replaced.
        if (epoch === this.connection.epoch) this.connection.reconnect('catch-up failed');
      },
    );
  }

  private onPush(frame: ServerFrame): void {
    if (frame.t === 'msg') {
      const { t: _type, ...entry } = frame;
      this.accept(entry);
    } else if (frame.t === 'read') {
      const own = frame.user === this.user;
      if (own) this.readMoved(frame.conv, frame.seq, true);
      else this.receipts.moved(frame.conv, frame.user, frame.seq);
      this.emit('read', { conv: frame.conv, user: frame.user, seq: frame.seq, own });
    } else if (frame.t === 'typing') {
      if (frame.user !== this.user) this.emit('typing', { conv: frame.conv, user: frame.user, until: this.options.now() + TYPING_SHOW_MS });
    } else if (frame.t === 'error') {
      this.emit('error', new SequentClientError(frame.code, frame.message));
    }
    // Frames of kinds this SDK does not know are ignored: servers may add more.
  }

  private onAck(handle: SendHandle, ack: AckFrame): void {
    const self = this.self;
    if (!self) return;
    const entry: Entry = {
      conv: ack.conv,
      seq: ack.seq,
      kind: handle.kind,
      mid: ack.mid,
      ts: ack.ts,
      from: self.user,
      dev: self.device,
      cmid: ack.cmid,
      dseq: ack.dseq,
      body: handle.body,
    };
    if (handle.seen !== undefined) entry.ctx = { seen: handle.seen };
    if (handle.ref !== undefined) entry.ref = handle.ref;
    this.accept(entry);
  }

  /** Every entry, from any source, comes in here. */
  private accept(entry: Entry): void {
    const self = this.self;
    if (self && entry.cmid !== undefined && entry.from === self.user && entry.dev === self.device) {
      // Our own message, seen in the log: as good as its ack (which may have been lost).
      this.outbox.settle(entry.conv, entry.cmid, entry);
    }
    let listChanged = this.list.touch(entry);
    // Sending an entry moves the sender's read position to it, on the server too.
    if (self && entry.from === self.user && this.list.moveRead(entry.conv, entry.seq, true)) listChanged = true;
    if (self && entry.kind === 'system') listChanged = this.list.applyMembership(entry.conv, self.user, entry.seq, entry.body) || listChanged;
    if (listChanged) this.conversationsChanged();
    this.receipts.entry(entry);
    this.bufferOf(entry.conv).accept(entry);
  }

  private bufferOf(conv: string): ReorderBuffer {
    let buffer = this.buffers.get(conv);
    if (!buffer) {
      buffer = new ReorderBuffer(conv, this.storedCursors.get(conv) ?? 0, this.options.delivery, this.options.gapWaitMs, {
        deliver: (entry) => this.deliver(entry),
        cursor: (cursor) => this.saveCursor(conv, cursor),
        gap: () => this.fillGap(conv),
      });
      this.buffers.set(conv, buffer);
    }
    return buffer;
  }

  private foldOf(conv: string): ConversationFold {
    let fold = this.folds.get(conv);
    if (!fold) {
      fold = new ConversationFold();
      this.folds.set(conv, fold);
    }
    return fold;
  }

  private enqueue(conv: string, body: unknown, seen: number | undefined, action: MessageAction | undefined): SendHandle {
    this.assertRunning();
    if (!parseConvId(conv)) throw new SequentClientError('invalid_argument', `not a conversation id: ${String(conv)}`);
    const text = JSON.stringify(body);
    if (text === undefined) throw new SequentClientError('invalid_argument', 'the body must be a JSON value');
    const bytes = utf8Length(text);
    if (bytes > this.maxBody) throw new SequentClientError('too_large', `the body is ${bytes} bytes, more than maxBody (${this.maxBody})`);
    // A copy: what is sent (and resent) must not change if the app mutates its object.
    return this.outbox.enqueue(conv, JSON.parse(text) as unknown, seen, action);
  }

  /** This user's read position moved (markRead, a read push, the server's reply, an own entry). */
  private readMoved(conv: string, seq: number, confirmed: boolean): void {
    this.list.moveRead(conv, seq, confirmed);
    this.conversationsChanged();
    // Read on another device past what this session holds: only the server can count what is left.
    if (!this.list.unreadOf(conv).exact) this.refreshList();
  }

  /** Asks the server for the rows changed since the version (coalesced); a failure waits for the next catch-up. */
  private refreshList(): void {
    if (this.refresh) {
      this.refresh.again = true;
      return;
    }
    const run = { timer: undefined as ReturnType<typeof setTimeout> | undefined, again: false };
    this.refresh = run;
    run.timer = setTimeout(() => {
      if (!this.connection.authenticated) {
        this.refresh = undefined;
        return;
      }
      this.syncer.readList().then(
        () => {
          this.refresh = undefined;
          if (run.again) this.refreshList();
        },
        () => {
          this.refresh = undefined;
        },
      );
    }, 20);
  }

  private viewOf(conv: string): ConversationView {
    let view = this.views.get(conv);
    if (!view) {
      view = new ConversationView();
      this.views.set(conv, view);
    }
    return view;
  }

  private deliver(entry: Entry): void {
    const self = this.self;
    const own = self !== undefined && entry.from === self.user && entry.dev === self.device;
    const view = this.viewOf(entry.conv);
    if (own && entry.cmid !== undefined) view.takePending(entry.cmid);
    const index = view.insert(entry);
    this.foldOf(entry.conv).add(entry);
    if (entry.kind === 'msg' || entry.kind === 'delete') this.conversationsChanged();
    this.emit('message', { conv: entry.conv, entry: entry as TypedEntry, index, own });
  }

  private fillGap(conv: string): void {
    if (!this.connection.authenticated) return; // the next connection's catch-up fills it
    this.syncer.syncConv(conv).then(
      () => this.buffers.get(conv)?.recheck(),
      (error: unknown) => this.reportSyncError(conv, error),
    );
  }

  private reportSyncError(conv: string, error: unknown): void {
    if (error instanceof SequentClientError && error.code === 'connection_lost') return;
    this.emit('error', error instanceof SequentClientError ? error : new SequentClientError('protocol', `sync of ${conv} failed`, error));
  }

  private saveCursor(conv: string, cursor: number): void {
    this.conversationsChanged();
    this.cursors.save(conv, cursor);
  }

  private conversationsChanged(): void {
    this.chatWriter.save();
    if (this.conversationsQueued || this.events.listenerCount('conversations') === 0) return;
    this.conversationsQueued = true;
    queueMicrotask(() => {
      this.conversationsQueued = false;
      this.emit('conversations', this.list.list());
    });
  }

  private emit<K extends keyof ClientEvents>(event: K, payload: ClientEvents[K]): void {
    this.events.emit(event, payload, (error) => this.options.logger?.warn({ event, error: String(error) }, 'an event listener threw'));
  }
}

function checkSeq(seq: number): number {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new SequentClientError('invalid_argument', `not a seq: ${String(seq)}`);
  return seq;
}
