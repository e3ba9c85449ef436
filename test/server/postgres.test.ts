/**
 * The real server (`sequent-server serve --postgres`) keeping its log and id leases in
 * PostgreSQL: acked messages survive a kill -9, exactly once, at their acked seqs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { TokenAuthority } from '../../packages/server/src/server/auth.js';
import { spawnServer, TEST_SECRET } from '../support/cli-server.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { WireClient } from '../support/wire.js';

const available = await serviceAvailable('postgres', POSTGRES_URL);
const database = `sequent_server_${process.pid}_${Date.now().toString(36)}`;
const dataDir = mkdtempSync(join(tmpdir(), 'sequent-pg-server-'));

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

afterAll(async () => {
  rmSync(dataDir, { recursive: true, force: true });
  if (available) await admin((c) => c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
});

describe.skipIf(!available)('sequent-server serve --postgres', () => {
  it('keeps every acked message exactly once at its acked seq across a kill -9', async () => {
    await admin((c) => c.query(`CREATE DATABASE ${database}`));
    const url = new URL(POSTGRES_URL);
    url.pathname = `/${database}`;
    const tokens = new TokenAuthority(TEST_SECRET);

    const first = await spawnServer(dataDir, ['--postgres', url.toString()]);
    const alice = await WireClient.open(first.url);
    await alice.hello(await tokens.mint('alice', 'phone'));
    expect(await alice.request({ t: 'create', conv: 'g:pg', members: ['bob'] })).toMatchObject({ t: 'ok', seq: 1 });
    const acks = await Promise.all(
      Array.from({ length: 40 }, (_, i) => alice.request({ t: 'send', conv: 'g:pg', cmid: `m${i + 1}`, dseq: i + 1, body: { n: i + 1 } })),
    );
    expect(acks.map((a) => a['seq'])).toEqual(Array.from({ length: 40 }, (_, i) => i + 2));
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await spawnServer(dataDir, ['--postgres', url.toString()]);
    try {
      const bob = await WireClient.open(second.url);
      await bob.hello(await tokens.mint('bob', 'web'));
      const { msgs, last } = await bob.syncAll('g:pg');
      expect(last).toBe(41);
      expect(msgs.map((m) => m.seq)).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
      for (const ack of acks) {
        const entry = msgs.find((m) => m.seq === ack['seq']);
        expect(entry).toMatchObject({ cmid: ack['cmid'], mid: ack['mid'], ts: ack['ts'] });
      }
      // a resend after the restart is answered from the database, not stored again
      const again = await WireClient.open(second.url);
      await again.hello(await tokens.mint('alice', 'phone'));
      expect(await again.request({ t: 'send', conv: 'g:pg', cmid: 'm7', dseq: 7, body: { n: 7 } })).toMatchObject({ t: 'ack', seq: 8, mid: acks[6]!['mid'] });
      expect(await again.request({ t: 'send', conv: 'g:pg', cmid: 'm41', dseq: 41, body: { n: 41 } })).toMatchObject({ t: 'ack', seq: 42 });
      // mids of the new process never repeat the old one's
      const mids = new Set([...msgs.map((m) => m.mid)]);
      expect(mids.size).toBe(41);
      bob.close();
      again.close();
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  }, 30_000);
});
