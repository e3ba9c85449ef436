/**
 * The load every system of the end-to-end benchmark gets: the same clients,
 * the same message count, the same window of unacknowledged sends per client.
 * A system plugs in as a list of `LoadClient`s; the driver times each send from
 * the moment it was due to the moment its acknowledgement arrived.
 */

export interface LoadClient {
  /** Sends one message; calls `acked` when the system confirms it, `failed` if it refuses it. */
  send(acked: () => void, failed: (error: Error) => void): void;
}

/** One measured phase, raw: merged with the other rounds of the same system before it is reported. */
export interface PhaseResult {
  messages: number;
  /** From the first send's due time to the last ack. */
  elapsedMs: number;
  /** performance.now() when the first send was due: where delivery counting starts too. */
  startedAt: number;
  /** Every send's latency in ms, ascending. */
  latencies: Float64Array;
  /** Paced phases: how late each send left after it was due (the load generator's own lag), ascending. */
  sendLags?: Float64Array;
}

export interface PhaseStats {
  messages: number;
  elapsed_s: number;
  msgs_per_s: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

/** The value at quantile q (0..1) of an ascending sample; NaN when it is empty. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

function summarize(latencies: Float64Array, count: number, startedAt: number, endedAt: number): PhaseResult {
  return { messages: count, elapsedMs: endedAt - startedAt, startedAt, latencies: latencies.slice(0, count).sort() };
}

const round2 = (n: number) => Math.round(n * 100) / 100;

/** Several rounds as one: all their messages over all their time, percentiles over all their sends. */
export function phaseStats(phases: readonly PhaseResult[]): PhaseStats {
  const messages = phases.reduce((sum, p) => sum + p.messages, 0);
  const elapsedMs = phases.reduce((sum, p) => sum + p.elapsedMs, 0);
  const all = new Float64Array(messages);
  let offset = 0;
  for (const p of phases) {
    all.set(p.latencies, offset);
    offset += p.latencies.length;
  }
  all.sort();
  return {
    messages,
    elapsed_s: round2(elapsedMs / 1000),
    msgs_per_s: elapsedMs > 0 ? Math.round(messages / (elapsedMs / 1000)) : 0,
    p50_ms: round2(quantile(all, 0.5)),
    p99_ms: round2(quantile(all, 0.99)),
    max_ms: round2(quantile(all, 1)),
  };
}

/** messages/s of one round. */
export function rateOf(phase: PhaseResult): number {
  return phase.elapsedMs > 0 ? phase.messages / (phase.elapsedMs / 1000) : 0;
}

/** How many of `total` messages client i sends: an even split, the first ones take the remainder. */
export function quotaOf(total: number, clients: number, i: number): number {
  return Math.floor(total / clients) + (i < total % clients ? 1 : 0);
}

/**
 * Closed loop at full speed: every client keeps up to `window` sends in flight
 * until it has sent its share of `total`. Throughput is acked messages over the
 * time from the first send to the last ack.
 */
export function runWindowed(clients: readonly LoadClient[], total: number, window: number, timeoutMs: number): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const latencies = new Float64Array(total);
    let acked = 0;
    let settled = false;
    const startedAt = performance.now();
    const timer = setTimeout(() => fail(new Error(`only ${acked} of ${total} sends were acked within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(error);
    };
    if (total === 0) {
      settled = true;
      clearTimeout(timer);
      resolve(summarize(latencies, 0, startedAt, startedAt));
      return;
    }
    clients.forEach((client, i) => {
      const quota = quotaOf(total, clients.length, i);
      let sent = 0;
      let inFlight = 0;
      const pump = () => {
        while (inFlight < window && sent < quota && !settled) {
          sent++;
          inFlight++;
          const at = performance.now();
          client.send(() => {
            const now = performance.now();
            latencies[acked++] = now - at;
            inFlight--;
            if (acked === total) {
              settled = true;
              clearTimeout(timer);
              resolve(summarize(latencies, acked, startedAt, now));
              return;
            }
            pump();
          }, fail);
        }
      };
      pump();
    });
  });
}

/**
 * Open loop at a fixed rate: the n-th message is due at start + n / rate, sent
 * by the next client (round robin) that has room in its window. Latency counts
 * from when a message was due, not when it left, so a backlog behind a slow ack
 * shows in the percentiles instead of hiding in a slower send rate.
 */
export function runPaced(clients: readonly LoadClient[], total: number, ratePerS: number, window: number, timeoutMs: number): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const latencies = new Float64Array(total);
    const lags = new Float64Array(total);
    const inFlight = new Array<number>(clients.length).fill(0);
    let issued = 0;
    let acked = 0;
    let next = 0;
    let settled = false;
    let tick: NodeJS.Timeout | undefined;
    const startedAt = performance.now();
    const timer = setTimeout(() => fail(new Error(`only ${acked} of ${total} paced sends were acked within ${timeoutMs} ms`)), timeoutMs);
    const finish = (error?: Error, endedAt?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(tick);
      if (error) reject(error);
      else resolve({ ...summarize(latencies, acked, startedAt, endedAt!), sendLags: lags.slice(0, issued).sort() });
    };
    const fail = (error: Error) => finish(error);

    const issue = () => {
      const due = Math.min(total, Math.floor(((performance.now() - startedAt) / 1000) * ratePerS) + 1);
      while (issued < due && !settled) {
        let chosen = -1;
        for (let k = 0; k < clients.length; k++) {
          const i = (next + k) % clients.length;
          if (inFlight[i]! < window) {
            chosen = i;
            break;
          }
        }
        if (chosen === -1) break; // every window is full: the backlog waits for acks
        next = (chosen + 1) % clients.length;
        const dueAt = startedAt + (issued / ratePerS) * 1000;
        lags[issued] = Math.max(0, performance.now() - dueAt);
        issued++;
        inFlight[chosen]!++;
        const index = chosen;
        clients[index]!.send(() => {
          const now = performance.now();
          latencies[acked++] = now - dueAt;
          inFlight[index]!--;
          if (acked === total) finish(undefined, now);
        }, fail);
      }
      if (issued < total && !settled) tick = setTimeout(issue, 1);
    };
    issue();
  });
}

/** Resolves once `count()` reaches `expected`, or after `timeoutMs` with what it got. */
export async function waitForCount(count: () => number, expected: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (count() < expected && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  return count();
}
