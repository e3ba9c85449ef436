/** Every ClientStore adapter passes the one conformance suite. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDBFactory } from 'fake-indexeddb';
import { afterAll } from 'vitest';
import { FileClientStore } from '../../packages/client/src/client/file-store.js';
import { IndexedDbClientStore } from '../../packages/client/src/client/indexeddb-store.js';
import { MemoryClientStore } from '../../packages/client/src/client/store.js';
import { clientStoreConformance } from './store-conformance.js';

clientStoreConformance('memory', { create: async () => new MemoryClientStore() });

const dir = mkdtempSync(join(tmpdir(), 'sequent-client-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
clientStoreConformance('file', {
  create: async () => new FileClientStore(join(dir, `store-${++files}`, 'client.json')),
  reopen: async (store) => new FileClientStore((store as FileClientStore).path),
});

let databases = 0;
const factories = new WeakMap<object, IDBFactory>();
clientStoreConformance('IndexedDB (fake-indexeddb)', {
  create: async () => {
    const indexedDB = new IDBFactory();
    const store = new IndexedDbClientStore({ name: `db-${++databases}`, indexedDB });
    factories.set(store, indexedDB);
    return store;
  },
  reopen: async (store) => {
    await store.close();
    const indexedDB = factories.get(store) as IDBFactory;
    const again = new IndexedDbClientStore({ name: (store as IndexedDbClientStore).name, indexedDB });
    factories.set(again, indexedDB);
    return again;
  },
});
