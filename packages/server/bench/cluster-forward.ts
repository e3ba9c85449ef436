/**
 * The forward path alone: `node dist/bench/cluster-forward.js [requests] [clients] [window]`.
 * A gateway bus forwards requests the size of a send to two owner buses (every
 * slot held by one of them, as at 3 nodes) that answer each with an ack-sized
 * reply after a microtask, with `clients` senders keeping `window` requests in
 * flight each, over the machine's NATS. Everything runs in this process, so its
 * CPU per request is the whole forward path's, both sides (no store, no
 * WebSockets). Prints CPU µs per request and the load average.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { ClusterBus } from '../src/cluster/bus.js';

const [requests = 200_000, clients = 32, window = 8] = process.argv.slice(2).map(Number);
const natsUrl = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const SLOTS = 64;

async function main(): Promise<void> {
  const prefix = `sequent.bench_fwd_${randomBytes(4).toString('hex')}`;
  const connect = () => ClusterBus.connect({ servers: natsUrl, prefix });
  const [gateway, a, b] = [await connect(), await connect(), await connect()];
  const request = new TextEncoder().encode(JSON.stringify({ f: { t: 'send', id: 1, conv: 'g:c1', cmid: randomBytes(8).toString('hex'), dseq: 1 }, b: JSON.stringify({ text: 'x'.repeat(100) }), u: 'user-1', d: 'device-1', c: 1 }));
  const reply = new TextEncoder().encode(JSON.stringify({ t: 'ack', id: 1, conv: 'g:c1', cmid: 'c', dseq: 1, seq: 123456, mid: 'm'.repeat(26), ts: Date.now() }));
  for (let slot = 0; slot < SLOTS; slot++) (slot % 2 === 0 ? a : b).serveSlot(slot, async () => reply);
  await Promise.all([a.flush(), b.flush()]);

  let sent = 0;
  let failed = 0;
  const run = async (client: number, count: number): Promise<void> => {
    // Each client sends into its own conversation, whose slot is fixed.
    const slot = client % SLOTS;
    const lane = async (): Promise<void> => {
      while (sent < count) {
        sent++;
        const result = await gateway.forward(slot, request, 5000);
        if (!result.ok) failed++;
      }
    };
    await Promise.all(Array.from({ length: window }, lane));
  };
  const phase = async (count: number) => {
    sent = 0;
    await Promise.all(Array.from({ length: clients }, (_, c) => run(c, count)));
  };
  await phase(Math.min(20_000, requests / 5));
  const load = loadavg();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await phase(requests);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const us = (cpu.user + cpu.system) / requests;
  process.stdout.write(
    `forward path: ${requests} requests, ${clients} clients × window ${window}: ${Math.round((requests / wallMs) * 1000)} req/s, ` +
      `CPU ${us.toFixed(1)} µs/request, ${failed} unavailable; load ${load.map((l) => l.toFixed(2)).join(' ')}\n`,
  );
  await Promise.all([gateway.close(), a.close(), b.close()]);
}

main().catch((error: unknown) => {
  process.stderr.write(`cluster-forward failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
