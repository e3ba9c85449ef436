/**
 * `node packages/server/dist/bench/pg-commits.js`: acked messages per second on
 * the PostgreSQL store with many conversations, its commits one at a time (the
 * sequencer keeping one batch in flight, as before the store pipelined them) and
 * pipelined (up to 64 in flight), in one run, the two taking turns round by round.
 *
 * The server's own sequencer and conversation owner drive the store; `senders`
 * loops each keep one message in flight (append, wait for its ack, next), to a
 * conversation picked at random among those of their node. `--nodes 2` runs two
 * sequencers, each with its own pool, on disjoint halves of the conversations of
 * one schema: two cluster nodes sharing one PostgreSQL. Bounded in messages and
 * in time (`--timeout` per phase); each phase gets a fresh schema, dropped after.
 */
import { pino } from 'pino';
import { parseFlags, usage, UsageError, type FlagSpec } from '../src/cli/args.js';
import { ServerMetrics } from '../src/server/metrics.js';
import { ConversationOwner, type ConvState } from '../src/server/owner.js';
import { Sequencer } from '../src/server/sequencer.js';
import type { Entry } from 'sequent-client/protocol';
import type { CommitBatch, MembershipChange, Store } from '../src/store/index.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { startDelayRelay } from './tcp-delay.js';
import { admin } from './pg-admin.js';

const FLAGS: Record<string, FlagSpec> = {
  url: { kind: 'string', default: process.env['POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test', help: 'PostgreSQL to measure (env POSTGRES_URL)' },
  convs: { kind: 'int', default: 2000, min: 1, help: 'group conversations' },
  members: { kind: 'int', default: 3, min: 1, max: 100, help: 'members of each conversation' },
  users: { kind: 'int', default: 3000, min: 1, help: 'users the members are drawn from' },
  senders: { kind: 'int', default: 256, min: 1, max: 10_000, help: 'concurrent senders, each with one message in flight' },
  messages: { kind: 'int', default: 20_000, min: 1, help: 'measured messages per phase' },
  warmup: { kind: 'int', default: 2_000, min: 0, help: 'unmeasured messages first in each phase' },
  nodes: { kind: 'int', default: 1, min: 1, max: 8, help: 'sequencers (each its own pool) sharing the schema' },
  connections: { kind: 'int', default: 10, min: 1, max: 100, help: 'pool connections of each node' },
  'commits-in-flight': { kind: 'int', min: 1, max: 100, help: "the store's commit transactions at once (default: half the connections)" },
  rtt: { kind: 'int', default: 0, min: 0, max: 100, help: 'ms of round trip added between the stores and PostgreSQL (a relay), as for a database on another host' },
  modes: { kind: 'string', default: 'serial,pipelined', help: 'which of serial (one commit in flight) and pipelined to run' },
  rounds: { kind: 'int', default: 2, min: 1, max: 10, help: 'rounds; each runs both modes' },
  timeout: { kind: 'duration', default: 120_000, min: 1000, help: 'longest any one phase may take' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

type Mode = 'one at a time' | 'pipelined';

interface Config {
  url: string;
  convs: number;
  members: number;
  users: number;
  senders: number;
  messages: number;
  warmup: number;
  nodes: number;
  connections: number;
  rttMs: number;
  commitsInFlight: number | undefined;
  modes: Mode[];
  rounds: number;
  timeoutMs: number;
}

function config(argv: readonly string[]): Config {
  const flags = parseFlags(argv, FLAGS);
  if (flags['help']) {
    process.stdout.write(usage('bench pg-commits', FLAGS));
    process.exit(0);
  }
  const int = (name: string) => flags[name] as number;
  return {
    url: flags['url'] as string,
    convs: int('convs'),
    members: int('members'),
    users: int('users'),
    senders: int('senders'),
    messages: int('messages'),
    warmup: int('warmup'),
    nodes: int('nodes'),
    connections: int('connections'),
    rttMs: int('rtt'),
    commitsInFlight: flags['commits-in-flight'] as number | undefined,
    modes: (flags['modes'] as string).split(',').map((m) => {
      if (m === 'serial') return 'one at a time';
      if (m === 'pipelined') return 'pipelined';
      throw new UsageError(`--modes: serial or pipelined, got ${JSON.stringify(m)}`);
    }),
    rounds: int('rounds'),
    timeoutMs: int('timeout'),
  };
}

/** The store as the sequencer sees it: pipelined or not, and counting commits. */
function viewOf(store: Store, mode: Mode, tally: { commits: number }): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'pipelinesCommits') return mode === 'pipelined';
      if (prop === 'commit') {
        return (batch: CommitBatch) => {
          tally.commits++;
          return target.commit(batch);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A small deterministic PRNG (the same conversations and picks in every phase). */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const system = (conv: string, from: string, mid: string): Entry => ({ conv, seq: 1, kind: 'system', mid, ts: Date.now(), from, dev: 'server', body: { op: 'create' } });

interface PhaseResult {
  mode: Mode;
  msgsPerSec: number;
  entriesPerCommit: number;
  seconds: number;
  /** This process's CPU (sequencer, store client, relay) per 1000 measured messages. */
  cpuMsPer1000: number;
}

async function phase(cfg: Config, mode: Mode, n: number, storeUrl: string): Promise<PhaseResult> {
  const schema = `bench_pgc_${process.pid}_${n}`;
  const stores = Array.from({ length: cfg.nodes }, () => openPostgresStore({
      url: storeUrl,
      schema,
      maxConnections: cfg.connections,
      ...(cfg.commitsInFlight === undefined ? {} : { maxCommitsInFlight: cfg.commitsInFlight }),
    }));
  let mid = 7_000_000_000_000_000_000n;
  const nextMid = () => String(++mid);
  try {
    for (const store of stores) await store.init();
    // The conversations, 200 to a commit.
    const random = prng(42);
    const members: string[][] = [];
    for (let i = 0; i < cfg.convs; i += 200) {
      const batch: CommitBatch = { newConvs: [], entries: [], memberships: [] };
      for (let c = i; c < Math.min(cfg.convs, i + 200); c++) {
        const conv = `g:c${c}`;
        const users = new Set<string>();
        while (users.size < Math.min(cfg.members, cfg.users)) users.add(`u${Math.floor(random() * cfg.users)}`);
        members.push([...users]);
        batch.newConvs.push({ conv, kind: 'group' });
        batch.entries.push(system(conv, members[c]![0]!, nextMid()));
        for (const user of users) batch.memberships.push({ op: 'add', conv, user, seq: 1 } satisfies MembershipChange);
      }
      await stores[0]!.commit(batch);
    }
    const tally = { commits: 0 };
    const nodes = stores.map((store) => {
      const view = viewOf(store, mode, tally);
      const owner = new ConversationOwner(view);
      const sequencer = new Sequencer(view, owner, { now: Date.now, observe: () => {} }, { next: nextMid }, 2000, new ServerMetrics(false), pino({ level: 'silent' }), () => {});
      return { owner, sequencer };
    });
    const dseqs = new Map<string, number>();
    const run = async (count: number): Promise<number> => {
      let left = count;
      const started = performance.now();
      const deadline = started + cfg.timeoutMs;
      const sender = async (s: number) => {
        const node = s % cfg.nodes;
        const pick = prng(1000 + s + n * 7919);
        const { owner, sequencer } = nodes[node]!;
        while (left > 0) {
          if (performance.now() > deadline) throw new Error(`${mode}: the phase took longer than ${cfg.timeoutMs} ms`);
          left--;
          // a conversation of this node: conversation i belongs to node i % nodes
          const slots = Math.ceil((cfg.convs - node) / cfg.nodes);
          const c = node + cfg.nodes * Math.floor(pick() * slots);
          const state = (await owner.get(`g:c${c}`)) as ConvState;
          const from = members[c]![Math.floor(pick() * members[c]!.length)]!;
          const key = `${c}/${from}`;
          const dseq = (dseqs.get(key) ?? 0) + 1;
          dseqs.set(key, dseq);
          const body = { text: 'x'.repeat(100) };
          await sequencer.append(state, { kind: 'msg', from, dev: 'd', body, bodyJson: JSON.stringify(body), cmid: `m${key}-${dseq}`, dseq }, undefined);
        }
      };
      await Promise.all(Array.from({ length: cfg.senders }, (_, s) => sender(s)));
      return (performance.now() - started) / 1000;
    };
    await run(cfg.warmup);
    const before = tally.commits;
    const cpu = process.cpuUsage();
    const seconds = await run(cfg.messages);
    const used = process.cpuUsage(cpu);
    return {
      mode,
      msgsPerSec: cfg.messages / seconds,
      entriesPerCommit: cfg.messages / Math.max(1, tally.commits - before),
      seconds,
      cpuMsPer1000: ((used.user + used.system) / 1000 / cfg.messages) * 1000,
    };
  } finally {
    for (const store of stores) await store.close();
    await admin(cfg.url, `DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  }
}

async function main(): Promise<void> {
  const cfg = config(process.argv.slice(2));
  const modes = cfg.modes;
  const results: PhaseResult[] = [];
  let n = 0;
  const target = new URL(cfg.url);
  const relay = cfg.rttMs > 0 ? await startDelayRelay(target.hostname, Number(target.port || 5432), cfg.rttMs) : undefined;
  const storeUrl = relay ? Object.assign(new URL(cfg.url), { hostname: '127.0.0.1', port: String(relay.port) }).toString() : cfg.url;
  try {
  for (let round = 1; round <= cfg.rounds; round++) {
    for (const mode of modes) {
      const result = await phase(cfg, mode, ++n, storeUrl);
      results.push(result);
      console.log(`round ${round} ${mode.padEnd(13)} ${result.msgsPerSec.toFixed(0).padStart(7)} acked msgs/s  ${result.entriesPerCommit.toFixed(1).padStart(6)} entries/commit  ${result.cpuMsPer1000.toFixed(0).padStart(5)} ms CPU/1000 msgs here  (${result.seconds.toFixed(1)} s)`);
    }
  }
  } finally {
    await relay?.close();
  }
  const median = (mode: Mode) => {
    const xs = results.filter((r) => r.mode === mode).map((r) => r.msgsPerSec).sort((a, b) => a - b);
    return xs[Math.floor((xs.length - 1) / 2)]!;
  };
  const summary = modes.map((mode) => `${mode} ${median(mode).toFixed(0)} msgs/s`).join(', ');
  const ratio = modes.length === 2 ? ` (x${(median(modes[1]!) / median(modes[0]!)).toFixed(2)})` : '';
  console.log(
    `PostgreSQL commits${cfg.rttMs > 0 ? ` over a ${cfg.rttMs} ms round trip` : ''}, ${cfg.nodes} node(s) x ${cfg.connections} connections, ${cfg.convs} conversations of ${cfg.members}, ${cfg.senders} senders: ` +
      `${summary}${ratio}; lower median of ${cfg.rounds} rounds`,
  );
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message}\n${usage('bench pg-commits', FLAGS)}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
