/** Counting pushes received by the other members, the fan-out half of a chat system's work. */
import { waitForCount } from './load.js';

/** One receiving client's tally. */
export class DeliveryTally {
  count = 0;
  lastAt = 0;

  received(): void {
    this.count++;
    this.lastAt = performance.now();
  }
}

export interface DeliveryResult {
  deliveries: number;
  expected: number;
  /** From the phase's first send to the last delivery. */
  elapsedMs: number;
}

/** Deliveries per second over several rounds: all deliveries over all their time. */
export function deliveryRate(results: readonly DeliveryResult[]): number {
  const deliveries = results.reduce((sum, r) => sum + r.deliveries, 0);
  const elapsedMs = results.reduce((sum, r) => sum + r.elapsedMs, 0);
  return elapsedMs > 0 ? Math.round(deliveries / (elapsedMs / 1000)) : 0;
}

/**
 * Waits (up to `timeoutMs`) for the pushes a phase must produce, then rates them.
 * `before` is the sum of the tallies when the phase started.
 */
export async function settleDeliveries(tallies: readonly DeliveryTally[], before: number, expected: number, startedAt: number, timeoutMs: number): Promise<DeliveryResult> {
  const total = () => tallies.reduce((sum, t) => sum + t.count, 0) - before;
  const deliveries = await waitForCount(total, expected, timeoutMs);
  const lastAt = tallies.reduce((max, t) => Math.max(max, t.lastAt), startedAt);
  return { deliveries, expected, elapsedMs: lastAt - startedAt };
}

export function tallyTotal(tallies: readonly DeliveryTally[]): number {
  return tallies.reduce((sum, t) => sum + t.count, 0);
}
