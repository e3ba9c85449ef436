/** What each system of the end-to-end benchmark offers the runner, which interleaves their rounds. */
import type { CpuShare } from './cpu.js';
import type { DeliveryResult } from './deliveries.js';
import { quantile, rateOf, type PhaseResult } from './load.js';

export interface Round {
  phase: PhaseResult;
  /** Pushes received by the other members, where the system pushes. */
  deliveries?: DeliveryResult;
  /** Cores busy in the server and in the benchmark process during the round. */
  cpu: CpuShare;
  /** Anything else the system can tell about the round (e.g. Sequent's group commits). */
  extra?: Record<string, unknown>;
  /** The same, as a few words for the log. */
  note?: string;
}

/** One line about a round, for the log. */
export function describeRound(round: Round): string {
  const c = round.cpu;
  const rate = rateOf(round.phase);
  // CPU per message moves far less with the machine's load than messages/s do.
  const perMsg = (cores: number | null) => (cores === null || rate === 0 ? '?' : ((cores * 1e6) / rate).toFixed(1));
  const deliveries = round.deliveries ? `${Math.round(round.deliveries.deliveries / (round.deliveries.elapsedMs / 1000))} deliveries/s; ` : '';
  return (
    `${Math.round(rateOf(round.phase))} msgs/s, p50 ${quantile(round.phase.latencies, 0.5).toFixed(2)} ms, ` +
    `p99 ${quantile(round.phase.latencies, 0.99).toFixed(2)} ms; ${deliveries}` +
    (round.note ? `${round.note}; ` : '') +
    `cores busy: server ${c.server_cores ?? '?'}` +
    (c.server_main_cores === null ? '' : ` (main thread ${c.server_main_cores}, waiting for a core ${c.server_main_waiting ?? '?'})`) +
    `, bench ${c.bench_cores}; CPU µs/msg: server ${perMsg(c.server_cores)}` +
    (c.server_main_cores === null ? '' : ` (main thread ${perMsg(c.server_main_cores)})`) +
    `, bench ${perMsg(c.bench_cores)}`
  );
}

export interface BenchSystem {
  /** The row name of its results. */
  readonly name: string;
  /** Sends that are not measured, so that every system is measured warm. */
  warmup(messages: number): Promise<void>;
  /** `messages` sends at full speed, each client keeping its window full. */
  round(messages: number): Promise<Round>;
  close(): Promise<void>;
}
