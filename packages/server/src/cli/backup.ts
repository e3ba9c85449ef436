/** `sequent-server backup`: an online copy of the embedded store, safe to run while the server serves. */
import { join, resolve } from 'node:path';
import { BackupError, backupSqliteStore } from '../store/sqlite-backup.js';
import { parseFlags, usage, UsageError, type FlagSpec } from './args.js';

const FLAGS: Record<string, FlagSpec> = {
  data: { kind: 'string', default: './data', help: 'data directory of the server (its sequent.db is copied)' },
  to: { kind: 'string', help: 'the backup file to write (must not exist)' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

export async function runBackup(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseFlags(argv, FLAGS);
    if (!flags['help'] && flags['to'] === undefined) throw new UsageError('flag --to is required');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`sequent-server backup: ${error.message}\n${usage('backup', FLAGS)}`);
    return 2;
  }
  if (flags['help']) {
    process.stdout.write(usage('backup', FLAGS));
    return 0;
  }
  const source = resolve(join(String(flags['data']), 'sequent.db'));
  const target = resolve(String(flags['to']));
  try {
    const { pages } = await backupSqliteStore(source, target);
    process.stdout.write(`sequent-server backup: ${source} → ${target} (${pages} pages)\n`);
    return 0;
  } catch (error) {
    const message = error instanceof BackupError ? error.message : `${(error as Error).message}`;
    process.stderr.write(`sequent-server backup: ${message}\n`);
    return 1;
  }
}
