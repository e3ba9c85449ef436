/**
 * What the chat-state wire tests share: the backends they run on (SQLite, and
 * PostgreSQL when it is reachable), and waiting for a pushed frame that is not a
 * message (`read`, `typing`).
 */
import pg from 'pg';
import { afterAll } from 'vitest';
import { openPostgresStore } from '../../packages/server/src/store/postgres.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { startTestServer, type Reply, type TestServer, type WireClient } from '../support/wire.js';

export interface Backend {
  name: string;
  start(options?: Parameters<typeof startTestServer>[0]): Promise<TestServer>;
}

const schemas: string[] = [];
let n = 0;

/** SQLite always; PostgreSQL too when reachable (a fresh schema per server). */
export async function backends(): Promise<Backend[]> {
  const list: Backend[] = [{ name: 'sqlite', start: (options) => startTestServer(options) }];
  if (await serviceAvailable('postgres', POSTGRES_URL)) {
    list.push({
      name: 'postgres',
      start: (options) => {
        const schema = `sequent_chat_${process.pid}_${++n}`;
        schemas.push(schema);
        return startTestServer({ ...options, store: openPostgresStore({ url: POSTGRES_URL, schema, maxConnections: 4 }) });
      },
    });
  }
  return list;
}

afterAll(async () => {
  if (schemas.length === 0) return;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  for (const schema of schemas.splice(0)) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

/** Frames of type `t` the client received without asking (pushes other than msg). */
export function received(client: WireClient, t: string): Reply[] {
  return client.unsolicited.filter((f) => f.t === t);
}

/** Waits until `count` unsolicited frames of type `t` have arrived. */
export async function waitFor(client: WireClient, t: string, count = 1, timeoutMs = 5000): Promise<Reply[]> {
  const deadline = Date.now() + timeoutMs;
  while (received(client, t).length < count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} ${t} frames, got ${JSON.stringify(received(client, t))}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return received(client, t);
}

/** Lets frames in flight arrive, so that a test can say one did not come. */
export async function settle(client: WireClient): Promise<void> {
  await client.request({ t: 'ping' });
  await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Sends with the device's dseq counted per conversation, as the protocol wants. */
export function sender(client: WireClient) {
  const dseqs = new Map<string, number>();
  let n = 0;
  let lastConv = '';
  return {
    send: (conv: string, body: unknown, extra: Record<string, unknown> = {}) => {
      const dseq = (dseqs.get(conv) ?? 0) + 1;
      dseqs.set(conv, dseq);
      lastConv = conv;
      return client.request({ t: 'send', conv, cmid: `c${++n}-${Date.now()}`, dseq, body, ...extra });
    },
    /** The last send was refused: its dseq stays untaken, for the next send. */
    refused: () => {
      dseqs.set(lastConv, (dseqs.get(lastConv) ?? 1) - 1);
    },
  };
}
