/** `sequent chaos`: a reproducible fault run against the real server; exits 1 on any broken promise. */
import { resolve } from 'node:path';
import { runChaos } from '../chaos/runner.js';
import { formatViolation } from '../chaos/report.js';
import { parseFlags, usage, UsageError, type FlagSpec } from './args.js';

const FLAGS: Record<string, FlagSpec> = {
  duration: { kind: 'duration', default: 30_000, min: 2000, max: 3_600_000, help: 'how long clients send and faults happen (e.g. 30s, 2m)' },
  users: { kind: 'int', default: 10, min: 2, max: 200, help: 'users, each with --devices devices' },
  devices: { kind: 'int', default: 2, min: 1, max: 5, help: 'devices per user' },
  groups: { kind: 'int', default: 5, min: 0, max: 100, help: 'groups (plus a few DMs per user)' },
  seed: { kind: 'int', min: 0, max: 2 ** 32 - 1, help: 'seed of the fault schedule (default: random, printed)' },
  out: { kind: 'string', default: './chaos-out', help: 'directory for the report, the SVG chart, the history and the run data' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

export async function runChaosCommand(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv, FLAGS);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`sequent chaos: ${error.message}\n${usage('chaos', FLAGS)}`);
    return 2;
  }
  if (flags['help']) {
    process.stdout.write(usage('chaos', FLAGS));
    return 0;
  }
  const seed = flags['seed'] === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(flags['seed']);
  const outDir = resolve(String(flags['out']));
  process.stdout.write(`sequent chaos: seed ${seed}, ${Number(flags['duration']) / 1000} s, writing to ${outDir}\n`);
  const result = await runChaos({
    durationMs: Number(flags['duration']),
    users: Number(flags['users']),
    devicesPerUser: Number(flags['devices']),
    groups: Number(flags['groups']),
    seed,
    outDir,
    log: (line) => process.stdout.write(`  ${line}\n`),
  });
  process.stdout.write(`\n${result.summary}\n`);
  process.stdout.write(`chart: ${result.files.svg}\nhistory: ${result.files.history}\n`);
  if (result.violations.length > 0) {
    process.stdout.write(`\n${result.violations.length} violation(s); first:\n${formatViolation(result.violations[0]!)}\nreplay with --seed ${seed}\n`);
    return 1;
  }
  return 0;
}
