/**
 * Opening a SQLite file that another process has open can fail at once with
 * SQLITE_BUSY where the busy timeout does not apply — notably while that process
 * (or this one, after a crash) runs WAL recovery. Setup statements are retried
 * for a bounded time instead.
 */
const pause = new Int32Array(new SharedArrayBuffer(4));

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** Runs `setup`, retrying it on SQLITE_BUSY until `timeoutMs` has passed. Only for the synchronous setup of a connection. */
export function retryWhileBusy<T>(setup: () => T, timeoutMs: number): T {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return setup();
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
      // A short synchronous wait: the caller is opening the file and has nothing else to do.
      Atomics.wait(pause, 0, 0, Math.min(5 * 2 ** attempt, 100));
    }
  }
}
