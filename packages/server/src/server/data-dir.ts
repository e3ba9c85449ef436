/**
 * The data directory holds every message and the token secret: only the
 * server's own user may read it. SQLite creates a database's -wal and -shm
 * files with the database file's mode, so each database file is made 0600
 * before SQLite first opens it.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import type { Logger } from 'pino';

const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/** Creates the directory 0700 if missing; an existing one that others can enter is left as it is, with a warning. */
export function prepareDataDir(dir: string, logger: Logger): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
    // mkdir's mode passes through the umask; the directory must be 0700 whatever it is.
    chmodSync(dir, PRIVATE_DIR);
    return;
  }
  if ((statSync(dir).mode & 0o077) !== 0) {
    logger.warn({ dataDir: dir, mode: (statSync(dir).mode & 0o777).toString(8) }, 'the data directory can be read by other users; chmod 700 it');
  }
}

/** Makes a database file (and its -wal, -shm and -journal, where they exist) readable by this user only, creating it empty if missing. */
export function privateDatabaseFile(path: string): string {
  closeSync(openSync(path, 'a', PRIVATE_FILE));
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    if (existsSync(file)) chmodSync(file, PRIVATE_FILE);
  }
  return path;
}
