/** `sequent <command>`: the command-line entry point. Returns the exit code. */
import { runBackup } from './backup.js';
import { runChaosCommand } from './chaos.js';
import { runServe } from './serve.js';
import { runToken } from './token.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  serve: { run: runServe, help: 'run the server' },
  token: { run: runToken, help: 'print a token for a user and device' },
  chaos: { run: runChaosCommand, help: 'run a reproducible fault run and check every promise' },
  backup: { run: runBackup, help: 'copy the embedded store while the server serves' },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command) {
    const list = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(8)} ${c.help}`).join('\n');
    process.stderr.write(`${name === undefined ? '' : `sequent: unknown command ${JSON.stringify(name)}\n`}usage: sequent <command> [options]\n${list}\n`);
    return 2;
  }
  return command.run(rest);
}
