/**
 * A device's lane in one conversation: which cmids it has sent (for dedup),
 * which dseq comes next, and the sends held back waiting for a missing dseq —
 * a small reorder buffer. Work on a lane runs one step at a time, so a resend
 * racing its original can never both get a seq.
 */
import type { Entry, SendFrame } from 'sequent-client/protocol';
import { isOrderableCmid } from '../store/cmid-order.js';
import type { LaneRecord } from '../store/index.js';
import type { Origin } from './origin.js';
import type { Target } from './targets.js';

export interface Waiter {
  origin: Origin;
  requestId: number;
  receivedAt: number;
}

/** A send that has its seq: its entry once durable, and who waits for that. */
export interface Sent {
  /** Set once the entry is durable. */
  entry: Entry | undefined;
  /** Answered when it is: the first send, and resends of its cmid that came meanwhile. */
  waiters: Waiter[];
}

export interface HeldSend {
  frame: SendFrame;
  /** The body's JSON text, as the gateway validated it. */
  bodyJson: string;
  /** What it counts for in the device's hold-back budget. */
  bytes: number;
  waiters: Waiter[];
  timer: NodeJS.Timeout;
  /** For an edit, delete or reaction: its target as the store had it when the send arrived. */
  target?: Target;
}

/** How many acked cmids a lane remembers before asking the store. */
const RECENT_CMIDS = 256;

export class DeviceLane {
  private next: number | undefined;
  /**
   * The range spanned by the lane's orderable cmids that may be stored but are
   * not in `known` (stored before the lane was loaded, or trimmed from it since).
   * A cmid outside it and not in `known` was never stored: no lookup needed.
   */
  private outMin: string | null = null;
  private outMax: string | null = null;
  /** Sends with a seq, oldest first; trimmed to RECENT_CMIDS once durable. */
  private readonly known = new Map<string, Sent>();
  private settledCount = 0;
  readonly held = new Map<number, HeldSend>();
  readonly heldByCmid = new Map<string, HeldSend>();
  private tail: Promise<void> = Promise.resolve();
  private running = 0;

  /** The dseq this device must send next; undefined until loaded from the store. */
  get nextDseq(): number | undefined {
    return this.next;
  }

  get idle(): boolean {
    return this.running === 0 && this.held.size === 0;
  }

  /**
   * Runs `step` after every earlier step of this lane has finished: at once when
   * none is pending, and then a step that finishes synchronously needs no promise.
   */
  run(step: () => Promise<void> | void): Promise<void> | void {
    if (this.running === 0) {
      this.running++;
      let result: Promise<void> | void;
      try {
        result = step();
      } catch (error) {
        this.running--;
        throw error;
      }
      if (!(result instanceof Promise)) {
        this.running--;
        return;
      }
      const next = result.finally(() => {
        this.running--;
      });
      this.tail = next.catch(() => {});
      return next;
    }
    this.running++;
    const next = this.tail.then(step).finally(() => {
      this.running--;
    });
    this.tail = next.catch(() => {});
    return next;
  }

  /** Takes what the store knows of the lane, before its first send here is placed. */
  load(stored: LaneRecord): void {
    this.next = stored.lastDseq + 1;
    this.widen(stored.minCmid);
    this.widen(stored.maxCmid);
  }

  lookup(cmid: string): Sent | undefined {
    return this.known.get(cmid);
  }

  /** Whether a cmid missing from `known` could still be in the store, so that only the store can say whether it is a resend. */
  mayBeStored(cmid: string): boolean {
    if (!isOrderableCmid(cmid)) return true;
    return this.outMin !== null && this.outMax !== null && cmid >= this.outMin && cmid <= this.outMax;
  }

  private widen(cmid: string | null): void {
    if (cmid === null || !isOrderableCmid(cmid)) return;
    if (this.outMin === null || cmid < this.outMin) this.outMin = cmid;
    if (this.outMax === null || cmid > this.outMax) this.outMax = cmid;
  }

  /** The send of `dseq` and `cmid` has its seq: the lane moves past it. */
  remember(cmid: string, dseq: number, sent: Sent): void {
    this.next = dseq + 1;
    this.known.set(cmid, sent);
  }

  /** The send's entry is durable: it may now be trimmed, the store answering for it from then on. */
  settled(): void {
    this.trim();
  }

  /** The send's commit failed: its cmid was never stored. */
  forget(cmid: string, sent: Sent): void {
    if (this.known.get(cmid) === sent) this.known.delete(cmid);
  }

  hold(send: HeldSend): void {
    this.held.set(send.frame.dseq, send);
    this.heldByCmid.set(send.frame.cmid, send);
  }

  release(send: HeldSend): void {
    clearTimeout(send.timer);
    this.held.delete(send.frame.dseq);
    this.heldByCmid.delete(send.frame.cmid);
  }

  private trim(): void {
    this.settledCount++;
    if (this.settledCount <= RECENT_CMIDS * 2) return;
    // Drop the oldest durable ones; the store answers for them from now on. Sends
    // still in flight stay: the store cannot see them yet.
    let drop = this.known.size - RECENT_CMIDS;
    for (const [cmid, sent] of this.known) {
      if (drop <= 0) break;
      if (sent.entry === undefined) continue;
      this.known.delete(cmid);
      this.widen(cmid);
      drop--;
    }
    this.settledCount = 0;
  }
}
