/**
 * What the SDK keeps across app restarts, behind one small async contract so
 * that memory, a file (Node) and IndexedDB (browser) are interchangeable. Every
 * adapter runs the same conformance suite (test/client/store-conformance.ts).
 *
 * The SDK writes an outbox entry, together with the conversation's next dseq,
 * BEFORE the send frame goes out, and removes it when the ack (or the entry
 * itself, seen in a sync) proves the server has it. So after a kill, whatever
 * was unacknowledged is resent with the same cmid and dseq: the server answers
 * with the original ack, and nothing is lost or stored twice.
 */

/** The device this store belongs to; `user` is set once a server has confirmed the pair. */
export interface ClientIdentity {
  device: string;
  user?: string;
}

/** Per conversation: the next dseq this device will use, and the highest contiguous seq delivered. */
export interface ConvRecord {
  conv: string;
  nextDseq: number;
  cursor: number;
}

export interface SendError {
  code: string;
  message: string;
}

/** One unacknowledged send. */
export interface OutboxEntry {
  conv: string;
  cmid: string;
  dseq: number;
  body: unknown;
  /** ctx.seen sent with the message. */
  seen?: number;
  /** Chat state: `edit`, `delete` or `react` (absent: a message). */
  kind?: 'edit' | 'delete' | 'react';
  /** With kind: the seq of the message it acts on. */
  ref?: number;
  createdAt: number;
  tries: number;
  /** Set when the send gave up (deadline or refusal); cleared by retry(). */
  failed?: SendError;
}

export interface ClientSnapshot {
  identity: ClientIdentity | undefined;
  convs: ConvRecord[];
  /** Every outbox entry, in any order. */
  outbox: OutboxEntry[];
  /** The conversation list and read positions, as last saved (absent until saveChat). */
  chat?: ChatState;
}

/**
 * The conversation list as the SDK last knew it, so that a restarted app shows
 * it at once and asks the server only for what changed after `version`.
 */
export interface ChatState {
  /** The user's list version every row is caught up to (`convs since`); absent before the first catch-up. */
  version?: number;
  convs: StoredConv[];
}

/** Counts as the server gave them in its newest row of the conversation. */
export interface UnreadAnchor {
  read: number;
  last: number;
  unread: number;
}

export interface StoredConv {
  conv: string;
  last: number;
  ts: number;
  from: number;
  until?: number;
  /** The user's read position: the newest known, from the server or a markRead not yet confirmed. */
  read: number;
  /** The read position the server confirmed; below `read`, a markRead still has to go out. */
  readConfirmed: number;
  anchor: UnreadAnchor;
}

export interface ClientStore {
  /** Everything stored (small: cursors, counters and unacked sends). */
  load(): Promise<ClientSnapshot>;
  setIdentity(identity: ClientIdentity): Promise<void>;
  /**
   * Atomically stores the entry and raises its conversation's nextDseq to at
   * least `entry.dseq + 1` (creating the record with cursor 0 if needed),
   * so that a crash can never leave a dseq counted but its message unsaved.
   */
  enqueue(entry: OutboxEntry): Promise<void>;
  /** Replaces an existing entry (tries, failed); does nothing if it is gone. */
  updateOutbox(entry: OutboxEntry): Promise<void>;
  removeOutbox(conv: string, cmid: string): Promise<void>;
  /**
   * Atomically replaces every outbox entry of `conv` with `entries` and sets its
   * nextDseq (which may go down): discarding a refused send renumbers the ones
   * behind it, and a crash must leave either the old outbox or the new one.
   * Optional for stores written before it; without it, discard() is refused.
   */
  replaceOutbox?(conv: string, entries: readonly OutboxEntry[], nextDseq: number): Promise<void>;
  /** Raises the conversation's cursor; never lowers it. */
  setCursor(conv: string, cursor: number): Promise<void>;
  /**
   * Replaces the saved conversation list and read positions (one value; the
   * SDK writes the newest, coalescing bursts). Optional for stores written
   * before it; without it, a restarted app asks for the whole list again and
   * a markRead made offline is lost with the app.
   */
  saveChat?(state: ChatState): Promise<void>;
  close(): Promise<void>;
}

/** Deep copy through JSON: what a persistent store would give back, and no aliasing between callers. */
export function copyJson<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

export function outboxKey(conv: string, cmid: string): string {
  return `${conv}\u0000${cmid}`;
}

/**
 * The in-memory store: the reference adapter, and the default (nothing
 * survives a restart). Values are copied in and out, as a persistent store's
 * would be, so two SDK instances sharing one store see only what was written.
 */
export class MemoryClientStore implements ClientStore {
  private identity: ClientIdentity | undefined;
  private readonly convs = new Map<string, ConvRecord>();
  private readonly outbox = new Map<string, OutboxEntry>();
  private chat: ChatState | undefined;

  async load(): Promise<ClientSnapshot> {
    return copyJson({
      identity: this.identity,
      convs: [...this.convs.values()],
      outbox: [...this.outbox.values()],
      ...(this.chat ? { chat: this.chat } : {}),
    });
  }

  async saveChat(state: ChatState): Promise<void> {
    this.chat = copyJson(state);
  }

  async setIdentity(identity: ClientIdentity): Promise<void> {
    this.identity = copyJson(identity);
  }

  async enqueue(entry: OutboxEntry): Promise<void> {
    applyEnqueue(this.convs, this.outbox, copyJson(entry));
  }

  async updateOutbox(entry: OutboxEntry): Promise<void> {
    const key = outboxKey(entry.conv, entry.cmid);
    if (this.outbox.has(key)) this.outbox.set(key, copyJson(entry));
  }

  async removeOutbox(conv: string, cmid: string): Promise<void> {
    this.outbox.delete(outboxKey(conv, cmid));
  }

  async replaceOutbox(conv: string, entries: readonly OutboxEntry[], nextDseq: number): Promise<void> {
    applyReplace(this.convs, this.outbox, conv, copyJson([...entries]), nextDseq);
  }

  async setCursor(conv: string, cursor: number): Promise<void> {
    applyCursor(this.convs, conv, cursor);
  }

  async close(): Promise<void> {}
}

/** Shared by the adapters that keep their state as maps (memory, file). */
export function applyEnqueue(convs: Map<string, ConvRecord>, outbox: Map<string, OutboxEntry>, entry: OutboxEntry): void {
  const record = convs.get(entry.conv) ?? { conv: entry.conv, nextDseq: 1, cursor: 0 };
  record.nextDseq = Math.max(record.nextDseq, entry.dseq + 1);
  convs.set(entry.conv, record);
  outbox.set(outboxKey(entry.conv, entry.cmid), entry);
}

export function applyReplace(
  convs: Map<string, ConvRecord>,
  outbox: Map<string, OutboxEntry>,
  conv: string,
  entries: OutboxEntry[],
  nextDseq: number,
): void {
  for (const [key, entry] of outbox) if (entry.conv === conv) outbox.delete(key);
  for (const entry of entries) outbox.set(outboxKey(conv, entry.cmid), entry);
  const record = convs.get(conv) ?? { conv, nextDseq, cursor: 0 };
  record.nextDseq = nextDseq;
  convs.set(conv, record);
}

export function applyCursor(convs: Map<string, ConvRecord>, conv: string, cursor: number): void {
  const record = convs.get(conv) ?? { conv, nextDseq: 1, cursor: 0 };
  record.cursor = Math.max(record.cursor, cursor);
  convs.set(conv, record);
}
