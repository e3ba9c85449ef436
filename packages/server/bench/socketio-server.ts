/**
 * The Socket.IO peer of the end-to-end benchmark, run as its own process (as
 * the Sequent server is): a room broadcast with no durability and no dedup.
 * A client joins a room, then each `send` is relayed to the room's other
 * sockets and acknowledged to the sender. Prints `{"port":N}` once listening.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';

const http = createServer();
const io = new Server(http, { serveClient: false, transports: ['websocket'] });

io.on('connection', (socket) => {
  socket.on('join', (room: string, done: () => void) => {
    void socket.join(room);
    done();
  });
  socket.on('send', (room: string, body: unknown, done: () => void) => {
    socket.to(room).emit('msg', body);
    done();
  });
});

http.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (http.address() as AddressInfo).port })}\n`);
});

process.once('SIGTERM', () => {
  // Closes every socket and the HTTP server under them.
  void io.close(() => process.exit(0));
});
