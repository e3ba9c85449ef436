/** `sequent-server <command>`: the command-line entry point. Returns the exit code. */
import { runBackup } from './backup.js';
import { runChaosCommand } from './chaos.js';
import { runServe } from './serve.js';
import { runToken } from './token.js';
import { packageVersion } from './version.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  serve: { run: runServe, help: 'run the server' },
  token: { run: runToken, help: 'print a token for a user and device' },
  chaos: { run: runChaosCommand, help: 'run a reproducible fault run and check every promise' },
  backup: { run: runBackup, help: 'copy the embedded store while the server serves' },
};

function overview(): string {
  const list = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(8)} ${c.help}`).join('\n');
  return (
    `usage: sequent-server <command> [options]\n\ncommands:\n${list}\n\n` +
    `\`sequent-server <command> --help\` lists a command's flags; \`sequent-server --version\` prints the version.\n` +
    'Operations guide: docs/operations.md\n'
  );
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`sequent-server ${packageVersion()}\n`);
    return 0;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    // `sequent-server help serve` is `sequent-server serve --help`.
    const topic = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    if (topic) return topic.run(['--help']);
    process.stdout.write(overview());
    return rest[0] === undefined ? 0 : 2;
  }
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command) {
    process.stderr.write(`${name === undefined ? '' : `sequent-server: unknown command ${JSON.stringify(name)}\n`}${overview()}`);
    return 2;
  }
  return command.run(rest);
}
