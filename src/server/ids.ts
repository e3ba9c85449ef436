/** The server's timestamps and message ids, from src/seq. */
import type { Clock, MidSource } from './sequencer.js';

export interface IdSources {
  clock: Clock;
  mids: MidSource;
  close(): Promise<void>;
}

export async function openIdSources(_dataDir: string): Promise<IdSources> {
  // Placeholder until src/seq lands: a monotonic clock and a process-local counter.
  let last = 0;
  let counter = 0n;
  const clock: Clock = {
    now() {
      last = Math.max(last, Date.now());
      return last;
    },
    observe(ts) {
      last = Math.max(last, ts);
    },
  };
  return { clock, mids: { next: () => String(BigInt(Date.now()) * 1_000_000n + counter++) }, close: async () => {} };
}
