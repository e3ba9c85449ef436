/**
 * A SeqBackend wrapper for the counter tests: it records what the real backend
 * has durably accepted (so a test can check, synchronously right after next()
 * returned, that the number was already covered by a persisted max), and it can
 * hold raises back or fail renewals (a stalled disk, a network partition).
 */
import type { Lease, MetaFence, SeqBackend } from '../../packages/server/src/seq/index.js';

export class ProbeBackend implements SeqBackend {
  /** Per section: the max the backend has confirmed durable (set before the caller sees the raise resolve). */
  readonly durable = new Map<string, number>();
  /** Every raise asked for, in order, with the max before it. */
  readonly raises: { section: string; from: number; to: number }[] = [];
  /** The leases this wrapper acquired, by section (the latest). */
  readonly leases = new Map<string, Lease>();
  /** While set, raises wait for it before reaching the backend. */
  gate: Promise<void> | undefined;
  /** While true, renewals fail as if the network were down (not fenced: a plain Error). */
  renewFails = false;
  pendingRaises = 0;

  constructor(readonly inner: SeqBackend) {}

  /** Holds raises until the returned function is called. */
  hold(): () => void {
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    return () => {
      this.gate = undefined;
      open();
    };
  }

  async acquire(section: string, holder: string, leaseMs: number): Promise<Lease> {
    const lease = await this.inner.acquire(section, holder, leaseMs);
    this.leases.set(section, lease);
    this.durable.set(section, lease.max);
    return lease;
  }

  async raise(section: string, epoch: number, newMax: number, leaseMs: number): Promise<void> {
    this.raises.push({ section, from: this.durable.get(section) ?? 0, to: newMax });
    this.pendingRaises++;
    try {
      if (this.gate !== undefined) await this.gate;
      await this.inner.raise(section, epoch, newMax, leaseMs);
      this.durable.set(section, newMax);
    } finally {
      this.pendingRaises--;
    }
  }

  async renew(section: string, epoch: number, leaseMs: number): Promise<void> {
    if (this.renewFails) throw new Error('simulated partition: renew did not reach the backend');
    await this.inner.renew(section, epoch, leaseMs);
  }

  release(section: string, epoch: number): Promise<void> {
    return this.inner.release(section, epoch);
  }

  read(section: string): Promise<Lease | undefined> {
    return this.inner.read(section);
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.inner.getMeta(key);
  }

  setMeta(key: string, value: string, fence?: MetaFence): Promise<void> {
    return this.inner.setMeta(key, value, fence);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns something other than undefined, or fails after `tries`. */
export async function eventually<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, tries = 300, everyMs = 20): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(everyMs);
  }
  throw new Error(`gave up waiting for ${what}`);
}
