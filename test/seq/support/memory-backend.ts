/**
 * An in-memory SeqBackend with the same rules as the durable ones (epochs, fencing,
 * expiry), for tests of the generators that need no disk. Its clock is injectable
 * so a test can let leases expire without waiting. Writes land a macrotask after
 * the call, as with a real store.
 */
import { FencedError, LeaseHeldError, SeqClosedError } from '../../../packages/server/src/seq/errors.js';
import type { Lease, MetaFence, SeqBackend } from '../../../packages/server/src/seq/backends/types.js';

interface Section {
  holder: string | undefined;
  epoch: number;
  expiresAt: number;
  max: number;
}

export class MemorySeqBackend implements SeqBackend {
  readonly sections = new Map<string, Section>();
  readonly meta = new Map<string, string>();
  /** While set, every call waits for it (simulates a stalled store). */
  stalled: Promise<void> | undefined;
  /** When set, the next raise fails with this error once (simulates a disk error). */
  failNextRaise: Error | undefined;
  private closed = false;

  constructor(public now: () => number = Date.now) {}

  async acquire(section: string, holder: string, leaseMs: number): Promise<Lease> {
    await this.io();
    const now = this.now();
    const s = this.sections.get(section) ?? { holder: undefined, epoch: 0, expiresAt: 0, max: 0 };
    if (s.holder !== undefined && s.holder !== holder && s.expiresAt > now) {
      throw new LeaseHeldError(section, s.holder, s.expiresAt);
    }
    s.holder = holder;
    s.epoch += 1;
    s.expiresAt = now + leaseMs;
    this.sections.set(section, s);
    return { section, holder, epoch: s.epoch, expiresAt: s.expiresAt, max: s.max };
  }

  async raise(section: string, epoch: number, newMax: number, leaseMs: number): Promise<void> {
    await this.io();
    if (this.failNextRaise) {
      const error = this.failNextRaise;
      this.failNextRaise = undefined;
      throw error;
    }
    const s = this.fenced(section, epoch);
    if (!(newMax > s.max)) throw new RangeError(`raise ${section}: ${newMax} is not above ${s.max}`);
    s.max = newMax;
    s.expiresAt = this.now() + leaseMs;
  }

  async renew(section: string, epoch: number, leaseMs: number): Promise<void> {
    await this.io();
    const s = this.fenced(section, epoch);
    s.expiresAt = this.now() + leaseMs;
  }

  async release(section: string, epoch: number): Promise<void> {
    await this.io();
    const s = this.sections.get(section);
    if (!s || s.epoch !== epoch) return;
    s.holder = undefined;
    s.expiresAt = 0;
  }

  async read(section: string): Promise<Lease | undefined> {
    await this.io();
    const s = this.sections.get(section);
    return s ? { section, holder: s.holder ?? '', epoch: s.epoch, expiresAt: s.expiresAt, max: s.max } : undefined;
  }

  async getMeta(key: string): Promise<string | undefined> {
    await this.io();
    return this.meta.get(key);
  }

  async setMeta(key: string, value: string, fence?: MetaFence): Promise<void> {
    await this.io();
    if (fence) this.fenced(fence.section, fence.epoch);
    this.meta.set(key, value);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Lets a test reopen the same "store" after a simulated crash (close without release). */
  reopen(): this {
    this.closed = false;
    return this;
  }

  private fenced(section: string, epoch: number): Section {
    const s = this.sections.get(section);
    if (!s || s.epoch !== epoch) throw new FencedError(section, epoch, s?.epoch);
    return s;
  }

  /** Like a real store, a write lands a macrotask later, never inside the caller's synchronous code. */
  private async io(): Promise<void> {
    this.check();
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.stalled) await this.stalled;
    this.check();
  }

  private check(): void {
    if (this.closed) throw new SeqClosedError('memory backend');
  }
}
