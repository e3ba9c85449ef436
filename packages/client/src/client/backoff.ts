/** Retry delays and timers shared by reconnects, resends and gap waits. */

export interface BackoffOptions {
  /** The cap of the first delay, doubled per attempt. */
  baseMs: number;
  /** No delay is longer than this. */
  maxMs: number;
}

/**
 * Full jitter: a uniformly random delay up to an exponentially growing, capped
 * ceiling, so that many clients that lost the same server spread out instead
 * of reconnecting in waves. `attempt` counts from 0.
 */
export function fullJitter(attempt: number, options: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

export type TimerHandle = ReturnType<typeof setTimeout>;

/**
 * A timeout that does not keep a Node process alive (when `keepAlive` is false):
 * the SDK's heartbeats and resend timers should not hold an app open by
 * themselves. In browsers `unref` does not exist and this is a plain timeout.
 */
export function startTimer(callback: () => void, ms: number, keepAlive = false): TimerHandle {
  const handle = setTimeout(callback, ms);
  if (!keepAlive) (handle as { unref?: () => void }).unref?.();
  return handle;
}
