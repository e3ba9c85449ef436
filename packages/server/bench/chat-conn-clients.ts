/**
 * One process of the `connections` scenario's clients (forked by
 * chat-connections.ts). Light clients: raw `ws` connections speaking protocol
 * v1 as the SDK does on the wire, without its state machine:
 *
 * - connect: hello (its own token), then convs, like the SDK after a welcome;
 * - idle: a protocol `ping` after 20 s without a frame from the server (the
 *   SDK's pingIntervalMs); ws answers the server's ws-level pings by itself;
 * - armed for the storm: a closed connection reconnects after a full-jitter
 *   delay (the SDK's backoff, 500 ms doubling to 15 s), says hello, asks
 *   convs, syncs every conversation whose last is above its cursor, then sends
 *   one message and times its ack.
 *
 * Each client binds to a local address of its own among 127.0.1.1… so that
 * many thousands of connections do not run out of ephemeral ports.
 */
import WebSocket from 'ws';
import { DEFAULT_BACKOFF, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_PING_INTERVAL_MS, newCmid } from 'sequent-client';
import { dmConvId } from 'sequent-client/protocol';
import { TokenAuthority } from '../src/server/auth.js';

export type ToConnClients =
  | { type: 'connect'; url: string; secret: string; users: number[]; total: number; addresses: number; timeoutMs: number }
  | { type: 'dm'; timeoutMs: number }
  | { type: 'arm' }
  | { type: 'progress' }
  | { type: 'storm-report' }
  | { type: 'close' };

export type FromConnClients =
  | { type: 'connected'; connected: number; failed: number; error?: string }
  | { type: 'dm-done'; acked: number; failed: number; error?: string }
  | { type: 'armed' }
  | { type: 'progress'; online: number; done: number; attempts: number; cpuSeconds: number; rssMb: number }
  | {
      type: 'storm-report';
      onlineAt: number[];
      resyncedAt: number[];
      ackedAt: number[];
      ackMs: number[];
      attempts: number;
      errors: string[];
      /** Failed attempts by why they failed (refused, a status, no welcome in time, a close code). */
      failures: Record<string, number>;
    };

type Frame = Record<string, unknown>;
const now = () => performance.timeOrigin + performance.now();
const CONCURRENCY = 64;

export const userName = (i: number): string => `u${i}`;
/** Users pair up: u0 with u1, u2 with u3… (an odd last one talks to u0). */
export const partnerOf = (i: number, total: number): number => (i % 2 === 0 ? (i + 1 < total ? i + 1 : 0) : i - 1);

class Client {
  ws: WebSocket | undefined;
  lastFrameAt = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, (frame: Frame) => void>();
  readonly cursors = new Map<string, number>();
  private dseq = 0;
  attempts = 0;
  onlineAt = 0;
  resyncedAt = 0;
  ackedAt = 0;
  ackMs = 0;

  constructor(
    readonly index: number,
    private readonly token: string,
    private readonly localAddress: string,
  ) {}

  get dm(): string {
    return dmConvId(userName(this.index), userName(partnerOf(this.index, total)));
  }

  /** Opens the connection and says hello; resolves on the welcome. */
  open(url: string, onClose: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, localAddress: this.localAddress });
      this.ws = ws;
      let welcomed = false;
      // As the SDK: the open and the hello must fit in connectTimeoutMs, else this attempt is
      // given up and the backoff retries (a SYN dropped from a full accept queue waits 1 s, 3 s, 7 s… otherwise).
      const timer = setTimeout(() => {
        if (welcomed) return;
        reject(new Error(`no welcome within ${DEFAULT_CONNECT_TIMEOUT_MS} ms`));
        ws.terminate();
      }, DEFAULT_CONNECT_TIMEOUT_MS);
      ws.once('open', () => {
        this.request({ t: 'hello', proto: 1, token: this.token }).then(() => {
          welcomed = true;
          clearTimeout(timer);
          resolve();
        }, reject);
      });
      ws.on('message', (data: Buffer) => this.onFrame(data));
      ws.once('error', (error) => {
        if (!welcomed) reject(error);
      });
      ws.once('close', (code) => {
        clearTimeout(timer);
        // A given-up attempt closes late: its requests are gone, the next attempt's are not.
        if (this.ws !== ws) return;
        for (const waiter of this.waiting.values()) waiter({ t: 'error', code: 'closed', message: `closed ${code}` });
        this.waiting.clear();
        if (!welcomed) reject(new Error(`closed ${code} before the welcome`));
        else onClose();
      });
    });
  }

  request(frame: Frame): Promise<Frame> {
    const id = this.nextId++;
    const reply = new Promise<Frame>((resolve) => this.waiting.set(id, resolve));
    this.ws?.send(JSON.stringify({ ...frame, id }));
    return reply.then((got) => {
      if (got['t'] === 'error') throw new Error(`${String(frame['t'])}: ${String(got['code'])} ${String(got['message'])}`);
      return got;
    });
  }

  /** convs, then a sync of every conversation above its cursor (the SDK's catch-up). */
  async resync(): Promise<void> {
    const reply = await this.request({ t: 'convs' });
    for (const summary of reply['convs'] as { conv: string; last: number }[]) {
      let after = this.cursors.get(summary.conv) ?? 0;
      while (after < summary.last) {
        const batch = await this.request({ t: 'sync', conv: summary.conv, after, limit: 200 });
        const msgs = batch['msgs'] as { seq: number }[];
        if (msgs.length === 0) break;
        after = msgs.at(-1)!.seq;
      }
      this.cursors.set(summary.conv, after);
    }
  }

  async send(): Promise<number> {
    const sentAt = now();
    const ack = await this.request({ t: 'send', conv: this.dm, cmid: newCmid(), dseq: ++this.dseq, body: { text: 'hi' } });
    // Our own message: the cursor may move past it only if nothing is missing below it.
    if (ack['seq'] === (this.cursors.get(this.dm) ?? 0) + 1) this.cursors.set(this.dm, ack['seq'] as number);
    return now() - sentAt;
  }

  ping(): void {
    this.lastFrameAt = now(); // one ping per quiet period, as the SDK
    void this.request({ t: 'ping' }).catch(() => undefined);
  }

  private onFrame(data: Buffer): void {
    this.lastFrameAt = now();
    // Pushes are not parsed: these clients read their conversations by sync only.
    if (data[2] === 0x74 && data.toString('latin1', 0, 10) === '{"t":"msg"') return;
    const frame = JSON.parse(data.toString('utf8')) as Frame;
    const id = frame['id'];
    if (typeof id !== 'number') return;
    this.waiting.get(id)?.(frame);
    this.waiting.delete(id);
  }
}

let clients: Client[] = [];
let total = 0;
let url = '';
let armed = false;
/** Connection attempts since the storm was armed, over all clients. */
let attempts = 0;
const errors: string[] = [];
const noteError = (error: unknown) => void (errors.length < 5 && errors.push(String(error)));
const failures: Record<string, number> = {};
/** A failed attempt's reason, coarse enough to count: `ECONNREFUSED`, `503`, `timeout`, `closed 1006`… */
function failureKind(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const text = String(error);
  const status = /Unexpected server response: (\d+)/.exec(text)?.[1];
  if (status !== undefined) return status;
  if (text.includes('no welcome within')) return 'timeout';
  const closed = /closed (\d+)/.exec(text)?.[1];
  return closed === undefined ? text.slice(0, 60) : `closed ${closed}`;
}

/** Runs `work` over the clients, CONCURRENCY at a time; resolves with how many succeeded. */
async function forEach(list: Client[], work: (c: Client) => Promise<unknown>, timeoutMs: number): Promise<{ ok: number; failed: number; error?: string }> {
  let next = 0;
  let ok = 0;
  let failed = 0;
  let error: string | undefined;
  const deadline = now() + timeoutMs;
  const worker = async () => {
    while (next < list.length && now() < deadline) {
      const client = list[next++]!;
      try {
        await work(client);
        ok++;
      } catch (e) {
        failed++;
        error ??= String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { ok, failed, ...(error === undefined ? {} : { error }) };
}

/** After a close, the storm: reconnect with the SDK's backoff, resync, one send. */
function reconnect(client: Client): void {
  if (!armed) return;
  const ceiling = Math.min(DEFAULT_BACKOFF.maxMs, DEFAULT_BACKOFF.baseMs * 2 ** Math.min(client.attempts, 30));
  client.attempts++;
  attempts++;
  setTimeout(() => {
    client.open(url, () => reconnect(client)).then(
      async () => {
        client.onlineAt = now();
        client.attempts = 0;
        try {
          await client.resync();
          client.resyncedAt = now();
          client.ackMs = await client.send();
          client.ackedAt = now();
        } catch (error) {
          noteError(error);
        }
      },
      (error: unknown) => {
        const kind = failureKind(error);
        failures[kind] = (failures[kind] ?? 0) + 1;
        reconnect(client);
      },
    );
  }, Math.floor(Math.random() * ceiling));
}

// The SDK's heartbeat, swept once a second instead of a timer per connection.
setInterval(() => {
  const quiet = now() - DEFAULT_PING_INTERVAL_MS;
  for (const client of clients) if (client.ws?.readyState === WebSocket.OPEN && client.lastFrameAt < quiet) client.ping();
}, 1000).unref();

// The benchmark is gone (ended or killed): so are its clients.
process.on('disconnect', () => process.exit(0));

process.on('message', (message: ToConnClients) => {
  const reply = (m: FromConnClients) => process.send!(m);
  switch (message.type) {
    case 'connect': {
      url = message.url;
      total = message.total;
      const authority = new TokenAuthority(message.secret);
      void (async () => {
        const fresh = await Promise.all(
          message.users.map(async (i) => new Client(i, await authority.mint(userName(i), 'd1'), `127.0.1.${1 + (i % message.addresses)}`)),
        );
        clients.push(...fresh);
        const result = await forEach(fresh, async (c) => {
          await c.open(url, () => reconnect(c));
          c.lastFrameAt = now();
          await c.resync();
        }, message.timeoutMs);
        reply({ type: 'connected', connected: result.ok, failed: result.failed, ...(result.error === undefined ? {} : { error: result.error }) });
      })();
      return;
    }
    case 'dm': {
      const senders = clients.filter((c) => c.index % 2 === 0);
      void forEach(senders, (c) => c.send(), message.timeoutMs).then((r) =>
        reply({ type: 'dm-done', acked: r.ok, failed: r.failed, ...(r.error === undefined ? {} : { error: r.error }) }),
      );
      return;
    }
    case 'arm':
      armed = true;
      attempts = 0;
      for (const kind of Object.keys(failures)) delete failures[kind];
      for (const client of clients) {
        client.onlineAt = client.resyncedAt = client.ackedAt = client.ackMs = 0;
        client.attempts = 0;
      }
      return reply({ type: 'armed' });
    case 'progress': {
      const cpu = process.cpuUsage();
      return reply({
        type: 'progress',
        online: clients.filter((c) => c.onlineAt > 0).length,
        done: clients.filter((c) => c.ackedAt > 0).length,
        attempts,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        rssMb: Math.round(process.memoryUsage.rss() / 2 ** 20),
      });
    }
    case 'storm-report':
      return reply({
        type: 'storm-report',
        onlineAt: clients.map((c) => c.onlineAt),
        resyncedAt: clients.map((c) => c.resyncedAt),
        ackedAt: clients.map((c) => c.ackedAt),
        ackMs: clients.map((c) => c.ackMs),
        attempts,
        errors,
        failures,
      });
    case 'close':
      armed = false;
      for (const client of clients) client.ws?.terminate();
      clients = [];
      process.exit(0);
  }
});
