/**
 * Holding section leases: acquire, renew on one unref'd timer, and stop serving
 * in time. The counters hold one lease per section through a LeaseSet.
 *
 * The local rule (seqsvr's): a holder serves only until one renewal period
 * before the backend would let another holder in. `serveUntil` is measured on
 * the local monotonic clock from the moment the acquire/renew/raise was *sent*,
 * so it always ends before the backend's expiry, which is counted from when the
 * request arrived. A lease that ran out only locally comes back when a renewal
 * succeeds (an unchanged epoch proves no one took over meanwhile); a fenced one
 * never does.
 */
import type { Lease, SeqBackend } from './backends/types.js';
import { LeaseExpiredError, SeqClosedError, SeqError } from './errors.js';

export interface LeaseOptions {
  holder: string;
  leaseMs: number;
  /** Monotonic ms (default performance.now). */
  now?: () => number;
  /** Called whenever a lease stops or resumes serving (failure set or cleared). */
  onChange?: (lease: HeldLease) => void;
}

export class HeldLease {
  /** Set while the lease must not be used: fenced, expired locally, or closed. */
  failure: SeqError | undefined;
  /** The renewal in flight (it never rejects). */
  renewing: Promise<void> | undefined;

  constructor(
    readonly section: string,
    readonly epoch: number,
    /** The persisted max when the lease was taken. */
    readonly max: number,
    /** Local monotonic time until which the holder may serve. */
    public serveUntil: number,
  ) {}
}

export class LeaseSet {
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  private closed = false;
  /** One renewal period: also the guard band between local and backend expiry. */
  readonly tickMs: number;

  private constructor(
    private readonly backend: SeqBackend,
    readonly leases: readonly HeldLease[],
    private readonly options: LeaseOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.tickMs = tickOf(options.leaseMs);
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  /** Takes every section or none: if one is held by another live holder, releases the rest and throws LeaseHeldError. */
  static async acquire(backend: SeqBackend, sections: readonly string[], options: LeaseOptions): Promise<LeaseSet> {
    const now = options.now ?? (() => performance.now());
    const sentAt = now();
    const results = await Promise.allSettled(sections.map((s) => backend.acquire(s, options.holder, options.leaseMs)));
    const taken = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (refused !== undefined) {
      await Promise.all(taken.map((l) => backend.release(l.section, l.epoch).catch(() => {})));
      throw refused.reason;
    }
    return new LeaseSet(backend, taken.map((l) => held(l, sentAt, options.leaseMs)), options);
  }

  /** Throws why the lease cannot be used now, if it cannot (also notices a local expiry the timer has not yet). */
  check(lease: HeldLease): void {
    if (lease.failure === undefined && this.now() >= lease.serveUntil) this.fail(lease, new LeaseExpiredError(lease.section));
    if (lease.failure !== undefined) throw lease.failure;
  }

  /** A write fenced by this lease's epoch that also extended it (raise) succeeded; it was sent at `sentAt`. */
  extended(lease: HeldLease, sentAt: number): void {
    lease.serveUntil = Math.max(lease.serveUntil, sentAt + this.options.leaseMs - this.tickMs);
  }

  /** Marks the lease unusable; a FencedError or closing is for good, a LeaseExpiredError until the next successful renewal. */
  fail(lease: HeldLease, failure: SeqError): void {
    if (lease.failure !== undefined && !(lease.failure instanceof LeaseExpiredError)) return;
    lease.failure = failure;
    this.options.onChange?.(lease);
  }

  /**
   * Stops serving and renewing, waits for the holder's own writes in flight
   * (`drain`) and the renewals in flight, then releases every lease: a write that
   * landed after the release would hold the section again. Further use throws
   * SeqClosedError. Does not close the backend.
   */
  async close(drain?: () => Promise<unknown>): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    const closed = new SeqClosedError('the lease');
    for (const lease of this.leases) {
      lease.failure = closed;
      this.options.onChange?.(lease);
    }
    await drain?.();
    await Promise.all(this.leases.map((l) => l.renewing));
    await Promise.all(this.leases.map((l) => this.backend.release(l.section, l.epoch).catch(() => {})));
  }

  private tick(): void {
    for (const lease of this.leases) {
      const expiredOnly = lease.failure instanceof LeaseExpiredError;
      if (lease.failure !== undefined && !expiredOnly) continue;
      const sentAt = this.now();
      if (lease.failure === undefined && sentAt >= lease.serveUntil) this.fail(lease, new LeaseExpiredError(lease.section));
      if (lease.renewing !== undefined) continue;
      lease.renewing = this.backend.renew(lease.section, lease.epoch, this.options.leaseMs).then(
        () => {
          lease.renewing = undefined;
          this.extended(lease, sentAt);
          if (lease.failure instanceof LeaseExpiredError && this.now() < lease.serveUntil) {
            lease.failure = undefined;
            this.options.onChange?.(lease);
          }
        },
        (err: unknown) => {
          lease.renewing = undefined;
          // Fenced (or the backend closed) is final; anything else (I/O) is retried next tick,
          // and serveUntil stops the holder in time if no renewal gets through.
          if (err instanceof SeqError) this.fail(lease, err);
        },
      );
    }
  }
}

export function tickOf(leaseMs: number): number {
  return Math.max(1, Math.floor(leaseMs / 4));
}

function held(lease: Lease, sentAt: number, leaseMs: number): HeldLease {
  return new HeldLease(lease.section, lease.epoch, lease.max, sentAt + leaseMs - tickOf(leaseMs));
}
