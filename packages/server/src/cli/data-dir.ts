/** The data directory checked before the server opens anything in it, so a bad --data is one line, not a stack trace. */
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

export class DataDirError extends Error {
  override name = 'DataDirError';
}

const REASONS: Record<string, string> = {
  EEXIST: 'is a file, not a directory',
  ENOTDIR: 'is under a file, not a directory',
  EACCES: 'is not writable by this user',
  EPERM: 'is not writable by this user',
  EROFS: 'is on a read-only file system',
};

/** A filesystem error about the data dir as one line naming --data, or undefined for any other error. */
export function describeDataDirError(dir: string, error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = code === undefined ? undefined : REASONS[code];
  return reason === undefined ? undefined : `--data ${resolve(dir)} ${reason} (${code})`;
}

/** Creates the directory if needed and makes sure this process can write in it; returns its absolute path. */
export function prepareDataDir(dir: string): string {
  const path = resolve(dir);
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    if (!statSync(path).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'EEXIST' });
    accessSync(path, constants.W_OK);
  } catch (error) {
    throw new DataDirError(describeDataDirError(path, error) ?? `--data ${path}: ${(error as Error).message}`);
  }
  return path;
}
