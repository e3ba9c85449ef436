/**
 * NATS JetStream's side of the end-to-end benchmark: a file-backed stream made
 * for this run (deleted at the end), one connection per publisher, each message
 * published with a `msgID` (JetStream's dedup) and counted when its PubAck
 * comes back, with the same window of unacknowledged publishes per publisher.
 */
import { randomBytes } from 'node:crypto';
import { connect, StorageType, type JetStreamClient, type NatsConnection } from 'nats';
import { groupOf, messageBody, type E2eConfig } from './e2e-config.js';
import { findPidByName, startCpuCount } from './cpu.js';
import { runWindowed, type LoadClient } from './load.js';
import type { BenchSystem, Round } from './system.js';

class Publisher implements LoadClient {
  private n = 0;

  constructor(
    private readonly js: JetStreamClient,
    private readonly subject: string,
    private readonly idPrefix: string,
    private readonly payload: Uint8Array,
  ) {}

  send(acked: () => void, failed: (error: Error) => void): void {
    const msgID = `${this.idPrefix}-${++this.n}`;
    this.js.publish(this.subject, this.payload, { msgID }).then((ack) => {
      if (ack.duplicate) failed(new Error(`JetStream took ${msgID} for a duplicate`));
      else acked();
    }, failed);
  }
}

export interface JetStreamSystem extends BenchSystem {
  /** The nats-server version, as it announced itself. */
  readonly server: string;
}

export async function openJetStream(config: E2eConfig, log: (line: string) => void): Promise<JetStreamSystem> {
  const stream = `BENCH_E2E_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = await connect({ servers: config.natsUrl, timeout: 2000 }).catch((error: unknown) => {
    throw new Error(`cannot reach ${config.natsUrl}: ${error instanceof Error ? error.message : String(error)}`);
  });
  const connections: NatsConnection[] = [];
  let created = false;
  const close = async () => {
    await Promise.all(connections.map((nc) => nc.close()));
    if (created) {
      await admin
        .jetstreamManager()
        .then((jsm) => jsm.streams.delete(stream))
        .catch((error: unknown) => log(`jetstream: could not delete stream ${stream}: ${String(error)}`));
    }
    await admin.close();
  };
  try {
    const jsm = await admin.jetstreamManager();
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], storage: StorageType.File, num_replicas: 1 });
    created = true;
    const server = `nats-server ${admin.info?.version ?? '?'}`;
    log(`jetstream: ${server}, file stream ${stream}`);
    connections.push(...(await Promise.all(Array.from({ length: config.clients }, () => connect({ servers: config.natsUrl, timeout: 2000 })))));
    const payload = new TextEncoder().encode(JSON.stringify(messageBody(config.bodyBytes)));
    const publishers = connections.map((nc, i) => new Publisher(nc.jetstream(), `${stream}.g${groupOf(config, i)}`, `p${i}`, payload));
    // The server's CPU share is known when it runs on this machine (the default).
    const serverPid = findPidByName('nats-server') ?? -1;
    let published = 0;
    const run = async (messages: number): Promise<Round> => {
      const cpuCount = startCpuCount(serverPid, false);
      const phase = await runWindowed(publishers, messages, config.window, config.timeoutMs);
      const cpu = cpuCount();
      published += messages;
      const info = await jsm.streams.info(stream);
      if (info.state.messages !== published) throw new Error(`the stream holds ${info.state.messages} messages, expected ${published}`);
      return { phase, cpu };
    };
    return {
      name: 'nats jetstream publish(msgID)→PubAck, file stream',
      server,
      warmup: async (messages) => {
        await run(messages);
      },
      round: run,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
