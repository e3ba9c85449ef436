/**
 * Counts the fsync-family system calls a server makes during a phase, with
 * `perf stat` on the kernel's syscall tracepoints (no ptrace, so the server is
 * not slowed down the way strace would slow it). This is how the benchmark tells
 * whether an ack waited for the disk: a store that syncs shows about one call
 * per group commit, one that does not shows none. Undefined when perf or the
 * tracepoints are not available.
 */
import { spawn } from 'node:child_process';

const EVENTS = ['fsync', 'fdatasync', 'sync_file_range', 'msync'].map((name) => `syscalls:sys_enter_${name}`);

export interface SyncCount {
  stop(): Promise<number | undefined>;
}

export function countSyncs(pid: number): SyncCount {
  let output = '';
  let child;
  try {
    child = spawn('perf', ['stat', '-x', ',', '-e', EVENTS.join(','), '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    return { stop: () => Promise.resolve(undefined) };
  }
  const running = child;
  running.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => {
    running.once('exit', () => resolve());
    running.once('error', () => resolve());
  });
  return {
    stop: async () => {
      running.kill('SIGINT');
      await exited;
      // CSV lines: value,unit,event,...; "<not supported>" or a missing line means it could not count.
      let total = 0;
      let counted = 0;
      for (const line of output.split('\n')) {
        const [value, , event] = line.split(',');
        if (event === undefined || !EVENTS.includes(event) || !/^\d+$/.test(value ?? '')) continue;
        total += Number(value);
        counted++;
      }
      return counted === EVENTS.length ? total : undefined;
    },
  };
}
