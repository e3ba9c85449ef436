/**
 * A small flag parser for the CLI: `--name value` or `--name=value`, every flag
 * declared with its kind, every bad one named in the error.
 */
export type FlagKind = 'string' | 'int' | 'duration' | 'bool';

export interface FlagSpec {
  kind: FlagKind;
  default?: string | number | boolean;
  min?: number;
  max?: number;
  /** How the default reads in the help, when its value does not (a duration in ms). */
  shown?: string;
  help: string;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export type ParsedFlags = Record<string, string | number | boolean | undefined>;

/** Parses "30s", "2m", "1500ms" or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit] ?? 1000;
  return Math.round(value * factor);
}

export function parseFlags(argv: readonly string[], specs: Readonly<Record<string, FlagSpec>>): ParsedFlags {
  const out: ParsedFlags = {};
  for (const [name, spec] of Object.entries(specs)) out[name] = spec.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] === '-h' && specs['help'] ? '--help' : argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const spec = specs[name];
    if (!spec) throw new UsageError(`unknown flag --${name}`);
    if (spec.kind === 'bool' && eq === -1) {
      out[name] = true;
      continue;
    }
    const raw = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (raw === undefined) throw new UsageError(`flag --${name} needs a value`);
    out[name] = convert(name, spec, raw);
  }
  return out;
}

function convert(name: string, spec: FlagSpec, raw: string): string | number | boolean {
  switch (spec.kind) {
    case 'string':
      if (raw.length === 0) throw new UsageError(`flag --${name} needs a non-empty value`);
      return raw;
    case 'bool':
      if (raw === 'true' || raw === 'false') return raw === 'true';
      throw new UsageError(`flag --${name} takes true or false, got ${JSON.stringify(raw)}`);
    case 'int': {
      const value = Number(raw);
      if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(value)) throw new UsageError(`flag --${name} takes an integer, got ${JSON.stringify(raw)}`);
      checkRange(name, spec, value);
      return value;
    }
    case 'duration': {
      const value = parseDuration(raw);
      if (value === undefined) throw new UsageError(`flag --${name} takes a duration like 30s, 2m or 500ms, got ${JSON.stringify(raw)}`);
      checkRange(name, spec, value);
      return value;
    }
  }
}

function checkRange(name: string, spec: FlagSpec, value: number): void {
  if (spec.min !== undefined && value < spec.min) throw new UsageError(`flag --${name} must be at least ${spec.min}, got ${value}`);
  if (spec.max !== undefined && value > spec.max) throw new UsageError(`flag --${name} must be at most ${spec.max}, got ${value}`);
}

export function usage(command: string, specs: Readonly<Record<string, FlagSpec>>, summary?: string): string {
  const lines = Object.entries(specs).map(([name, spec]) => {
    const dflt = spec.default === undefined || spec.default === false ? '' : ` (default ${spec.shown ?? String(spec.default)})`;
    return `  --${name.padEnd(10)} ${spec.help}${dflt}`;
  });
  return `usage: sequent-server ${command} [options]\n${summary === undefined ? '' : `${summary}\n`}${lines.join('\n')}\n`;
}

/** The `--help` flag every command takes (`-h` too). */
export const HELP_FLAG: FlagSpec = { kind: 'bool', default: false, help: 'print this help' };

/**
 * Parses a command's flags, printing its help (exit 0) or the usage error
 * (exit 2) itself: the flags, or the exit code to return.
 */
export function parseCommand(
  command: string,
  argv: readonly string[],
  specs: Readonly<Record<string, FlagSpec>>,
  summary: string,
  check: (flags: ParsedFlags) => void = () => undefined,
): ParsedFlags | number {
  let flags: ParsedFlags;
  try {
    flags = parseFlags(argv, specs);
    if (flags['help']) {
      process.stdout.write(usage(command, specs, summary));
      return 0;
    }
    check(flags);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`sequent-server ${command}: ${error.message}\n${usage(command, specs)}`);
    return 2;
  }
  return flags;
}
