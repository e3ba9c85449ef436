/**
 * A ClientStore in IndexedDB, for browsers. Three object stores: `meta` (the
 * identity and the chat list state), `convs` (keyed by conv) and `outbox` (keyed by [conv, cmid]).
 * `enqueue` writes the entry and the counter in one transaction, and each call
 * resolves when its transaction has committed.
 */
import type { ChatState, ClientIdentity, ClientSnapshot, ClientStore, ConvRecord, OutboxEntry } from './store.js';

const VERSION = 1;

export interface IndexedDbClientStoreOptions {
  /** Database name; one database per device. Default "sequent-client". */
  name?: string;
  /** The IndexedDB factory; default the global `indexedDB`. */
  indexedDB?: IDBFactory;
}

function requestResult<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
  });
}

function transactionDone(transaction: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error ?? new Error('IndexedDB transaction failed'));
    transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB transaction aborted'));
  });
}

export class IndexedDbClientStore implements ClientStore {
  private database: Promise<IDBDatabase> | undefined;
  readonly name: string;
  private readonly factory: IDBFactory | undefined;

  constructor(options: IndexedDbClientStoreOptions = {}) {
    this.name = options.name ?? 'sequent-client';
    this.factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  }

  async load(): Promise<ClientSnapshot> {
    const db = await this.open();
    const transaction = db.transaction(['meta', 'convs', 'outbox'], 'readonly');
    const done = transactionDone(transaction);
    const [identity, chat, convs, outbox] = await Promise.all([
      requestResult(transaction.objectStore('meta').get('identity')) as Promise<{ key: string; value: ClientIdentity } | undefined>,
      requestResult(transaction.objectStore('meta').get('chat')) as Promise<{ key: string; value: ChatState } | undefined>,
      requestResult(transaction.objectStore('convs').getAll()) as Promise<ConvRecord[]>,
      requestResult(transaction.objectStore('outbox').getAll()) as Promise<OutboxEntry[]>,
    ]);
    await done;
    return { identity: identity?.value, convs, outbox, ...(chat ? { chat: chat.value } : {}) };
  }

  async saveChat(state: ChatState): Promise<void> {
    await this.write(['meta'], (t) => t.objectStore('meta').put({ key: 'chat', value: state }));
  }

  async setIdentity(identity: ClientIdentity): Promise<void> {
    await this.write(['meta'], (t) => t.objectStore('meta').put({ key: 'identity', value: identity }));
  }

  async enqueue(entry: OutboxEntry): Promise<void> {
    await this.write(['convs', 'outbox'], (t) => {
      const convs = t.objectStore('convs');
      const read = convs.get(entry.conv);
      read.onsuccess = () => {
        const record = (read.result as ConvRecord | undefined) ?? { conv: entry.conv, nextDseq: 1, cursor: 0 };
        record.nextDseq = Math.max(record.nextDseq, entry.dseq + 1);
        convs.put(record);
      };
      t.objectStore('outbox').put(entry);
    });
  }

  async updateOutbox(entry: OutboxEntry): Promise<void> {
    await this.write(['outbox'], (t) => {
      const outbox = t.objectStore('outbox');
      const read = outbox.getKey([entry.conv, entry.cmid]);
      read.onsuccess = () => {
        if (read.result !== undefined) outbox.put(entry);
      };
    });
  }

  async removeOutbox(conv: string, cmid: string): Promise<void> {
    await this.write(['outbox'], (t) => t.objectStore('outbox').delete([conv, cmid]));
  }

  async replaceOutbox(conv: string, entries: readonly OutboxEntry[], nextDseq: number): Promise<void> {
    await this.write(['convs', 'outbox'], (t) => {
      const outbox = t.objectStore('outbox');
      // By key, not by IDBKeyRange: the factory may be passed in, without that global.
      const keys = outbox.getAllKeys();
      keys.onsuccess = () => {
        for (const key of keys.result) if (Array.isArray(key) && key[0] === conv) outbox.delete(key);
        for (const entry of entries) outbox.put(entry);
      };
      const convs = t.objectStore('convs');
      const read = convs.get(conv);
      read.onsuccess = () => {
        const record = (read.result as ConvRecord | undefined) ?? { conv, nextDseq, cursor: 0 };
        record.nextDseq = nextDseq;
        convs.put(record);
      };
    });
  }

  async setCursor(conv: string, cursor: number): Promise<void> {
    await this.write(['convs'], (t) => {
      const convs = t.objectStore('convs');
      const read = convs.get(conv);
      read.onsuccess = () => {
        const record = (read.result as ConvRecord | undefined) ?? { conv, nextDseq: 1, cursor: 0 };
        if (record.cursor >= cursor && read.result !== undefined) return;
        record.cursor = Math.max(record.cursor, cursor);
        convs.put(record);
      };
    });
  }

  async close(): Promise<void> {
    const database = this.database;
    this.database = undefined;
    if (database) (await database).close();
  }

  /** Deletes the whole database (for tests and "log out"). */
  async destroy(): Promise<void> {
    await this.close();
    if (this.factory) await requestResult(this.factory.deleteDatabase(this.name));
  }

  private async write(stores: string[], work: (transaction: IDBTransaction) => void): Promise<void> {
    const db = await this.open();
    const transaction = db.transaction(stores, 'readwrite');
    const done = transactionDone(transaction);
    work(transaction);
    await done;
  }

  private open(): Promise<IDBDatabase> {
    if (this.database) return this.database;
    const factory = this.factory;
    if (!factory) return Promise.reject(new Error('no IndexedDB: pass options.indexedDB'));
    const request = factory.open(this.name, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta', { keyPath: 'key' });
      if (!db.objectStoreNames.contains('convs')) db.createObjectStore('convs', { keyPath: 'conv' });
      if (!db.objectStoreNames.contains('outbox')) db.createObjectStore('outbox', { keyPath: ['conv', 'cmid'] });
    };
    this.database = requestResult(request);
    return this.database;
  }
}
