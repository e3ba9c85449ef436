/**
 * The other users' devices of the catch-up scenario: raw protocol-v1
 * connections that create the conversations (with the reader in them) and then
 * write the messages through the real server while the reader is offline,
 * each writer keeping a window of sends unacknowledged.
 */
import WebSocket from 'ws';
import { newCmid } from 'sequent-client';
import type { TokenAuthority } from '../src/server/auth.js';

type Frame = Record<string, unknown>;

class Writer {
  private nextId = 1;
  private readonly waiting = new Map<number, (frame: Frame) => void>();
  private readonly dseq = new Map<string, number>();

  constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      if (text.startsWith('{"t":"msg"')) return;
      const frame = JSON.parse(text) as Frame;
      if (typeof frame['id'] !== 'number') return;
      this.waiting.get(frame['id'])?.(frame);
      this.waiting.delete(frame['id']);
    });
  }

  static async open(url: string, token: string): Promise<Writer> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const writer = new Writer(ws);
    await writer.request({ t: 'hello', proto: 1, token });
    return writer;
  }

  async request(frame: Frame): Promise<Frame> {
    const id = this.nextId++;
    const reply = new Promise<Frame>((resolve) => this.waiting.set(id, resolve));
    this.ws.send(JSON.stringify({ ...frame, id }));
    const got = await reply;
    if (got['t'] === 'error') throw new Error(`${String(frame['t'])}: ${String(got['code'])} ${String(got['message'])}`);
    return got;
  }

  send(conv: string, body: unknown): Promise<Frame> {
    const dseq = (this.dseq.get(conv) ?? 0) + 1;
    this.dseq.set(conv, dseq);
    return this.request({ t: 'send', conv, cmid: newCmid(), dseq, body });
  }

  close(): void {
    this.ws.close();
  }
}

export interface Writers {
  /** Writes `perConv(c)` messages into each conversation, interleaved; resolves when all are acked. */
  write(perConv: (conv: number) => number, body: string, window: number): Promise<void>;
  close(): void;
}

export const convName = (c: number): string => `g:catchup${c}`;

/** Opens `count` writers; writer w creates (and later writes into) the conversations c with c % count === w. */
export async function openWriters(url: string, authority: TokenAuthority, count: number, convs: number, reader: string): Promise<Writers> {
  const writers = await Promise.all(Array.from({ length: count }, async (_, w) => Writer.open(url, await authority.mint(`writer${w}`, 'desk'))));
  const owned = writers.map((_, w) => Array.from({ length: convs }, (_, c) => c).filter((c) => c % count === w));
  await Promise.all(writers.map(async (writer, w) => {
    for (const c of owned[w]!) await writer.request({ t: 'create', conv: convName(c), members: [reader] });
  }));
  return {
    write: async (perConv, body, window) => {
      let bn = 0;
      await Promise.all(
        writers.map(async (writer, w) => {
          const mine = owned[w]!;
          const queue: number[] = [];
          const longest = Math.max(0, ...mine.map(perConv));
          for (let i = 0; i < longest; i++) for (const c of mine) if (i < perConv(c)) queue.push(c);
          let next = 0;
          const lane = async () => {
            for (let i = next++; i < queue.length; i = next++) await writer.send(convName(queue[i]!), { bn: bn++, text: body });
          };
          await Promise.all(Array.from({ length: window }, lane));
        }),
      );
    },
    close: () => writers.forEach((writer) => writer.close()),
  };
}
