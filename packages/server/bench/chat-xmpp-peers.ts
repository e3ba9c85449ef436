/**
 * The servers of the ejabberd scenario, each set up with the same users and
 * rooms: client i is user `u<i>`, a member of room i mod rooms. Sequent is the
 * real server as a child process on its embedded SQLite store; ejabberd is an
 * instance of its own (chat-xmpp-ejabberd.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { spawnServerProcess, stopServer } from '../src/chaos/server-process.js';
import { TokenAuthority } from '../src/server/auth.js';
import type { ClientSpec, ScenarioSystem } from './chat-xmpp-clients.js';
import { MUC_DOMAIN, passwordOf, startEjabberd, XMPP_DOMAIN } from './chat-xmpp-ejabberd.js';

export interface Layout {
  clients: number;
  rooms: number;
}

export const roomOf = (layout: Layout, client: number) => client % layout.rooms;
const userOf = (client: number) => `u${client}`;

export interface Peer {
  system: ScenarioSystem;
  url: string;
  domain: string;
  /** The server process, for its CPU. */
  pid: number;
  specs: ClientSpec[];
  /** The server's own version, where it is not this repository's. */
  version?: string;
  stop(): Promise<void>;
}

async function request(url: string, token: string, frames: Record<string, unknown>[]): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const replies: string[] = [];
  const all = new Promise<void>((resolve) =>
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      if (text.startsWith('{"t":"msg"')) return;
      replies.push(text);
      if (replies.length === frames.length + 1) resolve();
    }),
  );
  ws.send(JSON.stringify({ t: 'hello', id: 0, proto: 1, token }));
  frames.forEach((frame, i) => ws.send(JSON.stringify({ ...frame, id: i + 1 })));
  await all;
  ws.close();
  const refused = replies.find((text) => text.startsWith('{"t":"error"'));
  if (refused) throw new Error(`sequent setup: ${refused.slice(0, 200)}`);
}

export async function startSequentPeer(layout: Layout, durability: 'full' | 'process', log: (line: string) => void): Promise<Peer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sequent-bench-chat-xmpp-'));
  const secret = randomBytes(24).toString('base64url');
  const server = await spawnServerProcess({ dataDir, secret, args: ['--durability', durability] });
  const stop = async () => {
    await stopServer(server);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const authority = new TokenAuthority(secret);
    const tokens = await Promise.all(Array.from({ length: layout.clients }, (_, i) => authority.mint(userOf(i), 'd1')));
    for (let r = 0; r < layout.rooms; r++) {
      // The room's first member (client r) creates it with the others in it.
      const members = Array.from({ length: layout.clients }, (_, i) => i).filter((i) => roomOf(layout, i) === r && i !== r);
      await request(server.url, tokens[r]!, [{ t: 'create', conv: `g:room${r}`, members: members.map(userOf) }]);
    }
    log(`sequent (durability ${durability}): server pid ${server.pid} on port ${server.port}, data ${dataDir}`);
    return {
      system: 'sequent',
      url: server.url,
      domain: '',
      pid: server.pid,
      specs: tokens.map((secret, i) => ({ user: userOf(i), secret, room: `g:room${roomOf(layout, i)}` })),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export async function startEjabberdPeer(layout: Layout, mam: boolean, log: (line: string) => void): Promise<Peer> {
  const users = Array.from({ length: layout.clients }, (_, i) => userOf(i));
  const rooms = Array.from({ length: layout.rooms }, (_, r) => `room${r}`);
  const instance = await startEjabberd({ users, rooms, mam }, log);
  return {
    system: 'ejabberd',
    url: `xmpp://127.0.0.1:${instance.port}`,
    domain: XMPP_DOMAIN,
    pid: instance.pid,
    specs: users.map((user, i) => ({ user, secret: passwordOf(user), room: `${rooms[roomOf(layout, i)]}@${MUC_DOMAIN}` })),
    version: instance.version,
    stop: instance.stop,
  };
}
