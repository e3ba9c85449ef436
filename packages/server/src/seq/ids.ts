/**
 * Time-ordered 64-bit message ids ("mids"), as decimal strings.
 *
 * Layout (most significant first; the value is a positive signed 64-bit integer):
 *   1 bit  sign, always 0
 *  42 bits time: ms since the epoch (default 2025-01-01T00:00:00Z); ends 2164-05-15
 *   7 bits worker id (0..127), leased from the backend
 *  14 bits sequence within the ms (0..16383)
 *
 * Every field is checked against its width where it enters and composed only from
 * in-range values, so no field can spill into its neighbour (the worker-id overflow
 * of sonyflake and uid-generator); running past the end of the time range is an
 * error, never a negative or wrapped id. The guarantees (uniqueness across live
 * processes, order within a process, restart above the high-water mark, clock-back
 * policy, overflow borrowing) are in docs/seq.md ("Ids") and at MidGenerator.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Lease, SeqBackend } from './backends/types.js';
import { LeaseExpiredError, SeqClosedError, SeqError } from './errors.js';

export const MID_TIME_BITS = 42;
export const MID_WORKER_BITS = 7;
export const MID_SEQUENCE_BITS = 14;
export const MID_MAX_TIME = 2 ** MID_TIME_BITS - 1;
export const MID_MAX_WORKER = 2 ** MID_WORKER_BITS - 1;
export const MID_MAX_SEQUENCE = 2 ** MID_SEQUENCE_BITS - 1;
export const DEFAULT_MID_EPOCH_MS = Date.UTC(2025, 0, 1);

const WORKER_SHIFT = 2 ** MID_SEQUENCE_BITS; // worker * this
const TIME_SHIFT = 2 ** (MID_WORKER_BITS + MID_SEQUENCE_BITS); // time * this
const MAX_MID = (1n << 63n) - 1n;

export const DEFAULT_MID_LEASE_MS = 10_000;
export const DEFAULT_MAX_BACKWARD_MS = 5_000;
export const DEFAULT_MAX_LEAD_MS = 100;
export const DEFAULT_HWM_WINDOW_MS = 10_000;
/** Backend section of worker id n. */
export const midWorkerSection = (n: number): string => `mid:worker:${n}`;

export class MidClockBackError extends SeqError {
  constructor(readonly backwardMs: number, readonly maxBackwardMs: number) {
    super('clock_moved_back', `the clock moved back by ${backwardMs} ms, more than maxBackwardMs (${maxBackwardMs}); policy 'refuse' issues no id until it catches up`);
  }
}
export class MidNotReadyError extends SeqError {
  constructor(readonly time: number) {
    super('mid_not_ready', `no id can be issued at ${new Date(time).toISOString()} until the timestamp high-water mark above it is durable; await ready()`);
  }
}
export class MidTimeExhaustedError extends SeqError {
  constructor(readonly epochMs: number) {
    super('mid_time_exhausted', `the 42-bit time field of the ids ends at ${new Date(epochMs + MID_MAX_TIME).toISOString()}; no later id exists for this epoch`);
  }
}
export class NoWorkerIdError extends SeqError {
  constructor() {
    super('no_worker_id', `all ${MID_MAX_WORKER + 1} worker ids (sections mid:worker:0..${MID_MAX_WORKER}) are leased by live holders`);
  }
}

/** '0000'..'9999': the last four decimal digits of an id, without a division per id. */
const DIGITS4: readonly string[] = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, '0'));

/** value = time * 2^21 + worker * 2^14 + sequence as (value div 10^4, value mod 10^4), exactly, in doubles. */
function splitDecimal(time: number, worker: number, sequence: number): [prefix: number, low: number] {
  const a = Math.floor(time / 10_000);
  const rest = (time % 10_000) * TIME_SHIFT + worker * WORKER_SHIFT + sequence; // < 2.1e10
  return [a * TIME_SHIFT + Math.floor(rest / 10_000), rest % 10_000]; // prefix < 9.3e14 < 2^53
}

function checkField(what: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) throw new RangeError(`${what} must be an integer in 0..${max}, got ${value}`);
}

export interface MidFields {
  /** Milliseconds since the Unix epoch. */
  time: number;
  worker: number;
  sequence: number;
}

/** The id for these fields; every field is range-checked (an out-of-range field is an error, never masked into a neighbour). */
export function encodeMid(fields: MidFields, epochMs = DEFAULT_MID_EPOCH_MS): string {
  const time = fields.time - epochMs;
  if (time > MID_MAX_TIME && Number.isSafeInteger(time)) throw new MidTimeExhaustedError(epochMs);
  checkField('time - epochMs', time, MID_MAX_TIME);
  checkField('worker', fields.worker, MID_MAX_WORKER);
  checkField('sequence', fields.sequence, MID_MAX_SEQUENCE);
  const [prefix, low] = splitDecimal(time, fields.worker & MID_MAX_WORKER, fields.sequence & MID_MAX_SEQUENCE);
  return prefix === 0 ? String(low) : String(prefix) + DIGITS4[low];
}

/** The fields of an id. Throws RangeError on anything that is not the decimal form of a positive 63-bit id. */
export function decodeMid(mid: string, epochMs = DEFAULT_MID_EPOCH_MS): MidFields {
  if (typeof mid !== 'string' || !/^(0|[1-9][0-9]{0,18})$/.test(mid)) throw new RangeError(`not a mid: ${JSON.stringify(mid)}`);
  const value = BigInt(mid);
  if (value > MAX_MID) throw new RangeError(`not a mid (above 2^63 - 1): ${mid}`);
  return {
    time: Number(value >> BigInt(MID_WORKER_BITS + MID_SEQUENCE_BITS)) + epochMs,
    worker: Number((value >> BigInt(MID_SEQUENCE_BITS)) & BigInt(MID_MAX_WORKER)),
    sequence: Number(value & BigInt(MID_MAX_SEQUENCE)),
  };
}

export interface MidGeneratorOptions {
  /** Start of the time field, ms since the Unix epoch; default 2025-01-01. Every process on a store must use the same. */
  epochMs?: number;
  /** Wall clock (ms since the Unix epoch); Date.now by default. */
  clock?: () => number;
  /** A clock that never goes back (ms), used only to bound how far borrowing runs ahead; performance.now by default. */
  monotonic?: () => number;
  /** Worker lease length; renewed every leaseMs / 3. Default 10 s. */
  leaseMs?: number;
  /** A backward clock jump up to this is absorbed silently; a larger one follows `policy`. Default 5 s. */
  maxBackwardMs?: number;
  /** 'logical' (default): keep issuing on the last timestamp; 'refuse': throw MidClockBackError until the clock catches up. */
  policy?: 'logical' | 'refuse';
  /** How far ahead of real time sequence overflow may borrow milliseconds. Default 100 ms. */
  maxLeadMs?: number;
  /** The high-water mark is persisted this far ahead of the ids issued. Default 10 s. */
  hwmWindowMs?: number;
  /** Lease holder name; default host:pid:random (unique per generator, so two in one process get two workers). */
  holder?: string;
  /** Reports a backward jump larger than maxBackwardMs (ms). */
  onClockBack?: (backwardMs: number) => void;
}

function positiveInt(what: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`${what} must be an integer >= ${min}, got ${value}`);
  return value;
}

/**
 * Issues mids for one leased worker id. next() is synchronous and strictly
 * increasing for the life of the generator. Times below are ms since epochMs.
 */
export class MidGenerator {
  readonly workerId: number;
  readonly epochMs: number;
  /** How many backward clock jumps beyond maxBackwardMs were seen. */
  clockBackEvents = 0;

  // Current id, kept as decimal parts so next() needs no BigInt and no division.
  private time: number;
  private seq = MID_MAX_SEQUENCE;
  private prefix = 0;
  private prefixText = '';
  private low = 0;
  /** Latest wall reading adopted as a timestamp, and the monotonic time when it was. */
  private maxWall: number;
  private anchorMono: number;
  /** A wall reading at or above this is not a large backward jump (fast path). */
  private absorbFloor: number;
  /** Persisted high-water mark: every id has time < limit; raised ahead at refreshAt. */
  private limit: number;
  private refreshAt: number;
  private halted: SeqError | undefined;
  private inFlight: Promise<void> | undefined;
  private wanted = 0;
  private leaseEndMono: number;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly backend: SeqBackend,
    private readonly lease: Lease,
    workerId: number,
    start: number,
    limit: number,
    leaseRenewedAt: number,
    private readonly clock: () => number,
    private readonly monotonic: () => number,
    private readonly o: Required<Omit<MidGeneratorOptions, 'onClockBack' | 'clock' | 'monotonic' | 'holder'>> & Pick<MidGeneratorOptions, 'onClockBack'>,
  ) {
    this.workerId = workerId;
    this.epochMs = o.epochMs;
    this.limit = limit;
    this.refreshAt = limit - Math.floor(o.hwmWindowMs / 2);
    this.time = start - 1; // nothing issued yet; the first id is at `start` (or later)
    this.maxWall = start - 1;
    this.absorbFloor = start - 1 - o.maxBackwardMs;
    this.anchorMono = monotonic();
    this.leaseEndMono = leaseRenewedAt + o.leaseMs;
    this.timer = setInterval(() => this.tick(), Math.max(1, Math.floor(o.leaseMs / 3)));
    this.timer.unref();
  }

  /**
   * Leases the lowest free worker id (sections mid:worker:0..127), then persists a
   * high-water mark above every timestamp any earlier holder of any worker id
   * recorded, and starts there even if the wall clock is behind it.
   */
  static async open(backend: SeqBackend, options: MidGeneratorOptions = {}): Promise<MidGenerator> {
    const o = {
      epochMs: options.epochMs ?? DEFAULT_MID_EPOCH_MS,
      leaseMs: positiveInt('leaseMs', options.leaseMs ?? DEFAULT_MID_LEASE_MS, 3),
      maxBackwardMs: positiveInt('maxBackwardMs', options.maxBackwardMs ?? DEFAULT_MAX_BACKWARD_MS, 0),
      policy: options.policy ?? 'logical',
      maxLeadMs: positiveInt('maxLeadMs', options.maxLeadMs ?? DEFAULT_MAX_LEAD_MS, 0),
      hwmWindowMs: positiveInt('hwmWindowMs', options.hwmWindowMs ?? DEFAULT_HWM_WINDOW_MS, 2),
      onClockBack: options.onClockBack,
    };
    positiveInt('epochMs', o.epochMs, 0);
    if (o.policy !== 'logical' && o.policy !== 'refuse') throw new RangeError(`policy must be 'logical' or 'refuse', got ${String(o.policy)}`);
    const clock = options.clock ?? Date.now;
    const monotonic = options.monotonic ?? (() => performance.now());
    const holder = options.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

    let lease: Lease | undefined;
    let floor = 0; // highest persisted mark seen, ms since the Unix epoch
    let workerId = -1;
    let n = 0;
    for (; n <= MID_MAX_WORKER && !lease; n++) {
      try {
        lease = await backend.acquire(midWorkerSection(n), holder, o.leaseMs);
        workerId = n;
        floor = Math.max(floor, lease.max);
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'lease_held') throw error;
        floor = Math.max(floor, (await backend.read(midWorkerSection(n)))?.max ?? 0);
      }
    }
    if (!lease) throw new NoWorkerIdError();

    try {
      // Worker ids are taken lowest first, so the sections in use form a prefix; their
      // marks let a restart on another worker id still start above its predecessor.
      for (; n <= MID_MAX_WORKER; n++) {
        const other = await backend.read(midWorkerSection(n));
        if (!other) break;
        floor = Math.max(floor, other.max);
      }
      const wall = Math.floor(clock()) - o.epochMs;
      const start = Math.max(wall, floor - o.epochMs);
      if (!(start >= 1)) throw new RangeError(`the clock reads ${new Date(clock()).toISOString()}, not after the ids' epoch ${new Date(o.epochMs).toISOString()}`);
      if (start > MID_MAX_TIME) throw new MidTimeExhaustedError(o.epochMs);
      const limit = Math.min(start + o.hwmWindowMs, MID_MAX_TIME + 1);
      const raisedAt = monotonic();
      await backend.raise(lease.section, lease.epoch, o.epochMs + limit, o.leaseMs);
      return new MidGenerator(backend, lease, workerId, start, limit, raisedAt, clock, monotonic, o);
    } catch (error) {
      await backend.release(lease.section, lease.epoch).catch(() => {});
      throw error;
    }
  }

  /** The next id: a decimal string, strictly greater than every id this generator returned before. */
  next(): string {
    const wall = this.clock() - this.epochMs;
    if (wall <= this.time && wall >= this.absorbFloor && this.seq < MID_MAX_SEQUENCE && this.halted === undefined) {
      this.seq++;
      if (++this.low === 10_000) this.carry();
      return this.prefixText + DIGITS4[this.low];
    }
    return this.nextSlow(wall);
  }

  nextBigInt(): bigint {
    return BigInt(this.next());
  }

  /** Resolves once the pending high-water mark write (if any) is durable; rejects if the generator stopped. */
  async ready(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.halted) throw this.halted;
  }

  /** Stops issuing and frees the worker id. */
  async close(): Promise<void> {
    if (this.halted?.code === 'closed') return;
    this.halted = new SeqClosedError('MidGenerator');
    clearInterval(this.timer);
    while (this.inFlight) await this.inFlight;
    // A stale epoch's release is a no-op in every backend, so a fenced generator may call it too.
    await this.backend.release(this.lease.section, this.lease.epoch).catch(() => {});
  }

  private nextSlow(rawWall: number): string {
    if (this.halted) throw this.halted;
    if (!Number.isFinite(rawWall)) throw new RangeError(`the clock returned ${rawWall + this.epochMs}`);
    const wall = Math.floor(rawWall);
    if (wall > this.time) {
      this.maxWall = wall;
      this.absorbFloor = wall - this.o.maxBackwardMs;
      this.anchorMono = this.monotonic();
      if (wall < this.limit) return this.startMs(wall);
      // The wall clock passed the persisted mark: stay below it until the raise lands.
      this.persist(wall);
      if (this.limit - 1 > this.time) return this.startMs(this.limit - 1);
    } else if (wall < this.absorbFloor) {
      const backwardMs = this.maxWall - wall;
      if (this.o.policy === 'refuse') throw new MidClockBackError(backwardMs, this.o.maxBackwardMs);
      this.clockBackEvents++;
      this.o.onClockBack?.(backwardMs);
      this.absorbFloor = wall - this.o.maxBackwardMs; // report each further jump once, not every call
    }
    if (this.seq < MID_MAX_SEQUENCE) {
      this.seq++;
      if (++this.low === 10_000) this.carry();
      return this.prefixText + DIGITS4[this.low];
    }
    return this.borrow();
  }

  /** Sequence overflow: take the next ms logically, at most maxLeadMs ahead of real time. */
  private borrow(): string {
    const time = this.time + 1;
    if (time > MID_MAX_TIME) throw new MidTimeExhaustedError(this.epochMs);
    if (time >= this.limit) {
      this.persist(time);
      throw new MidNotReadyError(this.epochMs + time);
    }
    // Real time now is about maxWall + elapsed since it was read (the wall clock itself may be behind after a jump back).
    while (time > this.maxWall + (this.monotonic() - this.anchorMono) + this.o.maxLeadMs) {
      // Spin: the wait is at most about a millisecond, as the lead only grew by one.
    }
    return this.startMs(time);
  }

  private startMs(time: number): string {
    if (time > MID_MAX_TIME) throw new MidTimeExhaustedError(this.epochMs);
    if (time >= this.refreshAt) this.persist(time);
    this.time = time;
    this.seq = 0;
    [this.prefix, this.low] = splitDecimal(time, this.workerId, 0);
    this.prefixText = String(this.prefix);
    return this.prefixText + DIGITS4[this.low];
  }

  private carry(): void {
    this.low = 0;
    this.prefixText = String(++this.prefix);
  }

  /** Raises the persisted mark to time + window (one write in flight at a time; the latest wish wins). */
  private persist(time: number): void {
    this.wanted = Math.max(this.wanted, time);
    if (this.inFlight || this.halted) return;
    const target = Math.min(this.wanted + this.o.hwmWindowMs, MID_MAX_TIME + 1);
    if (target <= this.limit) return;
    const sentAt = this.monotonic();
    this.inFlight = this.backend.raise(this.lease.section, this.lease.epoch, this.epochMs + target, this.o.leaseMs).then(
      () => {
        this.inFlight = undefined;
        this.leaseRenewed(sentAt);
        this.limit = Math.max(this.limit, target);
        this.refreshAt = this.limit - Math.floor(this.o.hwmWindowMs / 2);
        if (this.wanted >= this.refreshAt) this.persist(this.wanted);
      },
      (error: unknown) => {
        this.inFlight = undefined;
        this.onBackendError(error);
      },
    );
  }

  /** Timer: keep the lease and keep the mark ahead of the wall clock, so idle periods need no raise on the hot path. */
  private tick(): void {
    if (this.halted && !this.lapsed()) return;
    if (!this.halted && this.monotonic() > this.leaseEndMono) this.halt(new LeaseExpiredError(this.lease.section));
    if (this.inFlight) return;
    if (this.lapsed()) {
      this.renew();
      return;
    }
    const wall = Math.floor(this.clock()) - this.epochMs;
    const now = Number.isFinite(wall) ? Math.max(this.time, Math.min(wall, MID_MAX_TIME)) : this.time;
    if (now + this.o.hwmWindowMs > this.limit && this.limit <= MID_MAX_TIME) {
      this.persist(now);
      return;
    }
    this.renew();
  }

  private renew(): void {
    const sentAt = this.monotonic();
    this.inFlight = this.backend.renew(this.lease.section, this.lease.epoch, this.o.leaseMs).then(
      () => {
        this.inFlight = undefined;
        this.leaseRenewed(sentAt);
      },
      (error: unknown) => {
        this.inFlight = undefined;
        this.onBackendError(error);
      },
    );
  }

  /**
   * A renewal or raise sent at `sentAt` landed: the lease is ours until sentAt + leaseMs. A lease
   * that ran out only here (this process was too busy or starved to renew in time) comes back:
   * the write was fenced by the epoch, so it landed only if nobody took the worker id over, and
   * every id issued before stays below the durable mark a successor would have started above.
   */
  private leaseRenewed(sentAt: number): void {
    this.leaseEndMono = sentAt + this.o.leaseMs;
    if (this.lapsed() && this.monotonic() < this.leaseEndMono) this.halted = undefined;
  }

  /** Stopped only because the lease ran out locally: the timer keeps trying to renew it. */
  private lapsed(): boolean {
    return this.halted instanceof LeaseExpiredError;
  }

  private onBackendError(error: unknown): void {
    // Fenced: another process owns this worker id now. Anything else is retried by the
    // timer (also after the lease ran out); the ids stay below the last durable mark meanwhile.
    if ((error as { code?: unknown }).code === 'fenced') this.halt(error as SeqError);
  }

  /** Stops issuing: for good, unless only the lease ran out (see leaseRenewed). */
  private halt(error: SeqError): void {
    if (this.halted && !this.lapsed()) return;
    this.halted = error;
    if (!this.lapsed()) clearInterval(this.timer);
  }
}
