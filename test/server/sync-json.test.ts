/**
 * A sync reply from a store with readJson (SQLite: each entry's JSON built in
 * the database and spliced into the frame) is the same text as the reply built
 * the other way, from read()'s entries serialized whole: for msgs, edits,
 * deletes, reactions and system entries, paging after and before.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../packages/server/src/store/index.js';
import { openSqliteStore } from '../../packages/server/src/store/sqlite.js';
import { startTestServer, type TestServer, type WireClient } from '../support/wire.js';
import { sender } from './chat-support.js';

/** The raw text of the next reply with this id. */
function replyText(client: WireClient, frame: Record<string, unknown> & { id: number }): Promise<string> {
  return new Promise((resolve) => {
    const listen = (data: Buffer) => {
      const text = data.toString('utf8');
      if ((JSON.parse(text) as { id?: number }).id !== frame.id) return;
      client.socket.off('message', listen);
      resolve(text);
    };
    client.socket.on('message', listen);
    client.socket.send(JSON.stringify(frame));
  });
}

describe('sync replies built from stored JSON', () => {
  let dir: string;
  let store: Store;
  let t: TestServer;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sequent-sync-json-'));
    store = openSqliteStore({ path: join(dir, 'sequent.db') });
    t = await startTestServer({ store, dataDir: dir });
  });
  afterEach(async () => {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('equal the frames serialized from read(), byte for byte', async () => {
    expect(store.readJson).toBeTypeOf('function');
    const alice = await t.connect('alice', 'phone');
    const bob = await t.connect('bob');
    await alice.request({ t: 'create', conv: 'g:j', members: ['bob'] });
    const a = sender(alice);
    const b = sender(bob);
    await a.send('g:j', { text: 'hello', list: [1.5, null, 'é ✓ 😀'] }, { ctx: { seen: 1 } }); // 2
    await a.send('g:j', { text: 'hello all' }, { kind: 'edit', ref: 2 }); // 3
    await b.send('g:j', { key: '+1', on: true }, { kind: 'react', ref: 2 }); // 4
    await a.send('g:j', { text: 'gone soon' }); // 5
    await a.send('g:j', { text: 'gone, edited' }, { kind: 'edit', ref: 5 }); // 6
    await a.send('g:j', null, { kind: 'delete', ref: 5 }); // 7
    await alice.request({ t: 'members', conv: 'g:j', add: ['carol'] }); // 8
    for (let i = 0; i < 5; i++) await b.send('g:j', `line "${i}"\n`); // 9..13
    const requests = [
      { t: 'sync', conv: 'g:j', after: 0, limit: 100 },
      { t: 'sync', conv: 'g:j', after: 3, limit: 4 },
      { t: 'sync', conv: 'g:j', before: 10, limit: 5 },
      { t: 'sync', conv: 'g:j', after: 13 },
    ];
    let id = 1000;
    const spliced: string[] = [];
    for (const request of requests) spliced.push(await replyText(bob, { ...request, id: ++id }));
    // The same store without readJson: the reply is built from read()'s entries.
    (store as { readJson?: unknown }).readJson = undefined;
    id = 1000;
    const serialized: string[] = [];
    for (const request of requests) serialized.push(await replyText(bob, { ...request, id: ++id }));
    expect(spliced).toEqual(serialized);
    const all = JSON.parse(spliced[0]!) as { msgs: { seq: number; kind: string; body: unknown; edited?: number; deleted?: number }[]; last: number };
    expect(all.msgs.map((m) => m.seq)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
    expect(all.last).toBe(13);
    expect(all.msgs[1]).toMatchObject({ kind: 'msg', edited: 3 });
    expect(all.msgs[4]).toMatchObject({ kind: 'msg', body: null, deleted: 7 });
    expect(all.msgs[5]).toMatchObject({ kind: 'edit', body: null, deleted: 7 });
    expect(all.msgs.map((m) => m.kind)).toEqual(['system', 'msg', 'edit', 'react', 'msg', 'edit', 'delete', 'system', 'msg', 'msg', 'msg', 'msg', 'msg']);
  });
});
