/**
 * Step-persisted counters in the manner of WeChat's seqsvr and Meituan Leaf's
 * segment mode: per-key numbers that only grow, also across kill -9, while the
 * disk is touched once per `step` numbers rather than once per number.
 *
 * Keys hash into a fixed number of sections. A section shares one persisted
 * `max` among all its keys and is held under a lease with a fencing epoch. The
 * invariant everything rests on: a number is handed out only if it is <= a max
 * that the backend has durably stored under our epoch. A restart therefore
 * starts every key of a section at the section's persisted max (skipping ahead),
 * and a process whose epoch was taken over cannot persist anything more.
 *
 * next() is synchronous and allocation-free on its common path: one Map lookup,
 * one add, one compare against the section's `soft` limit. `soft` folds three
 * checks into that compare: below it no raise is due; it equals `max` while a
 * raise is in flight; it is -1 once the lease is lost or the counters closed, so
 * every call drops to the slow path, which explains itself by throwing.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { SeqBackend } from './backends/types.js';
import { MAX_COUNTER } from './backends/types.js';
import { SeqClosedError, SeqError, SeqExhaustedError, SeqOverflowError } from './errors.js';
import { type HeldLease, LeaseSet } from './lease.js';

export interface SequenceCountersOptions {
  /** Numbers persisted per raise, and the least the adaptive step shrinks to (default 10,000). */
  step?: number;
  /** The most the adaptive step grows to (default 100 × step); equal to `step` turns growth off. */
  maxStep?: number;
  /** Sections the keys are spread over; fixed for the life of the data (default 64). */
  sections?: number;
  /** Lease length in ms; renewed every leaseMs / 4 (default 10,000). */
  leaseMs?: number;
  /** Who holds the leases; unique per live process (default host:pid:random). A restarted process may reuse its name. */
  holder?: string;
  /** Names this set of counters in the backend: sections are `<name>:<i>` (default "counters"). */
  name?: string;
  /** Raise ahead once fewer than raiseAhead × step numbers remain below max (0..1, default 0.5). */
  raiseAhead?: number;
  /** Double the step when a segment was used up in less than this (default 10,000 ms). */
  growBelowMs?: number;
  /** Halve the step (not below `step`) when a segment lasted longer than this (default 60,000 ms). */
  shrinkAboveMs?: number;
  /** Monotonic milliseconds for step timing and the local lease deadline (default performance.now). */
  now?: () => number;
}

export const DEFAULT_COUNTER_OPTIONS = Object.freeze({
  step: 10_000,
  stepGrowthLimit: 100,
  sections: 64,
  leaseMs: 10_000,
  name: 'counters',
  raiseAhead: 0.5,
  growBelowMs: 10_000,
  shrinkAboveMs: 60_000,
});

type ResolvedOptions = Readonly<Required<SequenceCountersOptions>>;

function positiveInteger(name: string, value: number, max = MAX_COUNTER): number {
  if (!Number.isSafeInteger(value) || value <= 0 || value > max) throw new RangeError(`${name} must be an integer in 1..${max}, got ${value}`);
  return value;
}

function resolveOptions(options: SequenceCountersOptions): ResolvedOptions {
  const d = DEFAULT_COUNTER_OPTIONS;
  const step = positiveInteger('step', options.step ?? d.step, 2 ** 40);
  const maxStep = positiveInteger('maxStep', options.maxStep ?? step * d.stepGrowthLimit, 2 ** 40);
  if (maxStep < step) throw new RangeError(`maxStep (${maxStep}) must be at least step (${step})`);
  const raiseAhead = options.raiseAhead ?? d.raiseAhead;
  if (!(raiseAhead >= 0 && raiseAhead <= 1)) throw new RangeError(`raiseAhead must be within 0..1, got ${raiseAhead}`);
  const name = options.name ?? d.name;
  if (name.length === 0 || name.length > 100) throw new RangeError('name must be 1..100 characters');
  const holder = options.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  if (holder.length === 0 || holder.length > 200) throw new RangeError('holder must be 1..200 characters');
  return Object.freeze({
    step,
    maxStep,
    sections: positiveInteger('sections', options.sections ?? d.sections, 65_536),
    leaseMs: positiveInteger('leaseMs', options.leaseMs ?? d.leaseMs, 2 ** 31 - 1),
    holder,
    name,
    raiseAhead,
    growBelowMs: options.growBelowMs ?? d.growBelowMs,
    shrinkAboveMs: options.shrinkAboveMs ?? d.shrinkAboveMs,
    now: options.now ?? (() => performance.now()),
  });
}

/** FNV-1a over UTF-16 code units: stable across processes and versions, which the key → section map must be. */
export function sectionIndex(key: string, sections: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % sections;
}

class SectionState {
  /** Fast-path limit; see the module comment. */
  soft = -1;
  max: number;
  step: number;
  raising: Promise<void> | undefined;
  /** When the previous raise started (for the adaptive step); -Infinity before the first. */
  lastRaiseAt = Number.NEGATIVE_INFINITY;
  /** The last transient raise failure, and when to try again. */
  raiseError: unknown;
  retryAt = 0;
  /** The persisted max when this tenure began: every key not yet seen starts here. */
  readonly base: number;

  constructor(
    readonly lease: HeldLease,
    step: number,
  ) {
    this.base = lease.max;
    this.max = lease.max;
    this.step = step;
  }
}

class KeyState {
  constructor(
    public value: number,
    readonly section: SectionState,
  ) {}
}

export class SequenceCounters {
  private readonly keys = new Map<string, KeyState>();
  private readonly sections: SectionState[];
  private readonly bySection = new Map<string, SectionState>();
  private readonly leases: LeaseSet;
  private closed = false;

  private constructor(
    private readonly backend: SeqBackend,
    private readonly options: ResolvedOptions,
    leases: (onChange: (lease: HeldLease) => void) => LeaseSet,
  ) {
    this.leases = leases((lease) => {
      const s = this.bySection.get(lease.section);
      if (s !== undefined) this.updateSoft(s);
    });
    this.sections = this.leases.leases.map((l) => new SectionState(l, options.step));
    for (const s of this.sections) this.bySection.set(s.lease.section, s);
  }

  /**
   * Takes the lease of every section (all or none: LeaseHeldError if another live
   * holder has one) and raises each once, so next() answers as soon as this resolves.
   */
  static async open(backend: SeqBackend, options: SequenceCountersOptions = {}): Promise<SequenceCounters> {
    const o = resolveOptions(options);
    const names = Array.from({ length: o.sections }, (_, i) => `${o.name}:${i}`);
    let onChange: (lease: HeldLease) => void = () => {};
    const leases = await LeaseSet.acquire(backend, names, { holder: o.holder, leaseMs: o.leaseMs, now: o.now, onChange: (l) => onChange(l) });
    try {
      await checkLayout(backend, o, leases.leases[0] as HeldLease);
    } catch (err) {
      await leases.close();
      throw err;
    }
    const counters = new SequenceCounters(backend, o, (change) => {
      onChange = change;
      return leases;
    });
    try {
      await counters.ready();
    } catch (err) {
      await counters.close();
      throw err;
    }
    return counters;
  }

  get holder(): string {
    return this.options.holder;
  }

  /** The backend section a key belongs to. */
  sectionOf(key: string): string {
    return `${this.options.name}:${sectionIndex(key, this.options.sections)}`;
  }

  /**
   * A number greater than every number ever returned for `key`. Synchronous.
   * Throws SeqExhaustedError when the persisted max is used up and the raise
   * ahead has not landed yet (await ready(key) or use nextAsync); FencedError or
   * LeaseExpiredError once the lease is lost; SeqOverflowError past 2^53 - 1.
   */
  next(key: string): number {
    const k = this.keys.get(key);
    if (k !== undefined) {
      const v = k.value + 1;
      if (v <= k.section.soft) {
        k.value = v;
        return v;
      }
    }
    return this.nextSlow(key, k);
  }

  /** Like next(), but waits for the raise instead of throwing SeqExhaustedError. */
  async nextAsync(key: string): Promise<number> {
    for (;;) {
      try {
        return this.next(key);
      } catch (err) {
        if (!(err instanceof SeqExhaustedError)) throw err;
      }
      await this.ready(key);
    }
  }

  /**
   * With a key: resolves when next(key) can answer at once (raising if needed).
   * Without: when every section has numbers persisted for keys not seen yet and
   * no raise is in flight. Rejects with the reason if a raise fails or the
   * lease is lost.
   */
  async ready(key?: string): Promise<void> {
    if (key !== undefined) {
      const k = this.keyState(key);
      await this.untilAbove(k.section, k.value);
      return;
    }
    await Promise.all(this.sections.map((s) => this.untilAbove(s, s.base)));
  }

  /** Stops handing out numbers, waits for raises in flight and releases every lease. Does not close the backend. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.leases.close(() => Promise.all(this.sections.map((s) => s.raising)));
  }

  // ---- the slow path --------------------------------------------------------

  private keyState(key: string): KeyState {
    let k = this.keys.get(key);
    if (k === undefined) {
      if (this.closed) throw new SeqClosedError('these sequence counters');
      if (typeof key !== 'string') throw new TypeError('a counter key must be a string');
      const s = this.sections[sectionIndex(key, this.options.sections)] as SectionState;
      k = new KeyState(s.base, s);
      this.keys.set(key, k);
    }
    return k;
  }

  private nextSlow(key: string, known: KeyState | undefined): number {
    const k = known ?? this.keyState(key);
    const s = k.section;
    this.leases.check(s.lease);
    const v = k.value + 1;
    if (v > s.max) {
      if (s.max >= MAX_COUNTER) throw new SeqOverflowError(s.lease.section);
      this.startRaise(s, false);
      throw new SeqExhaustedError(key, s.max);
    }
    k.value = v;
    // Also reached by a key's first call, which may be far below the raise-ahead mark.
    if (v > s.soft) this.startRaise(s, false);
    return v;
  }

  private async untilAbove(s: SectionState, value: number): Promise<void> {
    while (value >= s.max) {
      this.leases.check(s.lease);
      if (s.max >= MAX_COUNTER) throw new SeqOverflowError(s.lease.section);
      const errorBefore = s.raiseError;
      await this.startRaise(s, true);
      if (value >= s.max && s.raiseError !== undefined && s.raiseError !== errorBefore) throw s.raiseError;
    }
    this.leases.check(s.lease);
    await s.raising;
  }

  /** Starts raising the section's max by its step, unless one is in flight; returns the raise (it never rejects). */
  private startRaise(s: SectionState, force: boolean): Promise<void> | undefined {
    if (s.raising !== undefined || s.lease.failure !== undefined || s.max >= MAX_COUNTER) return s.raising;
    const sentAt = this.options.now();
    if (!force && sentAt < s.retryAt) return undefined;
    this.adaptStep(s, sentAt);
    const target = Math.min(s.max + s.step, MAX_COUNTER);
    const { section, epoch } = s.lease;
    s.soft = s.max;
    s.raising = this.backend.raise(section, epoch, target, this.options.leaseMs).then(
      () => {
        s.max = target;
        s.raiseError = undefined;
        s.raising = undefined;
        this.leases.extended(s.lease, sentAt);
        this.updateSoft(s);
      },
      (err: unknown) => {
        s.raising = undefined;
        if (err instanceof SeqError) {
          this.leases.fail(s.lease, err);
        } else if (err instanceof RangeError) {
          // The persisted max moved without our epoch changing: never serve from this section again.
          this.leases.fail(s.lease, new SeqError('fenced', `section ${JSON.stringify(section)}: ${err.message}`, { cause: err }));
        } else {
          // A transient failure (I/O, connection): keep serving below max and retry shortly.
          s.raiseError = err;
          s.retryAt = this.options.now() + Math.min(1000, this.leases.tickMs);
        }
        this.updateSoft(s);
      },
    );
    return s.raising;
  }

  /**
   * Leaf's dynamic step: a segment used up quickly doubles the next step (up to
   * maxStep), one that lasted long halves it (down to step). A bigger step means
   * fewer disk writes for hot sections and a bigger skip on restart.
   */
  private adaptStep(s: SectionState, at: number): void {
    const lasted = at - s.lastRaiseAt;
    s.lastRaiseAt = at;
    const o = this.options;
    if (lasted < o.growBelowMs) s.step = Math.min(s.step * 2, o.maxStep);
    else if (lasted > o.shrinkAboveMs && Number.isFinite(lasted)) s.step = Math.max(Math.floor(s.step / 2), o.step);
  }

  private updateSoft(s: SectionState): void {
    if (s.lease.failure !== undefined) s.soft = -1;
    else if (s.raising !== undefined) s.soft = s.max;
    else s.soft = s.max - Math.ceil(s.step * this.options.raiseAhead);
  }
}

/** Keys map to sections by `hash % sections`, so the count must never change under existing data. */
async function checkLayout(backend: SeqBackend, o: ResolvedOptions, first: HeldLease): Promise<void> {
  const key = `${o.name}:sections`;
  const stored = await backend.getMeta(key);
  if (stored === undefined) {
    await backend.setMeta(key, String(o.sections), { section: first.section, epoch: first.epoch });
  } else if (stored !== String(o.sections)) {
    throw new SeqError('config_mismatch', `counters ${JSON.stringify(o.name)} were created with ${stored} sections; opening them with ${o.sections} would let keys move to sections with a lower max and repeat numbers`);
  }
}
