/**
 * The durable half of the sequence generators: sections with a persisted `max`
 * and a lease fenced by an epoch, plus a small key/value table. SQLite and
 * PostgreSQL implement it and pass one conformance suite (test/seq).
 *
 * Rules every backend keeps:
 * - every acquire that succeeds moves the section to a new, larger epoch (also a
 *   re-acquire by the same holder: a restarted process must fence its crashed
 *   predecessor's writes);
 * - raise, renew and fenced setMeta only take effect while the epoch they carry
 *   is still the section's epoch; otherwise they throw FencedError and change
 *   nothing;
 * - raise is durable when its promise resolves (the caller hands out numbers up
 *   to newMax right after);
 * - expiry times are on the backend's own clock (SQLite: the shared machine's
 *   wall clock; PostgreSQL: the database server's clock).
 */

export interface Lease {
  section: string;
  holder: string;
  epoch: number;
  /** Milliseconds since the Unix epoch, on the backend's clock. */
  expiresAt: number;
  /** The persisted max: no number above it was ever handed out from this section. */
  max: number;
}

/** Fences a setMeta by a section's epoch, like raise. */
export interface MetaFence {
  section: string;
  epoch: number;
}

export interface SeqBackend {
  /**
   * Takes the section's lease if it is free, expired, or already held by `holder`,
   * and moves it to a new epoch. Creates the section (max 0) if new. Throws
   * LeaseHeldError if another live holder has it.
   */
  acquire(section: string, holder: string, leaseMs: number): Promise<Lease>;
  /**
   * Durably sets max = newMax iff `epoch` is still the section's epoch (else
   * FencedError) and newMax is above the current max (else RangeError); also
   * extends the lease by leaseMs. newMax above 2^53 - 1 throws SeqOverflowError.
   */
  raise(section: string, epoch: number, newMax: number, leaseMs: number): Promise<void>;
  /** Extends the lease to now + leaseMs iff `epoch` is still the section's epoch; else FencedError. */
  renew(section: string, epoch: number, leaseMs: number): Promise<void>;
  /** Frees the lease iff `epoch` is still the section's epoch (a stale release is a no-op); any holder may then acquire it. */
  release(section: string, epoch: number): Promise<void>;
  /** The persisted state of a section, untouched; undefined if it was never acquired. */
  read(section: string): Promise<Lease | undefined>;
  /** A small durable key/value table (the ids generator keeps its timestamp high-water mark here). */
  getMeta(key: string): Promise<string | undefined>;
  /** Durable when it resolves. With a fence, writes only while that section is at that epoch (else FencedError). */
  setMeta(key: string, value: string, fence?: MetaFence): Promise<void>;
  close(): Promise<void>;
}

/** Largest number a counter may reach: JS numbers are exact integers only up to here. */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

/** Shared argument checks, so both backends refuse the same bad input the same way. */
export function checkLeaseMs(leaseMs: number): void {
  if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) throw new RangeError(`leaseMs must be a positive integer, got ${leaseMs}`);
}

export function checkName(what: string, value: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    throw new RangeError(`${what} must be a non-empty string of at most 200 characters`);
  }
}
