/** Runs `bin/sequent-server serve` as a real child process: the pid tests kill is the server itself. */
import type { ChildProcess } from 'node:child_process';
import { SEQUENT_BIN, spawnServerProcess, type ServerExit } from '../../packages/server/src/chaos/server-process.js';

export const BIN = SEQUENT_BIN;
export const TEST_SECRET = 'cli-test-secret-0123456789abcdefghijklmnop';

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  url: string;
  httpUrl: string;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<ServerExit>;
  logs: string[];
}

/** `secret: ''` leaves SEQUENT_SECRET empty, so the server uses (or creates) the one in dataDir. */
export async function spawnServer(dataDir: string, extraArgs: string[] = [], port = 0, secret = TEST_SECRET): Promise<ServerProcess> {
  const server = await spawnServerProcess({ dataDir, port, secret, args: extraArgs });
  return { child: server.child, port: server.port, url: server.url, httpUrl: server.httpUrl, exited: server.exited, logs: server.output };
}
