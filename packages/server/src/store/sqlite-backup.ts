/**
 * An online backup of the embedded store: SQLite's backup API, read through a
 * connection of its own while the server keeps committing. Under WAL the copy is
 * one consistent snapshot: every commit that had returned when the backup's last
 * step began is in it (and so every ack sent before the backup started).
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';

export class BackupError extends Error {
  override name = 'BackupError';
}

/** Copies the database at `source` to `target` (which must not exist), atomically: a failed backup leaves no target. */
export async function backupSqliteStore(source: string, target: string): Promise<{ pages: number }> {
  if (!existsSync(source)) throw new BackupError(`no database at ${source}`);
  if (existsSync(target)) throw new BackupError(`${target} exists already; choose a new file`);
  const db = new Database(source, { readonly: true, fileMustExist: true, timeout: 5000 });
  const partial = `${target}.partial-${process.pid}`;
  try {
    // After the first step, copy all that is left in one: a step is one read
    // transaction, so a busy writer cannot restart it and the copy always ends.
    const { totalPages } = await db.backup(partial, { progress: () => 1_000_000_000 });
    renameSync(partial, target);
    return { pages: totalPages };
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  } finally {
    db.close();
  }
}
