/**
 * A ClientStore in one JSON file, for Node apps and bots. Exported separately
 * (`sequent-client/file-store`) because it needs node:fs; the SDK itself stays
 * browser-safe.
 *
 * The whole state is small (cursors, counters, unacked sends), so every change
 * rewrites the file: write a temporary file, fsync it, rename it over the old
 * one. A crash leaves either the old or the new file, never a torn one. Changes
 * made while a write is in flight are coalesced into the next write, and each
 * call resolves only once a write containing its change is durable.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  applyCursor,
  applyEnqueue,
  applyReplace,
  copyJson,
  outboxKey,
  type ChatState,
  type ClientIdentity,
  type ClientSnapshot,
  type ClientStore,
  type ConvRecord,
  type OutboxEntry,
} from './store.js';

const FORMAT = 1;

interface FileContent {
  format: number;
  identity?: ClientIdentity;
  convs: ConvRecord[];
  outbox: OutboxEntry[];
  chat?: ChatState;
}

export interface FileClientStoreOptions {
  /** Skip fsync (tests, or data you can afford to lose on power failure). Default false. */
  noSync?: boolean;
}

export class FileClientStore implements ClientStore {
  private identity: ClientIdentity | undefined;
  private readonly convs = new Map<string, ConvRecord>();
  private readonly outbox = new Map<string, OutboxEntry>();
  private chat: ChatState | undefined;
  private loaded: Promise<void> | undefined;
  private writing: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly options: FileClientStoreOptions = {},
  ) {}

  async load(): Promise<ClientSnapshot> {
    await this.ensureLoaded();
    return copyJson({
      identity: this.identity,
      convs: [...this.convs.values()],
      outbox: [...this.outbox.values()],
      ...(this.chat ? { chat: this.chat } : {}),
    });
  }

  async saveChat(state: ChatState): Promise<void> {
    await this.ensureLoaded();
    this.chat = copyJson(state);
    await this.persist();
  }

  async setIdentity(identity: ClientIdentity): Promise<void> {
    await this.ensureLoaded();
    this.identity = copyJson(identity);
    await this.persist();
  }

  async enqueue(entry: OutboxEntry): Promise<void> {
    await this.ensureLoaded();
    applyEnqueue(this.convs, this.outbox, copyJson(entry));
    await this.persist();
  }

  async updateOutbox(entry: OutboxEntry): Promise<void> {
    await this.ensureLoaded();
    const key = outboxKey(entry.conv, entry.cmid);
    if (!this.outbox.has(key)) return;
    this.outbox.set(key, copyJson(entry));
    await this.persist();
  }

  async removeOutbox(conv: string, cmid: string): Promise<void> {
    await this.ensureLoaded();
    if (!this.outbox.delete(outboxKey(conv, cmid))) return;
    await this.persist();
  }

  async replaceOutbox(conv: string, entries: readonly OutboxEntry[], nextDseq: number): Promise<void> {
    await this.ensureLoaded();
    applyReplace(this.convs, this.outbox, conv, copyJson([...entries]), nextDseq);
    await this.persist();
  }

  async setCursor(conv: string, cursor: number): Promise<void> {
    await this.ensureLoaded();
    if ((this.convs.get(conv)?.cursor ?? -1) >= cursor) return;
    applyCursor(this.convs, conv, cursor);
    await this.persist();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.next;
    await this.writing;
  }

  private ensureLoaded(): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`client store ${this.path} is closed`));
    return (this.loaded ??= this.readFile());
  }

  private async readFile(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return;
      throw error;
    }
    const content = JSON.parse(text) as FileContent;
    if (content.format !== FORMAT) throw new Error(`client store ${this.path}: unknown format ${String(content.format)}`);
    this.identity = content.identity;
    this.chat = content.chat;
    for (const record of content.convs) this.convs.set(record.conv, record);
    for (const entry of content.outbox) this.outbox.set(outboxKey(entry.conv, entry.cmid), entry);
  }

  /** Resolves when a write that started after this call has finished. */
  private persist(): Promise<void> {
    if (this.next) return this.next;
    const previous = this.writing ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => {
        // From here on, changes belong to the write after this one.
        this.next = undefined;
        const write = this.writeFile();
        this.writing = write;
        return write;
      });
    this.next = next;
    return next;
  }

  private async writeFile(): Promise<void> {
    const content: FileContent = {
      format: FORMAT,
      ...(this.identity ? { identity: this.identity } : {}),
      convs: [...this.convs.values()],
      outbox: [...this.outbox.values()],
      ...(this.chat ? { chat: this.chat } : {}),
    };
    const text = JSON.stringify(content);
    await mkdir(dirname(this.path), { recursive: true });
    const temporary = `${this.path}.tmp`;
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(text, 'utf8');
      if (!this.options.noSync) await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(temporary, this.path);
  }
}
