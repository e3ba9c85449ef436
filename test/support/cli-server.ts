/** Runs `bin/sequent serve` as a real child process: the pid tests kill is the server itself. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const BIN = fileURLToPath(new URL('../../bin/sequent', import.meta.url));
export const TEST_SECRET = 'cli-test-secret-0123456789';

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  url: string;
  httpUrl: string;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logs: string[];
}

export async function spawnServer(dataDir: string, extraArgs: string[] = [], port = 0): Promise<ServerProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port), '--data', dataDir, ...extraArgs], {
    env: { ...process.env, SEQUENT_SECRET: TEST_SECRET },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const listening = await new Promise<{ port: number; url: string; http: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${logs.join('')}`)), 15_000);
    lines.on('line', (line) => {
      logs.push(line);
      if (!line.includes('"msg":"listening"')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as { port: number; url: string; http: string });
    });
    void exited.then(({ code }) => reject(new Error(`server exited with ${code}: ${logs.join('')}`)));
  });
  return { child, port: listening.port, url: listening.url, httpUrl: listening.http, exited, logs };
}
