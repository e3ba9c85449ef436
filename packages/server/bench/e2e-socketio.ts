/**
 * Socket.IO's side of the end-to-end benchmark: the room broadcast server of
 * socketio-server.ts as a child process, and socket.io-client sockets (WebSocket
 * transport only) joined to the same groups as rooms. A message counts when the
 * server acknowledges it (after relaying it); deliveries are the relayed copies
 * the other members receive.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { io, type Socket } from 'socket.io-client';
import { groupOf, groupSizes, messageBody, type E2eConfig } from './e2e-config.js';
import { startCpuCount } from './cpu.js';
import { DeliveryTally, settleDeliveries, tallyTotal } from './deliveries.js';
import { runWindowed, type LoadClient } from './load.js';
import type { BenchSystem, Round } from './system.js';

class RoomClient implements LoadClient {
  sent = 0;
  readonly tally = new DeliveryTally();

  constructor(
    private readonly socket: Socket,
    private readonly room: string,
    private readonly body: unknown,
  ) {
    socket.on('msg', () => this.tally.received());
  }

  send(acked: () => void): void {
    this.sent++;
    this.socket.emit('send', this.room, this.body, acked);
  }
}

async function startRoomServer(): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const script = fileURLToPath(new URL('./socketio-server.js', import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    void exited.then(() => reject(new Error('the Socket.IO server exited before listening')));
  });
  return {
    port,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function openSocketIo(config: E2eConfig, log: (line: string) => void): Promise<BenchSystem> {
  const server = await startRoomServer();
  const sockets: Socket[] = [];
  const close = async () => {
    for (const socket of sockets) socket.close();
    await server.stop();
  };
  const clients: RoomClient[] = [];
  try {
    log(`socket.io: room server pid ${server.pid} on port ${server.port}`);
    const body = messageBody(config.bodyBytes);
    for (let i = 0; i < config.clients; i++) {
      const socket = io(`http://127.0.0.1:${server.port}`, { transports: ['websocket'], reconnection: false, forceNew: true });
      sockets.push(socket);
      const room = `g${groupOf(config, i)}`;
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      await new Promise<void>((resolve) => socket.emit('join', room, resolve));
      clients.push(new RoomClient(socket, room, body));
    }
  } catch (error) {
    await close();
    throw error;
  }
  const sizes = groupSizes(config);
  const tallies = clients.map((c) => c.tally);
  const run = async (messages: number): Promise<Round> => {
    const sentBefore = clients.map((c) => c.sent);
    const deliveredBefore = tallyTotal(tallies);
    const cpuCount = startCpuCount(server.pid);
    const phase = await runWindowed(clients, messages, config.window, config.timeoutMs);
    const cpu = cpuCount();
    const expected = clients.reduce((sum, c, i) => sum + (c.sent - sentBefore[i]!) * (sizes[groupOf(config, i)]! - 1), 0);
    return { phase, cpu, deliveries: await settleDeliveries(tallies, deliveredBefore, expected, phase.startedAt, 10_000) };
  };
  return {
    name: 'socket.io room broadcast emit→ack',
    warmup: async (messages) => {
      await run(messages);
    },
    round: run,
    close,
  };
}
