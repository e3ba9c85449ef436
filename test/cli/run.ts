/** Runs `sequent-server` to completion, as an operator's shell would. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { BIN } from '../support/cli-server.js';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(args: string[], env: Record<string, string> = {}, options: SpawnSyncOptions = {}): RunResult {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, SEQUENT_SECRET: '', ...env },
    encoding: 'utf8',
    timeout: 15_000,
    ...options,
  });
  return { code: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}
