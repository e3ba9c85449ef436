/**
 * A raw protocol client for tests: speaks frames over a real WebSocket, matches
 * replies to requests by id, and records every push in arrival order.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { MsgFrame, ServerFrame } from '../../packages/client/src/protocol/index.js';
import { startServer, type RunningServer } from '../../packages/server/src/server/index.js';
import type { ServerOptions } from '../../packages/server/src/server/options.js';
import { MemoryStore } from '../../packages/server/src/store/memory.js';

export type Reply = ServerFrame & { [key: string]: unknown };

export class WireClient {
  private nextId = 1;
  private readonly waiting = new Map<number, (frame: Reply) => void>();
  readonly pushes: MsgFrame[] = [];
  readonly unsolicited: Reply[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private pushListeners: (() => void)[] = [];

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Reply;
      if (frame.t === 'msg') {
        this.pushes.push(frame as MsgFrame);
        for (const wake of this.pushListeners.splice(0)) wake();
        return;
      }
      const id = (frame as { id?: number }).id;
      const resolve = id === undefined ? undefined : this.waiting.get(id);
      if (resolve && id !== undefined) {
        this.waiting.delete(id);
        resolve(frame);
      } else {
        this.unsolicited.push(frame);
      }
    });
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<WireClient> {
    const socket = new WebSocket(url, options);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new WireClient(socket);
  }

  /** Sends a request (an id is added unless given) and resolves with the reply carrying that id. */
  request(frame: Record<string, unknown>, timeoutMs = 10_000): Promise<Reply> {
    const id = typeof frame['id'] === 'number' ? frame['id'] : this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no reply to ${JSON.stringify(frame).slice(0, 200)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.socket.send(JSON.stringify({ ...frame, id }));
    });
  }

  sendRaw(text: string | Buffer): void {
    this.socket.send(text);
  }

  async hello(token: string): Promise<Reply> {
    return this.request({ t: 'hello', proto: 1, token });
  }

  /** Resolves once `count` pushes have arrived (in total). */
  async waitForPushes(count: number, timeoutMs = 10_000): Promise<MsgFrame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.pushes.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} pushes, got ${this.pushes.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.pushListeners.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.pushes;
  }

  /** Reads a whole conversation by paging `sync`. */
  async syncAll(conv: string, after = 0, limit = 1000): Promise<{ msgs: MsgFrame[]; last: number }> {
    const msgs: MsgFrame[] = [];
    let cursor = after;
    for (;;) {
      const reply = await this.request({ t: 'sync', conv, after: cursor, limit });
      if (reply.t !== 'batch') throw new Error(`sync failed: ${JSON.stringify(reply)}`);
      msgs.push(...(reply.msgs as MsgFrame[]));
      const newest = reply.msgs.at(-1)?.seq ?? cursor;
      if (newest >= reply.last || reply.msgs.length === 0) return { msgs, last: reply.last };
      cursor = newest;
    }
  }

  close(): void {
    this.socket.close();
  }
}

export interface TestServer {
  server: RunningServer;
  dataDir: string;
  /** Opens a connection and completes hello as user/device. */
  connect(user: string, device?: string): Promise<WireClient>;
  stop(): Promise<void>;
}

export async function startTestServer(options: Partial<ServerOptions> = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'sequent-test-'));
  const store = process.env['SEQUENT_TEST_MEMORY_STORE'] ? { store: new MemoryStore() } : {};
  const server = await startServer({ port: 0, secret: 'test-secret-0123456789-0123456789', ...store, ...options, dataDir });
  const clients: WireClient[] = [];
  return {
    server,
    dataDir,
    async connect(user, device = 'd1') {
      const client = await WireClient.open(server.url);
      clients.push(client);
      const welcome = await client.hello(await server.mintToken(user, device));
      if (welcome.t !== 'welcome') throw new Error(`hello failed: ${JSON.stringify(welcome)}`);
      return client;
    },
    async stop() {
      for (const client of clients) client.close();
      await server.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
