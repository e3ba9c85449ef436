/**
 * The raw `ws` peers of the large-group benchmark, run as their own process (as
 * the Sequent server is): a room broadcast with no log, no durability, no dedup —
 * what a hand-rolled chat server does, and so the ceiling of fan-out in Node.
 *
 *   node broadcast-server.js corked   each recipient's socket is corked the first time
 *                                     the turn writes to it and uncorked at the end of
 *                                     the turn (many pushes, one write per socket)
 *   node broadcast-server.js naive    one ws.send per recipient, nothing else
 *
 * A client sends `{"join":"<room>"}` (answered `{"joined":true}`), then
 * `{"send":<body>,"id":<n>}`: `{"msg":<body>}` goes to every other socket of the
 * room, and `{"ack":<n>}` back. Prints `{"port":N}` once listening.
 */
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

const mode = process.argv[2];
if (mode !== 'corked' && mode !== 'naive') {
  process.stderr.write('usage: broadcast-server.js corked|naive\n');
  process.exit(2);
}

const rooms = new Map<string, Set<WebSocket>>();
const corked = new Set<Socket>();

function uncorkAll(): void {
  for (const socket of corked) socket.uncork();
  corked.clear();
}

function push(ws: WebSocket, text: string): void {
  if (mode === 'corked') {
    const socket = (ws as unknown as { _socket: Socket })._socket;
    if (!corked.has(socket)) {
      if (corked.size === 0) setImmediate(uncorkAll);
      socket.cork();
      corked.add(socket);
    }
  }
  ws.send(text);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => {
  let room: Set<WebSocket> | undefined;
  ws.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString('utf8')) as { join?: string; send?: unknown; id?: number };
    if (frame.join !== undefined) {
      room = rooms.get(frame.join) ?? new Set();
      rooms.set(frame.join, room);
      room.add(ws);
      ws.send('{"joined":true}');
      return;
    }
    if (room === undefined) return;
    const text = JSON.stringify({ msg: frame.send });
    for (const member of room) if (member !== ws) push(member, text);
    push(ws, `{"ack":${frame.id ?? 0}}`);
  });
  ws.on('close', () => room?.delete(ws));
});

wss.on('listening', () => {
  process.stdout.write(`${JSON.stringify({ port: (wss.address() as { port: number }).port })}\n`);
});

process.once('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
});
