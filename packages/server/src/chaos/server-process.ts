/**
 * The real server as a child process (`bin/sequent-server serve` on the embedded
 * store), so that a SIGKILL hits the server itself and a restart reopens the
 * same data dir on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The package root, found from this file whether it runs from src/ or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'bin', 'sequent-server'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the sequent package root');
    dir = parent;
  }
  return dir;
}

export const SEQUENT_BIN = join(packageRoot(), 'bin', 'sequent-server');
/** The compiled preload that shifts the server's wall clock (the server runs from dist/ too). */
export const CLOCK_SHIFT = join(packageRoot(), 'dist', 'src', 'chaos', 'clock-shift.js');

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerChild {
  child: ChildProcess;
  pid: number;
  port: number;
  /** ws://host:port/v1/ws */
  url: string;
  httpUrl: string;
  /** http://127.0.0.1:port/metrics, when the server was started with --metrics-port */
  metricsUrl: string | undefined;
  exited: Promise<ServerExit>;
  /** Everything the process printed, for evidence when something goes wrong. */
  output: string[];
}

export interface SpawnServerOptions {
  dataDir: string;
  port?: number;
  secret: string;
  args?: string[];
  /** Flags for node itself, e.g. --cpu-prof when profiling the server. */
  nodeArgs?: string[];
  /** Keep the log in this PostgreSQL database instead of SQLite. */
  postgresUrl?: string;
  /** A file holding the server's wall-clock offset in ms (see clock-shift.ts); stepped with stepClock. */
  clockFile?: string;
  startTimeoutMs?: number;
  /** The program run as `serve` (default bin/sequent-server); a test may put a stand-in here. */
  bin?: string;
  /** A command prefix the server runs under, e.g. `ip netns exec NS` (it must exec, so that the pid is the server's). */
  wrap?: string[];
}

/** Starts `sequent-server serve` and resolves once it logs that it is listening. */
export async function spawnServerProcess(options: SpawnServerOptions): Promise<ServerChild> {
  const clock = options.clockFile === undefined ? [] : ['--import', pathToFileURL(CLOCK_SHIFT).href];
  const store = options.postgresUrl === undefined ? [] : ['--postgres', options.postgresUrl];
  const wrap = options.wrap ?? [];
  const argv = [...(options.nodeArgs ?? []), ...clock, options.bin ?? SEQUENT_BIN, 'serve', '--port', String(options.port ?? 0), '--data', options.dataDir, ...store, ...(options.args ?? [])];
  const child = spawn(
    wrap[0] ?? process.execPath,
    wrap.length === 0 ? argv : [...wrap.slice(1), process.execPath, ...argv],
    {
      env: { ...process.env, SEQUENT_SECRET: options.secret, ...(options.clockFile === undefined ? {} : { SEQUENT_CHAOS_CLOCK_FILE: options.clockFile }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const output: string[] = [];
  const exited = new Promise<ServerExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const listening = await new Promise<{ port: number; url: string; http: string; metrics?: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within ${options.startTimeoutMs ?? 15_000} ms: ${output.join('')}`));
    }, options.startTimeoutMs ?? 15_000);
    lines.on('line', (line) => {
      output.push(line);
      if (!line.includes('"msg":"listening"')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as { port: number; url: string; http: string; metrics?: string });
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening: ${output.join('')}`));
    });
  });
  return { child, pid: child.pid!, port: listening.port, url: listening.url, httpUrl: listening.http, metricsUrl: listening.metrics, exited, output };
}

/** SIGKILL: no drain, no flush — what a crash looks like. */
export async function killServer(server: ServerChild): Promise<ServerExit> {
  server.child.kill('SIGKILL');
  return server.exited;
}

/** SIGTERM: the server drains and exits on its own. */
export async function stopServer(server: ServerChild): Promise<ServerExit> {
  server.child.kill('SIGTERM');
  return server.exited;
}

/** SIGSTOP for `ms`, then SIGCONT: the process is alive, its sockets open, and it answers nothing. */
export async function pauseServer(server: ServerChild, ms: number): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGSTOP');
  await new Promise<void>((resolve) => setTimeout(resolve, ms));
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGCONT');
}

/** Sets the server's wall-clock offset; a running server reads it on SIGUSR2, a restarted one at start. */
export function stepClock(server: ServerChild | undefined, clockFile: string, offsetMs: number): void {
  writeFileSync(clockFile, `${Math.round(offsetMs)}\n`);
  if (server && server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGUSR2');
}
