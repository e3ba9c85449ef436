/**
 * Delivery in a cluster. The owner of a conversation commits its entries, but
 * their recipients may be connected to any node: each push goes to this node's
 * own connections directly and to `<prefix>.u.<user>` on the bus, where every
 * other node with a connection of that user hears it (bus.ts). A node skips
 * what it published itself (it delivered that already).
 *
 * Pushes crossing the bus are hints: they may be lost, doubled or reordered,
 * and a conversation's owner can change between two of them. So every entry
 * reaches a connection through its `PushFilter`, which keeps one seq order per
 * conversation per connection, drops what it pushed already and fills a gap
 * from the store. Read and typing pushes carry no seq and go as they come.
 */
import { encodeMsgFrame } from 'sequent-client/protocol';
import type { Store } from '../store/index.js';
import type { Connection, Delivery, Presence } from '../server/delivery.js';
import type { ConvViews } from '../server/conv-view.js';
import type { ServerMetrics } from '../server/metrics.js';
import type { Committed } from '../server/sequencer.js';
import type { ClusterBus } from './bus.js';
import { PushFilter, type PushedEntry } from './push-filter.js';

/** Marks a seq the connection must pass over without a push: its own send (it got the ack), or an entry it may not read. */
const SKIP = Symbol('skip');
type Pushed = string | Buffer | typeof SKIP;

/** A gap wider than this is not filled from the store: the client sees it and syncs, one request instead of a flood of pushes. */
export const MAX_FILL = 256;
/** Read positions remembered per connection (one per conversation and reader); past it the least recently moved is forgotten. */
export const MAX_READ_MARKS = 10_000;

/**
 * One entry of an entries message: conversation, seq, byte length of its frame's text, and the
 * connection that sent it (null: none). Its text follows the header, after the texts of the entries before it.
 */
type EntryRef = [conv: string, seq: number, length: number, origin: number | null];

interface PushHeader {
  /** The publishing node's tag: a node ignores its own. */
  n: string;
  /** 'm': entries (with e, or one with c, s, o); 'r': a read position (with c, u, s); 'x': a frame shown as it comes (typing). */
  k: 'm' | 'r' | 'x';
  /** Every entry of one commit batch for this user, in commit order. */
  e?: EntryRef[];
  c?: string;
  s?: number;
  /** The reader whose position a read push moves. */
  u?: string;
  /** The connection that sent the entry. */
  o?: number;
}

/** An entry of a batch as it goes out: its frame's text, and its part of the header, both spelled once for every user. */
interface OutEntry {
  ref: string;
  text: Buffer;
}

export interface ClusterDeliveryOptions<C extends Connection> {
  presence: Presence<C>;
  bus: ClusterBus;
  store: Store;
  /** Who may read what, from the store (a gap is filled only with what the connection's user may read). */
  views: ConvViews;
  /** Unique per process: the node's incarnation. */
  tag: string;
  metrics: ServerMetrics;
  onUnfilled?: (conv: string, after: number, upTo: number, error?: unknown) => void;
}

const NEWLINE = Buffer.from([0x0a]);

function sameEntries(a: readonly OutEntry[], b: readonly OutEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class ClusterDelivery<C extends Connection> implements Delivery {
  private readonly filters = new Map<C, PushFilter<Pushed>>();
  /**
   * Per connection, the highest read position pushed for each (conversation, reader). A read push
   * from a node that was paused, or whose bus connection held it back, can come after a newer one
   * from the slot's next owner: it is dropped, so a connection never sees a read position go back.
   */
  private readonly readMarks = new Map<C, Map<string, number>>();

  private readonly tagJson: string;

  constructor(private readonly options: ClusterDeliveryOptions<C>) {
    this.tagJson = JSON.stringify(options.tag);
  }

  /** A connection authenticated on this node: follow its user's pushes. */
  joined(connection: C): void {
    this.options.bus.addUser(connection.user);
    this.filters.set(
      connection,
      new PushFilter<Pushed>({
        fill: (conv, after, upTo) => this.fill(connection, conv, after, upTo),
        deliver: (_conv, _seq, item) => {
          if (item === SKIP || connection.closed) return;
          connection.sendText(item);
          this.options.metrics.pushes.inc();
        },
        onUnfilled: this.options.onUnfilled,
      }),
    );
  }

  left(connection: C): void {
    this.filters.delete(connection);
    this.readMarks.delete(connection);
    this.options.bus.removeUser(connection.user);
  }

  /**
   * One bus message per audience user per batch, holding every entry of the batch that user
   * should see, in commit order (not one per entry and user): each entry's frame and header part
   * are spelled once, and users of one conversation share one payload.
   */
  entries(batch: readonly Committed[]): void {
    const perUser = new Map<string, OutEntry[]>();
    for (const { entry, bodyJson, audience, originId } of batch) {
      const text = Buffer.from(encodeMsgFrame(entry, bodyJson));
      const out: OutEntry = { ref: JSON.stringify([entry.conv, entry.seq, text.byteLength, originId ?? null]), text };
      for (const user of audience) {
        const list = perUser.get(user);
        if (list === undefined) perUser.set(user, [out]);
        else list.push(out);
        this.entryHere(user, entry.conv, entry.seq, originId, text);
      }
    }
    let previous: OutEntry[] | undefined;
    let payload: Uint8Array | undefined;
    for (const [user, list] of perUser) {
      // The audience of a conversation comes in one run: its users mostly have the same list as the user before.
      if (previous === undefined || !sameEntries(previous, list)) payload = this.entriesPayload(list);
      previous = list;
      this.options.bus.publish(user, payload!);
      this.options.metrics.busPublished.inc();
    }
  }

  read(to: readonly string[], conv: string, user: string, seq: number, isPublic: boolean): void {
    const text = Buffer.from(JSON.stringify(isPublic ? { t: 'read', conv, user, seq } : { t: 'read', conv, user, seq, private: true }));
    this.frame(to, { n: this.options.tag, k: 'r', c: conv, u: user, s: seq }, text);
  }

  typing(to: readonly string[], conv: string, user: string): void {
    this.frame(to, { n: this.options.tag, k: 'x' }, Buffer.from(JSON.stringify({ t: 'typing', conv, user })));
  }

  /** A push from the bus for `user` (ClusterBus's onPush). */
  fromBus(user: string, payload: Uint8Array): void {
    const cut = payload.indexOf(0x0a);
    if (cut < 0) return;
    const header = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, cut).toString('utf8')) as PushHeader;
    if (header.n === this.options.tag) return;
    let offset = payload.byteOffset + cut + 1;
    const end = payload.byteOffset + payload.byteLength;
    if (header.k !== 'm') return this.frameHere(user, header, Buffer.from(payload.buffer, offset, end - offset));
    if (header.e !== undefined) {
      for (const [conv, seq, length, origin] of header.e) {
        if (!(length >= 0) || offset + length > end) return; // cut short: what is missing is filled from the store on the next push
        this.entryHere(user, conv, seq, origin ?? undefined, Buffer.from(payload.buffer, offset, length));
        offset += length;
      }
      return;
    }
    // One entry per message, as nodes before batched pushes sent them.
    if (header.c === undefined || header.s === undefined) return;
    this.entryHere(user, header.c, header.s, header.o, Buffer.from(payload.buffer, offset, end - offset));
  }

  /** How many (connection, conversation) push orders this node keeps: for memory checks. */
  tracked(): number {
    let total = 0;
    for (const filter of this.filters.values()) total += filter.size();
    return total;
  }

  private entryHere(user: string, conv: string, seq: number, originId: number | undefined, text: Buffer): void {
    const connections = this.options.presence.of(user);
    if (!connections) return;
    for (const connection of connections) {
      if (connection.closed) continue;
      const filter = this.filters.get(connection);
      if (!filter) continue;
      void filter.offer(conv, seq, connection.connection === originId ? SKIP : text);
    }
  }

  private frame(to: readonly string[], header: PushHeader, text: Buffer): void {
    const payload = this.payload(header, text);
    for (const user of to) {
      this.options.bus.publish(user, payload);
      this.options.metrics.busPublished.inc();
      this.frameHere(user, header, text);
    }
  }

  /** A read or typing push to `user`'s connections here; a read position at or below one already pushed is dropped. */
  private frameHere(user: string, header: PushHeader, text: Buffer): void {
    const connections = this.options.presence.of(user);
    if (!connections) return;
    for (const connection of connections) {
      if (connection.closed) continue;
      if (header.k === 'r' && !this.readMovesOn(connection, header)) continue;
      connection.sendText(text);
    }
  }

  private readMovesOn(connection: C, header: PushHeader): boolean {
    if (header.c === undefined || header.u === undefined || header.s === undefined) return false;
    let marks = this.readMarks.get(connection);
    if (!marks) this.readMarks.set(connection, (marks = new Map()));
    const key = `${header.c}\u0000${header.u}`;
    const pushed = marks.get(key);
    if (pushed !== undefined && header.s <= pushed) return false;
    // Re-inserted, so the map's first key is the least recently moved one.
    marks.delete(key);
    marks.set(key, header.s);
    if (marks.size > MAX_READ_MARKS) marks.delete(marks.keys().next().value as string);
    return true;
  }

  /** The header's JSON (which never holds a raw newline), a newline, then the frame's text as it goes to the socket. */
  private payload(header: PushHeader, text: Buffer): Uint8Array {
    return Buffer.concat([Buffer.from(JSON.stringify(header)), NEWLINE, text]);
  }

  /** An entries header listing each entry's conversation, seq, length and sender, a newline, then their texts one after another. */
  private entriesPayload(list: readonly OutEntry[]): Uint8Array {
    let refs = list[0]!.ref;
    for (let i = 1; i < list.length; i++) refs += `,${list[i]!.ref}`;
    // Buffer.from, not TextEncoder: for short strings it is several times cheaper (node 20).
    const parts: Uint8Array[] = [Buffer.from(`{"n":${this.tagJson},"k":"m","e":[${refs}]}\n`)];
    for (const { text } of list) parts.push(text);
    return Buffer.concat(parts);
  }

  /** The entries (after, upTo] the connection missed, from the store: its own sends and what it may not read are passed over. */
  private async fill(connection: C, conv: string, after: number, upTo: number): Promise<readonly PushedEntry<Pushed>[]> {
    if (upTo - after > MAX_FILL) return [];
    const view = await this.options.views.get(conv);
    const range = view?.readableRange(connection.user) ?? null;
    const entries = await this.options.store.read(conv, after, upTo, upTo - after);
    return entries.map((entry) => {
      const readable = range !== null && entry.seq >= range.from && entry.seq <= range.until;
      const own = entry.from === connection.user && entry.dev === connection.device;
      return { seq: entry.seq, item: readable && !own ? encodeMsgFrame(entry) : SKIP };
    });
  }
}
