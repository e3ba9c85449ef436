/** Prometheus metrics, one registry per server so that several servers can share a process. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * A counter bumped several times per message: a plain number on the hot path
 * (a prom-client inc hashes its labels every call), handed to prom-client as
 * the increase since the last scrape whenever /metrics is read.
 */
export class HotCounter {
  private readonly counts = new Map<string, number>();

  constructor(registry: Registry, name: string, help: string, label?: string) {
    const counts = this.counts;
    const reported = new Map<string, number>();
    new Counter({
      name,
      help,
      labelNames: label === undefined ? [] : [label],
      registers: [registry],
      collect() {
        for (const [value, count] of counts) {
          const increase = count - (reported.get(value) ?? 0);
          if (increase === 0) continue;
          reported.set(value, count);
          if (label === undefined) this.inc(increase);
          else this.inc({ [label]: value }, increase);
        }
      },
    });
  }

  /** One more, under this label value (none for an unlabelled counter). */
  inc(value = ''): void {
    this.counts.set(value, (this.counts.get(value) ?? 0) + 1);
  }
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'sequent_connections', help: 'Open WebSocket connections', registers: [this.registry] });
  readonly framesIn = new HotCounter(this.registry, 'sequent_frames_in_total', 'Client frames received, by type', 'type');
  readonly errors = new Counter({
    name: 'sequent_errors_total',
    help: 'Error frames sent, by code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly entriesCommitted = new Counter({
    name: 'sequent_entries_committed_total',
    help: 'Log entries made durable (messages and system entries)',
    registers: [this.registry],
  });
  readonly dedupHits = new Counter({
    name: 'sequent_dedup_hits_total',
    help: 'Sends answered with the ack of an earlier send of the same cmid',
    registers: [this.registry],
  });
  readonly heldBack = new Counter({
    name: 'sequent_held_back_total',
    help: 'Sends held back waiting for a missing dseq',
    registers: [this.registry],
  });
  readonly pushes = new HotCounter(this.registry, 'sequent_pushes_total', 'msg frames pushed to connections');
  readonly slowConsumers = new Counter({
    name: 'sequent_slow_consumer_closes_total',
    help: 'Connections closed because their send buffer passed the limit',
    registers: [this.registry],
  });
  readonly commitBatch = new Histogram({
    name: 'sequent_commit_batch_entries',
    help: 'Entries per batch handed to the store (a store that pipelines commits may write several batches in one transaction)',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: 'sequent_commit_duration_seconds',
    help: 'Time from handing a batch to the store until it is durable',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly ackSeconds = new Histogram({
    name: 'sequent_ack_latency_seconds',
    help: 'From a send frame received to its ack written',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 2, 5],
    registers: [this.registry],
  });

  // Cluster mode (zero on a single node).
  readonly forwarded = new Counter({
    name: 'sequent_cluster_forwarded_total',
    help: 'Requests this node sent to the owner of their conversation on another node',
    registers: [this.registry],
  });
  readonly forwardUnanswered = new Counter({
    name: 'sequent_cluster_forward_unavailable_total',
    help: 'Forwarded requests answered unavailable here: no owner, no answer in time, or the bus closed, by cause',
    labelNames: ['cause'] as const,
    registers: [this.registry],
  });
  readonly busPublished = new HotCounter(this.registry, 'sequent_cluster_bus_published_total', 'Pushes this node published on the bus');
  readonly slotsHeld = new Gauge({ name: 'sequent_cluster_slots_held', help: 'Slots whose lease this node holds', registers: [this.registry] });
  readonly slotsAcquired = new Counter({
    name: 'sequent_cluster_slots_acquired_total',
    help: 'Slot leases this node acquired (at start, on hand-over to it, or taking over from a node that died)',
    registers: [this.registry],
  });
  readonly fencedCommits = new Counter({
    name: 'sequent_cluster_fenced_commits_total',
    help: 'Commits the store refused because the slot had moved past the epoch they were decided under',
    registers: [this.registry],
  });
  readonly slotsLost = new Counter({
    name: 'sequent_cluster_slots_lost_total',
    help: 'Slots this node stopped holding, by reason (released, taken, superseded, stopped)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(collectProcessMetrics: boolean) {
    if (collectProcessMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'sequent_' });
  }
}
