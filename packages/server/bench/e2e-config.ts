/**
 * Sizes of the end-to-end benchmark: flags win over environment variables,
 * which win over the defaults (sized to finish in about a minute on 2 cores).
 */
import { parseFlags, usage, UsageError, type FlagSpec } from '../src/cli/args.js';

export interface E2eConfig {
  messages: number;
  /** Unmeasured messages each system sends first, so that every one is measured warm (JIT, caches, files grown). */
  warmup: number;
  clients: number;
  groups: number;
  window: number;
  bodyBytes: number;
  durability: 'full' | 'process';
  natsUrl: string;
  /** Directory for the Sequent server's CPU profile (node --cpu-prof), or undefined. */
  profileDir: string | undefined;
  /** Extra flags for the Sequent server's node (e.g. --perf-basic-prof for perf). */
  serverNodeArgs: string[];
  /** Skip the paced half-load run. */
  skipPaced: boolean;
  timeoutMs: number;
  /** The measured messages are sent in this many rounds, the systems taking turns. */
  rounds: number;
  /** Which systems to run (all by default). */
  systems: ReadonlySet<SystemName>;
}

export const SYSTEMS = ['sequent', 'jetstream', 'socketio'] as const;
export type SystemName = (typeof SYSTEMS)[number];

const FLAGS: Record<string, FlagSpec> = {
  messages: { kind: 'int', default: 300_000, min: 1, help: 'messages each system sends in its measured run (env E2E_MESSAGES)' },
  warmup: { kind: 'int', default: 30_000, min: 0, help: 'unmeasured messages each system sends before the rounds (env E2E_WARMUP)' },
  clients: { kind: 'int', default: 20, min: 2, max: 1000, help: 'concurrent clients / publishers (env E2E_CLIENTS)' },
  groups: { kind: 'int', default: 5, min: 1, help: 'groups (rooms, subjects); clients are spread over them round robin (env E2E_GROUPS)' },
  window: { kind: 'int', default: 16, min: 1, max: 10_000, help: 'unacknowledged sends each client keeps in flight (env E2E_WINDOW)' },
  body: { kind: 'int', default: 100, min: 0, max: 60_000, help: 'bytes of text in each message body (env E2E_BODY)' },
  durability: { kind: 'string', default: 'full', help: "Sequent's SQLite durability: full (fsync per commit) or process (env E2E_DURABILITY)" },
  'nats-url': { kind: 'string', default: 'nats://127.0.0.1:4222', help: 'NATS server with JetStream (env NATS_URL)' },
  profile: { kind: 'string', help: "write the Sequent server's CPU profile to this directory (env E2E_PROFILE)" },
  'server-node-args': { kind: 'string', help: "extra node flags for the Sequent server, space-separated (e.g. --perf-basic-prof for perf record)" },
  'no-paced': { kind: 'bool', default: false, help: 'skip the paced run at half of the peak rate' },
  rounds: { kind: 'int', default: 5, min: 1, max: 100, help: 'rounds the measured messages are split into, the systems taking turns (env E2E_ROUNDS)' },
  timeout: { kind: 'duration', default: 120_000, min: 1000, help: 'longest any one phase may take (e.g. 120s)' },
  systems: { kind: 'string', default: SYSTEMS.join(','), help: 'comma-separated subset of sequent, jetstream, socketio (env E2E_SYSTEMS)' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

const ENV: Record<string, string> = {
  messages: 'E2E_MESSAGES',
  warmup: 'E2E_WARMUP',
  clients: 'E2E_CLIENTS',
  groups: 'E2E_GROUPS',
  window: 'E2E_WINDOW',
  body: 'E2E_BODY',
  durability: 'E2E_DURABILITY',
  'nats-url': 'NATS_URL',
  profile: 'E2E_PROFILE',
  systems: 'E2E_SYSTEMS',
  rounds: 'E2E_ROUNDS',
};

/** The config, or a usage text to print (help asked, or a bad flag) with its exit code. */
export function readConfig(argv: readonly string[], env: NodeJS.ProcessEnv): E2eConfig | { exit: number; text: string } {
  // Environment values go first, as flags, so that the same validation applies to both.
  const fromEnv = Object.entries(ENV).flatMap(([flag, name]) => (env[name] ? [`--${flag}=${env[name]}`] : []));
  let flags;
  try {
    flags = parseFlags([...fromEnv, ...argv], FLAGS);
    if (flags['durability'] !== 'full' && flags['durability'] !== 'process') throw new UsageError('flag --durability takes full or process');
    for (const name of String(flags['systems']).split(',')) {
      if (!(SYSTEMS as readonly string[]).includes(name)) throw new UsageError(`flag --systems: unknown system ${JSON.stringify(name)}`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    return { exit: 2, text: `bench:e2e: ${error.message}\n${usage('bench:e2e', FLAGS)}` };
  }
  if (flags['help']) return { exit: 0, text: usage('bench:e2e', FLAGS) };
  const clients = Number(flags['clients']);
  const groups = Number(flags['groups']);
  if (groups * 2 > clients) {
    return { exit: 2, text: `bench:e2e: ${groups} groups need at least ${groups * 2} clients (two members each)\n` };
  }
  return {
    messages: Number(flags['messages']),
    warmup: Number(flags['warmup']),
    clients,
    groups,
    window: Number(flags['window']),
    bodyBytes: Number(flags['body']),
    durability: flags['durability'] as 'full' | 'process',
    natsUrl: String(flags['nats-url']),
    profileDir: flags['profile'] === undefined ? undefined : String(flags['profile']),
    serverNodeArgs: flags['server-node-args'] === undefined ? [] : String(flags['server-node-args']).split(' ').filter(Boolean),
    skipPaced: Boolean(flags['no-paced']),
    timeoutMs: Number(flags['timeout']),
    rounds: Number(flags['rounds']),
    systems: new Set(String(flags['systems']).split(',') as SystemName[]),
  };
}

/** The group (room, subject) client i belongs to, and how many members each group has. */
export function groupOf(config: Pick<E2eConfig, 'groups'>, client: number): number {
  return client % config.groups;
}

export function groupSizes(config: Pick<E2eConfig, 'clients' | 'groups'>): number[] {
  const sizes = new Array<number>(config.groups).fill(0);
  for (let i = 0; i < config.clients; i++) sizes[groupOf(config, i)]!++;
  return sizes;
}

/** A body of about `bytes` characters, the same for every system. */
export function messageBody(bytes: number): { text: string } {
  return { text: 'x'.repeat(bytes) };
}
