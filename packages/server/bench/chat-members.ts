/**
 * One process of a large group's online members (forked by bench/chat.ts; the
 * members are spread over several such processes so that receiving is not what
 * limits the measurement). It opens one connection per member, says `ready`, then
 * counts every message pushed to its members and when the last of them got it.
 *
 * Messages are told apart by the `bn` number in their body, read without parsing
 * the frame: a member must cost as little as possible per delivery.
 */
import { io, type Socket as IoSocket } from 'socket.io-client';
import WebSocket from 'ws';

export type MemberSystem = 'sequent' | 'ws-corked' | 'ws-naive' | 'socketio';

export type ToMembers =
  | { type: 'connect'; system: MemberSystem; url: string; room: string; tokens: string[]; messages: number }
  | { type: 'report' }
  | { type: 'close' };

export type FromMembers =
  | { type: 'ready'; connected: number; failed: number; error?: string }
  | { type: 'report'; counts: number[]; lastAt: number[]; cpuSeconds: number };

const BN = /"bn":(\d+)/;
let counts = new Uint32Array(0);
let lastAt = new Float64Array(0);
const closers: (() => void)[] = [];

function delivered(text: string): void {
  const match = BN.exec(text);
  if (!match) return;
  const n = Number(match[1]);
  if (n >= counts.length) return;
  counts[n]! += 1;
  // Wall-clock milliseconds with sub-ms precision, comparable across processes of one machine.
  lastAt[n] = performance.timeOrigin + performance.now();
}

function openWs(url: string, first: string, ready: (text: string) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let joined = false;
    ws.once('open', () => ws.send(first));
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      if (!joined) {
        if (!ready(text)) return reject(new Error(`refused: ${text.slice(0, 200)}`));
        joined = true;
        closers.push(() => ws.terminate());
        return resolve();
      }
      delivered(text);
    });
    ws.once('error', reject);
  });
}

function openSocketIo(url: string, room: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket: IoSocket = io(url, { transports: ['websocket'], reconnection: false });
    socket.once('connect_error', reject);
    socket.once('connect', () => socket.emit('join', room, () => resolve()));
    socket.on('msg', (body: unknown) => delivered(JSON.stringify(body)));
    closers.push(() => socket.close());
  });
}

function open(message: Extract<ToMembers, { type: 'connect' }>, token: string): Promise<void> {
  switch (message.system) {
    case 'sequent':
      // Pushes of the group's messages carry kind "msg"; the welcome is the hello's answer.
      return openWs(message.url, JSON.stringify({ t: 'hello', id: 1, proto: 1, token }), (text) => text.startsWith('{"t":"welcome"'));
    case 'ws-corked':
    case 'ws-naive':
      return openWs(message.url, JSON.stringify({ join: message.room }), (text) => text === '{"joined":true}');
    case 'socketio':
      return openSocketIo(message.url, message.room);
  }
}

async function connectAll(message: Extract<ToMembers, { type: 'connect' }>): Promise<FromMembers> {
  counts = new Uint32Array(message.messages);
  lastAt = new Float64Array(message.messages);
  let connected = 0;
  let failed = 0;
  let error: string | undefined;
  // A bounded number of handshakes at once: a storm of them is another benchmark.
  const queue = [...message.tokens];
  const worker = async () => {
    for (let token = queue.shift(); token !== undefined; token = queue.shift()) {
      try {
        await open(message, token);
        connected++;
      } catch (e) {
        failed++;
        error ??= String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  return { type: 'ready', connected, failed, ...(error === undefined ? {} : { error }) };
}

process.on('message', (message: ToMembers) => {
  const reply = (m: FromMembers) => process.send!(m);
  if (message.type === 'connect') void connectAll(message).then(reply);
  else if (message.type === 'report') {
    const cpu = process.cpuUsage();
    reply({ type: 'report', counts: [...counts], lastAt: [...lastAt], cpuSeconds: (cpu.user + cpu.system) / 1e6 });
  } else {
    for (const close of closers) close();
    process.exit(0);
  }
});
