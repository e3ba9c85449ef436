/**
 * What the Sequent server says about a phase on its /metrics: the batches its
 * sequencer handed to the store (how many, how large, how long until durable;
 * the SQLite writer commits the batches that queue up meanwhile in one
 * transaction) and the ack latency it measured itself, from
 * frame received to ack written. Set beside the latency the clients measured,
 * it tells time spent in the server from time spent getting to and from it.
 */

export type Scrape = Map<string, number>;

const WANTED = /^(sequent_(?:commit_batch_entries|commit_duration_seconds|ack_latency_seconds)_(?:sum|count|bucket)(?:\{[^}]*\})?) (\S+)$/;

export async function scrapeMetrics(metricsUrl: string | undefined): Promise<Scrape | undefined> {
  if (metricsUrl === undefined) return undefined;
  try {
    const text = await (await fetch(metricsUrl)).text();
    const out: Scrape = new Map();
    for (const line of text.split('\n')) {
      const match = WANTED.exec(line);
      if (match) out.set(match[1]!, Number(match[2]));
    }
    return out;
  } catch {
    return undefined;
  }
}

export interface ServerPhaseStats {
  batches: number;
  entries_per_batch: number;
  /** From handing a batch to the store until it is durable. */
  ms_per_batch: number;
  /** Share of batches that took longer than 10 ms. */
  batches_over_10ms: number;
  /** The server's own p99 ack latency, as the upper bound of its histogram bucket. */
  server_ack_p99_ms_at_most: number | null;
}

const round = (n: number, places: number) => Math.round(n * 10 ** places) / 10 ** places;

/** Cumulative bucket counts of one histogram, from the difference of two scrapes. */
function buckets(before: Scrape, after: Scrape, name: string): { le: number; count: number }[] {
  const out: { le: number; count: number }[] = [];
  for (const [key, value] of after) {
    const match = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\}$`).exec(key);
    if (!match) continue;
    out.push({ le: match[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(match[1]), count: value - (before.get(key) ?? 0) });
  }
  return out.sort((a, b) => a.le - b.le);
}

export function phaseServerStats(before: Scrape | undefined, after: Scrape | undefined): ServerPhaseStats | undefined {
  if (!before || !after) return undefined;
  const d = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  const batches = d('sequent_commit_batch_entries_count');
  if (batches <= 0) return undefined;
  const batchBuckets = buckets(before, after, 'sequent_commit_duration_seconds');
  const within10ms = batchBuckets.find((b) => b.le === 0.01)?.count ?? batches;
  const ackBuckets = buckets(before, after, 'sequent_ack_latency_seconds');
  const acks = d('sequent_ack_latency_seconds_count');
  const p99 = acks > 0 ? ackBuckets.find((b) => b.count >= 0.99 * acks)?.le : undefined;
  return {
    batches,
    entries_per_batch: round(d('sequent_commit_batch_entries_sum') / batches, 1),
    ms_per_batch: round((d('sequent_commit_duration_seconds_sum') * 1000) / batches, 2),
    batches_over_10ms: round((batches - within10ms) / batches, 4),
    server_ack_p99_ms_at_most: p99 === undefined || !Number.isFinite(p99) ? null : p99 * 1000,
  };
}
