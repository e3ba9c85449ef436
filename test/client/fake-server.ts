/**
 * A scriptable, in-memory Sequent server for the SDK's deterministic tests. It
 * implements the protocol's rules (dedup by cmid, dseq order with hold-back,
 * gapless seqs, ordered pushes, paged sync, membership from/until) and lets a
 * test step in at every frame: drop it, close around it, delay or duplicate a
 * reply, or push arbitrary frames in any order.
 *
 * The chat state (edits, deletes, reactions, read positions, unread counts,
 * list versions, typing, info) follows the rules in fake-chat.ts.
 *
 * Tokens are "user/device"; anything else is refused.
 */
import type { ClientFrame, ConvSummary, Entry, ServerFrame } from '../../packages/client/src/protocol/frames.js';
import type { Transport } from '../../packages/client/src/client/transport.js';
import { createPipe, refusedConnection, type ServerEnd } from './memory-pipe.js';
import { FakeChatState, refuseAction, synced, unreadIn } from './fake-chat.js';

/** What to do with a client frame. */
export type FrameVerdict = 'handle' | 'drop' | 'handle-then-cut' | 'cut';
/** What to do with a frame to the client: send it, drop it, send it twice, or send it after `delay` ms. */
export type OutVerdict = 'send' | 'drop' | 'duplicate' | { delay: number };

export class FakeConnection {
  user: string | undefined;
  device: string | undefined;
  readonly received: ClientFrame[] = [];
  readonly sent: ServerFrame[] = [];
  /** While true, nothing gets through in either direction (a dead path). */
  blackhole = false;

  constructor(
    readonly number: number,
    readonly end: ServerEnd,
    private readonly server: FakeServer,
  ) {}

  /** Sends a frame as is (any order, any content), bypassing onOutgoing. */
  deliver(frame: object): void {
    this.sent.push(frame as ServerFrame);
    if (!this.blackhole) this.end.send(JSON.stringify(frame));
  }

  /** Sends a frame through the onOutgoing script. */
  reply(frame: ServerFrame): void {
    const verdict = this.server.onOutgoing?.(frame, this) ?? 'send';
    if (verdict === 'drop') return;
    if (typeof verdict === 'object') {
      this.sent.push(frame);
      if (!this.blackhole) this.end.sendLater(JSON.stringify(frame), verdict.delay);
      return;
    }
    this.deliver(frame);
    if (verdict === 'duplicate') this.deliver(frame);
  }

  close(code: number, reason = ''): void {
    this.end.close(code, reason);
  }

  cut(): void {
    this.end.cut();
  }

  get open(): boolean {
    return !this.end.closed;
  }
}

interface Membership {
  from: number;
  until?: number;
}

interface Conv {
  log: Entry[];
  /** Groups only; DMs are readable by both users from seq 1. */
  members: Map<string, Membership> | undefined;
}

interface DeviceOrder {
  expected: number;
  acks: Map<string, { seq: number; mid: string; ts: number; dseq: number }>;
  held: Map<number, { frame: Extract<ClientFrame, { t: 'send' }>; connection: FakeConnection; timer: ReturnType<typeof setTimeout> }>;
}

export class FakeServer {
  readonly connections: FakeConnection[] = [];
  private readonly convs = new Map<string, Conv>();
  private readonly orders = new Map<string, DeviceOrder>();
  private nextMid = 1000;
  readonly chat = new FakeChatState();
  private clock = 1_700_000_000_000;
  /** Sent in welcome; a dseq gap waits this long before out_of_order. */
  holdMs = 30;
  /** The protocol version this server speaks. */
  proto = 1;
  /** While true, connection attempts fail. */
  refuse = false;
  /** Called for every client frame after hello. */
  onFrame: ((frame: ClientFrame, connection: FakeConnection) => FrameVerdict | void) | undefined;
  /** Called for every reply and push. */
  onOutgoing: ((frame: ServerFrame, connection: FakeConnection) => OutVerdict | void) | undefined;

  readonly transport: Transport = {
    open: () => {
      if (this.refuse) return refusedConnection();
      const { client, server } = createPipe();
      const connection = new FakeConnection(this.connections.length + 1, server, this);
      this.connections.push(connection);
      server.onmessage = (text) => this.onText(connection, text);
      return client;
    },
  };

  /** The open, authenticated connections of a user (or all). */
  live(user?: string): FakeConnection[] {
    return this.connections.filter((c) => c.open && c.user !== undefined && (user === undefined || c.user === user));
  }

  /** The client frames of one type, over every connection, in arrival order. */
  framesOf<T extends ClientFrame['t']>(type: T): Extract<ClientFrame, { t: T }>[] {
    return this.connections.flatMap((c) => c.received.filter((f): f is Extract<ClientFrame, { t: T }> => f.t === type));
  }

  log(conv: string): Entry[] {
    return this.convs.get(conv)?.log ?? [];
  }

  createGroup(conv: string, members: string[]): Entry {
    this.convs.set(conv, { log: [], members: new Map() });
    return this.append(conv, { kind: 'system', from: members[0] ?? 'admin', dev: 'd', body: { op: 'create', members } }, undefined);
  }

  /**
   * Appends an entry to a conversation's log; pushes it to members' connections
   * (except `origin`) unless `push` is false — then the test pushes it, in any order.
   */
  append(
    conv: string,
    fields: Pick<Entry, 'from' | 'dev' | 'body'> & Partial<Pick<Entry, 'kind' | 'cmid' | 'dseq' | 'ctx' | 'ref'>>,
    origin: FakeConnection | undefined,
    push = true,
  ): Entry {
    const state = this.conv(conv);
    const entry: Entry = { conv, seq: state.log.length + 1, kind: fields.kind ?? 'msg', mid: String(this.nextMid++), ts: this.clock++, from: fields.from, dev: fields.dev, body: fields.body };
    if (fields.cmid !== undefined) entry.cmid = fields.cmid;
    if (fields.dseq !== undefined) entry.dseq = fields.dseq;
    if (fields.ctx !== undefined) entry.ctx = fields.ctx;
    if (fields.ref !== undefined) entry.ref = fields.ref;
    state.log.push(entry);
    const body = entry.body as { op?: string; members?: string[]; add?: string[]; remove?: string[] };
    if (entry.kind === 'system' && state.members) {
      for (const user of [...(body.members ?? []), ...(body.add ?? [])]) {
        state.members.set(user, { from: entry.seq });
        // As the real server: an added member starts just before its add (nothing it cannot read is unread).
        this.chat.moveRead(user, conv, entry.seq - 1, false);
      }
      for (const user of body.remove ?? []) {
        const membership = state.members.get(user);
        if (membership) membership.until = entry.seq;
      }
    }
    this.chat.touch(conv, this.readers(conv, entry.seq));
    if (push) {
      for (const connection of this.live()) {
        if (connection !== origin && this.mayRead(conv, connection.user as string, entry.seq)) connection.reply({ t: 'msg', ...entry });
      }
    }
    // Sending an entry moves the sender's read position to it; as on the real server the entry itself
    // is the notice (docs/protocol.md): no read push.
    this.chat.moveRead(entry.from, conv, entry.seq, false);
    return entry;
  }

  /** The users who may read `seq` (members then, the removed one included at its removal). */
  readers(conv: string, seq: number): string[] {
    const users = conv.startsWith('dm:') ? conv.split(':').slice(1) : [...(this.convs.get(conv)?.members?.keys() ?? [])];
    return users.filter((user) => this.mayRead(conv, user, seq));
  }

  /** The server's unread count for the user now. */
  unread(conv: string, user: string): number {
    const range = this.range(conv, user);
    const last = range?.until ?? this.log(conv).length;
    // Nothing before the user's add is readable, so nothing there is unread.
    return unreadIn(this.log(conv), Math.max(this.chat.read(user, conv).own, (range?.from ?? 1) - 1), last, user);
  }

  /** Moves a read position and pushes it (to the user's devices, and to the other members unless private). */
  moveRead(conv: string, user: string, seq: number, isPrivate: boolean, origin: FakeConnection | undefined): void {
    if (!this.chat.moveRead(user, conv, seq, isPrivate)) return;
    for (const connection of this.live()) {
      if (connection === origin || !this.mayRead(conv, connection.user as string, this.log(conv).length)) continue;
      if (connection.user === user) connection.reply({ t: 'read', conv, user, seq });
      else if (!isPrivate) connection.reply({ t: 'read', conv, user, seq });
    }
  }

  private conv(conv: string): Conv {
    let state = this.convs.get(conv);
    if (!state) {
      state = { log: [], members: conv.startsWith('g:') ? new Map() : undefined };
      this.convs.set(conv, state);
    }
    return state;
  }

  private range(conv: string, user: string): Membership | undefined {
    const state = this.convs.get(conv);
    if (conv.startsWith('dm:')) return conv.split(':').slice(1).includes(user) ? { from: 1 } : undefined;
    return state?.members?.get(user);
  }

  private mayRead(conv: string, user: string, seq: number): boolean {
    const range = this.range(conv, user);
    return range !== undefined && seq >= range.from && (range.until === undefined || seq <= range.until);
  }

  private onText(connection: FakeConnection, text: string): void {
    const frame = JSON.parse(text) as ClientFrame;
    // Recorded even when swallowed: `received` is what the client sent.
    connection.received.push(frame);
    if (connection.blackhole) return;
    if (frame.t === 'hello') return this.hello(connection, frame);
    if (connection.user === undefined) return connection.close(4401, 'hello first');
    const verdict = this.onFrame?.(frame, connection) ?? 'handle';
    if (verdict === 'drop') return;
    if (verdict === 'cut') return connection.cut();
    this.handle(connection, frame);
    if (verdict === 'handle-then-cut') connection.cut();
  }

  private hello(connection: FakeConnection, frame: Extract<ClientFrame, { t: 'hello' }>): void {
    if (frame.proto !== this.proto) {
      connection.reply({ t: 'error', id: frame.id, code: 'bad_request', message: `proto ${frame.proto} not spoken` });
      return connection.close(4426, 'unsupported proto');
    }
    const [user, device, extra] = frame.token.split('/');
    if (!user || !device || extra !== undefined) {
      connection.reply({ t: 'error', id: frame.id, code: 'unauthorized', message: 'bad token' });
      return connection.close(4401, 'unauthorized');
    }
    connection.user = user;
    connection.device = device;
    connection.reply({ t: 'welcome', id: frame.id, user, device, serverTime: this.clock, limits: { maxBody: 65536, maxFrame: 262144 }, holdMs: this.holdMs });
  }

  private handle(connection: FakeConnection, frame: ClientFrame): void {
    const user = connection.user as string;
    const error = (code: 'forbidden' | 'bad_request' | 'conflict', message: string): void =>
      connection.reply({ t: 'error', id: frame.id, code, message });
    switch (frame.t) {
      case 'ping':
        return connection.reply({ t: 'pong', id: frame.id, serverTime: this.clock });
      case 'convs':
        return this.convsReply(connection, frame);
      case 'read': {
        const range = this.range(frame.conv, user);
        if (!range) return error('forbidden', 'not a member');
        if (frame.seq > this.log(frame.conv).length) return error('bad_request', 'above last');
        this.moveRead(frame.conv, user, frame.seq, frame.private === true, connection);
        return connection.reply({ t: 'ok', id: frame.id, conv: frame.conv, seq: this.chat.read(user, frame.conv).own });
      }
      case 'info': {
        if (!this.range(frame.conv, user)) return error('forbidden', 'not a member');
        const members = this.readers(frame.conv, this.log(frame.conv).length);
        const read = Object.fromEntries(members.map((member) => [member, this.chat.read(member, frame.conv).public]));
        return connection.reply({ t: 'info', id: frame.id, conv: frame.conv, members, last: this.log(frame.conv).length, read });
      }
      case 'typing': {
        if (!this.range(frame.conv, user)) return error('forbidden', 'not a member');
        for (const other of this.live()) {
          if (other.user !== user && this.mayRead(frame.conv, other.user as string, this.log(frame.conv).length)) other.reply({ t: 'typing', conv: frame.conv, user });
        }
        return connection.reply({ t: 'ok', id: frame.id, conv: frame.conv, seq: this.log(frame.conv).length });
      }
      case 'sync': {
        const range = this.range(frame.conv, user);
        if (!range) return error('forbidden', 'not a member');
        const last = range.until ?? this.log(frame.conv).length;
        const log = this.log(frame.conv);
        const readable = log.filter((e) => e.seq >= range.from && e.seq <= last);
        const page =
          frame.before !== undefined
            ? readable.filter((e) => e.seq < (frame.before as number)).slice(-(frame.limit ?? 100))
            : readable.filter((e) => e.seq > (frame.after ?? 0)).slice(0, frame.limit ?? 100);
        return connection.reply({ t: 'batch', id: frame.id, conv: frame.conv, msgs: page.map((e) => synced(log, e)), last });
      }
      case 'create': {
        if (this.convs.has(frame.conv)) return error('conflict', 'exists');
        const entry = this.createGroupBy(frame.conv, [...new Set([user, ...frame.members])], connection);
        return connection.reply({ t: 'ok', id: frame.id, conv: frame.conv, seq: entry.seq });
      }
      case 'members': {
        if (!this.mayRead(frame.conv, user, this.log(frame.conv).length)) return error('forbidden', 'not a member');
        const entry = this.append(frame.conv, { kind: 'system', from: user, dev: connection.device as string, body: { op: 'members', add: frame.add ?? [], remove: frame.remove ?? [] } }, connection);
        return connection.reply({ t: 'ok', id: frame.id, conv: frame.conv, seq: entry.seq });
      }
      case 'send':
        return this.send(connection, frame);
      default:
        return error('bad_request', `unexpected ${frame.t}`);
    }
  }

  private convsReply(connection: FakeConnection, frame: Extract<ClientFrame, { t: 'convs' }>): void {
    const user = connection.user as string;
    const version = this.chat.version(user);
    const mine = [...this.convs.keys()].filter((conv) => this.range(conv, user) !== undefined);
    const row = (conv: string): ConvSummary => {
      const range = this.range(conv, user) as Membership;
      const log = this.log(conv);
      const summary: ConvSummary = { conv, last: log.length, ts: log.at(-1)?.ts ?? 0, from: range.from, read: this.chat.read(user, conv).own, unread: this.unread(conv, user) };
      if (range.until) summary.until = range.until;
      return summary;
    };
    const unread = mine.reduce((sum, conv) => sum + this.unread(conv, user), 0);
    if (frame.since === undefined || frame.since > version) {
      const convs = mine.map(row).sort((a, b) => b.ts - a.ts);
      return connection.reply({ t: 'convs', id: frame.id, convs, version, unread, ...(frame.since === undefined ? {} : { full: true as const }) });
    }
    const changed = this.chat.changedSince(user, frame.since).filter((conv) => mine.includes(conv));
    const page = changed.slice(0, frame.limit ?? 500);
    const more = page.length < changed.length;
    const pageVersion = more ? this.chat.changedAtOf(user, page.at(-1) as string) : version;
    connection.reply({ t: 'convs', id: frame.id, convs: page.map(row), version: pageVersion, unread, more });
  }

  private createGroupBy(conv: string, members: string[], origin: FakeConnection): Entry {
    this.convs.set(conv, { log: [], members: new Map() });
    return this.append(conv, { kind: 'system', from: origin.user as string, dev: origin.device as string, body: { op: 'create', members } }, origin);
  }

  private send(connection: FakeConnection, frame: Extract<ClientFrame, { t: 'send' }>): void {
    const user = connection.user as string;
    const key = `${user}/${connection.device as string}/${frame.conv}`;
    let order = this.orders.get(key);
    if (!order) {
      order = { expected: 1, acks: new Map(), held: new Map() };
      this.orders.set(key, order);
    }
    const known = order.acks.get(frame.cmid);
    if (known) return connection.reply({ t: 'ack', id: frame.id, conv: frame.conv, cmid: frame.cmid, ...known });
    if (!this.mayRead(frame.conv, user, this.log(frame.conv).length + 1)) {
      return connection.reply({ t: 'error', id: frame.id, code: 'forbidden', message: 'not a member' });
    }
    const refusal = refuseAction(this.log(frame.conv), frame, user);
    if (refusal && frame.dseq === order.expected) return connection.reply({ t: 'error', id: frame.id, ...refusal });
    if (frame.dseq < order.expected) {
      return connection.reply({ t: 'error', id: frame.id, code: 'bad_request', message: 'dseq already taken' });
    }
    if (frame.dseq > order.expected) {
      const held = order.held.get(frame.dseq);
      if (held) clearTimeout(held.timer);
      const timer = setTimeout(() => {
        const current = order.held.get(frame.dseq);
        if (current?.frame !== frame) return;
        order.held.delete(frame.dseq);
        connection.reply({ t: 'error', id: frame.id, code: 'out_of_order', message: 'missing dseq', expected: order.expected });
      }, this.holdMs);
      order.held.set(frame.dseq, { frame, connection, timer });
      return;
    }
    this.take(connection, frame, order);
    for (let next = order.held.get(order.expected); next; next = order.held.get(order.expected)) {
      clearTimeout(next.timer);
      order.held.delete(order.expected);
      this.take(next.connection, next.frame, order);
    }
  }

  private take(connection: FakeConnection, frame: Extract<ClientFrame, { t: 'send' }>, order: DeviceOrder): void {
    const fields = { from: connection.user as string, dev: connection.device as string, body: frame.body, cmid: frame.cmid, dseq: frame.dseq, kind: frame.kind ?? 'msg', ...(frame.ref === undefined ? {} : { ref: frame.ref }) };
    const entry = this.append(frame.conv, frame.ctx ? { ...fields, ctx: frame.ctx } : fields, connection);
    const ack = { seq: entry.seq, mid: entry.mid, ts: entry.ts, dseq: frame.dseq };
    order.acks.set(frame.cmid, ack);
    order.expected = frame.dseq + 1;
    connection.reply({ t: 'ack', id: frame.id, conv: frame.conv, cmid: frame.cmid, ...ack });
  }
}
