/**
 * The catch-up scenario's peer: NATS JetStream. The same messages go into a
 * file-backed stream (one subject per conversation, published and PubAcked
 * before the measurement); then an ordered consumer, which is how a JetStream
 * client replays a stream from the start, reads all of them back. Each message
 * is decoded as JSON, as the SDK decodes each entry.
 */
import { randomBytes } from 'node:crypto';
import { connect, StorageType, type NatsConnection } from 'nats';
import { processCpuSeconds, findPidByName } from './cpu.js';
import { now } from './chat-scenario.js';

export interface ReplayResult {
  entries: number;
  seconds: number;
  /** CPU seconds of nats-server over the replay, when it runs on this machine. */
  serverCpu: number | null;
  clientCpu: number;
}

export interface JetStreamReplay {
  readonly server: string;
  replay(batch: number, timeoutMs: number): Promise<ReplayResult>;
  close(): Promise<void>;
}

/** Creates the stream and fills it; throws (with the reason) when NATS cannot be reached. */
export async function fillJetStream(
  url: string,
  convs: number,
  perConv: (conv: number) => number,
  body: string,
  log: (line: string) => void,
): Promise<JetStreamReplay> {
  const nc: NatsConnection = await connect({ servers: url, timeout: 2000 }).catch((error: unknown) => {
    throw new Error(`cannot reach ${url}: ${error instanceof Error ? error.message : String(error)}`);
  });
  const stream = `BENCH_CATCHUP_${process.pid}_${randomBytes(4).toString('hex')}`;
  const jsm = await nc.jetstreamManager();
  let created = false;
  const close = async () => {
    if (created) await jsm.streams.delete(stream).catch((error: unknown) => log(`jetstream: could not delete stream ${stream}: ${String(error)}`));
    await nc.close();
  };
  try {
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.File, num_replicas: 1 });
    created = true;
    const js = nc.jetstream();
    const encoder = new TextEncoder();
    // Interleaved over the conversations, as the writers of the Sequent side send them.
    const subjects: string[] = [];
    const longest = Math.max(...Array.from({ length: convs }, (_, c) => perConv(c)));
    for (let i = 0; i < longest; i++) for (let c = 0; c < convs; c++) if (i < perConv(c)) subjects.push(`${stream}.c${c}`);
    let next = 0;
    const lane = async () => {
      for (let i = next++; i < subjects.length; i = next++) {
        await js.publish(subjects[i]!, encoder.encode(JSON.stringify({ bn: i, text: body })));
      }
    };
    const t0 = now();
    await Promise.all(Array.from({ length: 256 }, lane));
    const info = await jsm.streams.info(stream);
    if (info.state.messages !== subjects.length) throw new Error(`the stream holds ${info.state.messages} messages, expected ${subjects.length}`);
    log(`jetstream: nats-server ${nc.info?.version ?? '?'}, ${subjects.length} messages in file stream ${stream} (${((now() - t0) / 1000).toFixed(1)} s to publish)`);
    const serverPid = findPidByName('nats-server');
    return {
      server: `nats-server ${nc.info?.version ?? '?'}`,
      replay: async (batch, timeoutMs) => {
        const total = subjects.length;
        const consumer = await js.consumers.get(stream);
        const cpu0 = serverPid === undefined ? undefined : processCpuSeconds(serverPid);
        const client0 = process.cpuUsage();
        const started = now();
        let got = 0;
        let finish!: () => void;
        const done = new Promise<void>((resolve) => (finish = resolve));
        const timer = setTimeout(finish, timeoutMs);
        const messages = await consumer.consume({
          max_messages: batch,
          callback: (m) => {
            m.json();
            if (++got === total) finish();
          },
        });
        await done;
        clearTimeout(timer);
        const ended = now();
        const cpu1 = serverPid === undefined ? undefined : processCpuSeconds(serverPid);
        const client = process.cpuUsage(client0);
        await messages.close();
        if (got < total) throw new Error(`replayed ${got} of ${total} messages in ${timeoutMs} ms`);
        return {
          entries: got,
          seconds: (ended - started) / 1000,
          serverCpu: cpu0 === undefined || cpu1 === undefined ? null : cpu1 - cpu0,
          clientCpu: (client.user + client.system) / 1e6,
        };
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
