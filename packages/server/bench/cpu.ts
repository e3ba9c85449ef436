/**
 * CPU time used during a phase, by the benchmark process and by a child
 * server: which side was saturated tells whether a number measures the server
 * or the load generator. Linux /proc only; elsewhere the child's time is unknown.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: the unit of /proc/<pid>/stat times, 100 on every Linux architecture Node runs on. */
const TICKS_PER_S = 100;

/** User + system CPU seconds of a process (all its threads), or undefined if /proc cannot tell. */
export function processCpuSeconds(pid: number): number | undefined {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** The same for its main thread alone: the JavaScript event loop, which no other thread can help. */
export function mainThreadCpuSeconds(pid: number): number | undefined {
  return statCpuSeconds(`/proc/${pid}/task/${pid}/stat`);
}

/**
 * Seconds the main thread was runnable but waiting for a core (/proc schedstat):
 * on a busy machine, time the server lost to other processes, not to its own work.
 */
export function mainThreadWaitSeconds(pid: number): number | undefined {
  try {
    const [, waitNs] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ');
    return waitNs === undefined ? undefined : Number(waitNs) / 1e9;
  } catch {
    return undefined;
  }
}

function statCpuSeconds(path: string): number | undefined {
  try {
    const stat = readFileSync(path, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  } catch {
    return undefined;
  }
}

export interface CpuShare {
  /** CPU seconds per wall second (1 = one core busy the whole phase), all threads of the server. */
  server_cores: number | null;
  /** The server's main thread (its event loop) alone. */
  server_main_cores: number | null;
  /** Share of the phase the main thread was ready to run but had no core. */
  server_main_waiting: number | null;
  bench_cores: number;
}

/**
 * Starts counting; the returned function gives the shares since then. The main
 * thread is counted only for a Node server (`eventLoop`): in a Go server such as
 * nats-server the first thread is not where the work happens.
 */
export function startCpuCount(serverPid: number, eventLoop = true): () => CpuShare {
  const wallStart = performance.now();
  const serverStart = processCpuSeconds(serverPid);
  const mainStart = eventLoop ? mainThreadCpuSeconds(serverPid) : undefined;
  const waitStart = eventLoop ? mainThreadWaitSeconds(serverPid) : undefined;
  const benchStart = process.cpuUsage();
  return () => {
    const wall = (performance.now() - wallStart) / 1000;
    const bench = process.cpuUsage(benchStart);
    const share = (start: number | undefined, end: number | undefined) =>
      start === undefined || end === undefined ? null : Math.round(((end - start) / wall) * 100) / 100;
    return {
      server_cores: share(serverStart, processCpuSeconds(serverPid)),
      server_main_cores: share(mainStart, mainThreadCpuSeconds(serverPid)),
      server_main_waiting: share(waitStart, mainThreadWaitSeconds(serverPid)),
      bench_cores: Math.round(((bench.user + bench.system) / 1e6 / wall) * 100) / 100,
    };
  };
}

/** The pid of a local process by its command name (e.g. the nats-server the benchmark talks to), if exactly one runs. */
export function findPidByName(name: string): number | undefined {
  try {
    const found = readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name;
        } catch {
          return false;
        }
      });
    return found.length === 1 ? Number(found[0]) : undefined;
  } catch {
    return undefined;
  }
}
