/**
 * The send path: dedup by (device, conv, cmid) before any seq is given, then the
 * device's own order by dseq (holding a gap back for holdMs), then membership at
 * the current seq, then the sequencer. The ack goes out only once the entry is
 * durable; a resend of any state of the same cmid gets the same ack. Requests
 * come from an `Origin` and are answered through it: ingest never sees a socket.
 */
import type { AckFrame, Entry, SendFrame } from 'sequent-client/protocol';
import type { Store } from '../store/index.js';
import type { ConvState, ConversationOwner } from './owner.js';
import type { DeviceLane, HeldSend, Sent, Waiter } from './lanes.js';
import { HoldBudget, type HoldLimits } from './hold-budget.js';
import type { ServerMetrics } from './metrics.js';
import type { Origin } from './origin.js';
import { CommitFailed, type EntryDraft, type Sequencer } from './sequencer.js';
import { actsOnEntry, targetRefusal, type Target } from './targets.js';

export interface IngestLimits extends HoldLimits {
  holdMs: number;
}

function ackFor(entry: Entry, requestId: number): AckFrame {
  return {
    t: 'ack',
    id: requestId,
    conv: entry.conv,
    cmid: entry.cmid ?? '',
    dseq: entry.dseq ?? 0,
    seq: entry.seq,
    mid: entry.mid,
    ts: entry.ts,
  };
}

export class Ingest {
  draining = false;
  /** Held sends' count and bytes per device and per user, over all conversations. */
  private readonly holds: HoldBudget;

  constructor(
    private readonly store: Store,
    private readonly conversations: ConversationOwner,
    private readonly sequencer: Sequencer,
    private readonly metrics: ServerMetrics,
    private readonly limits: IngestLimits,
  ) {
    this.holds = new HoldBudget(limits);
  }

  /**
   * `bodyJson` is JSON.stringify(frame.body), which the gateway has from measuring
   * the body. The common send — its conversation loaded, its lane idle, its dseq
   * the next one — runs to its place in the sequencer synchronously; anything that
   * must ask the store returns a promise.
   */
  send(origin: Origin, frame: SendFrame, receivedAt: number, bodyJson: string): void | Promise<void> {
    const state = this.conversations.cachedState(frame.conv);
    if (state) return this.sendTo(state, origin, frame, receivedAt, bodyJson);
    return this.conversations.get(frame.conv).then((loaded) => {
      if (!loaded) return origin.error(frame.id, 'bad_request', `malformed conversation id ${frame.conv}`);
      return this.sendTo(loaded, origin, frame, receivedAt, bodyJson);
    });
  }

  private sendTo(state: ConvState, origin: Origin, frame: SendFrame, receivedAt: number, bodyJson: string): void | Promise<void> {
    if (!state.exists) return origin.error(frame.id, 'not_found', `no conversation ${frame.conv}`);
    if (state.ref.kind === 'dm' && !state.ref.users.includes(origin.user)) {
      return origin.error(frame.id, 'forbidden', `${frame.conv} is a conversation of two other users`);
    }
    const lane = state.lane(origin.user, origin.device);
    const waiter: Waiter = { origin, requestId: frame.id, receivedAt };
    return lane.run(() => this.step(state, lane, frame, bodyJson, waiter));
  }

  /** Fails every held send with `unavailable`: the server is going away (or the conversations' slot moved) and will not wait for gaps. */
  releaseAllHeld(states: Iterable<ConvState>, why = 'server is shutting down; resend after reconnecting'): void {
    for (const state of states) {
      for (const lane of state.lanes()) {
        for (const held of [...lane.held.values()]) {
          this.release(lane, held);
          for (const w of held.waiters) w.origin.error(w.requestId, 'unavailable', why);
        }
      }
    }
  }

  private step(state: ConvState, lane: DeviceLane, frame: SendFrame, bodyJson: string, waiter: Waiter, target?: Target): void | Promise<void> {
    if (state.broken) return waiter.origin.error(frame.id, 'unavailable', 'conversation is reloading; resend');
    const sent = lane.lookup(frame.cmid);
    if (sent) return this.resendOf(sent, waiter);
    if (actsOnEntry(frame) && target === undefined) return this.stepWithTarget(state, lane, frame, bodyJson, waiter);
    if (this.mayBeStored(state, lane, frame)) return this.stepAfterStore(state, lane, frame, bodyJson, waiter, target);
    return this.place(state, lane, frame, bodyJson, waiter, target);
  }

  /** An edit, delete or reaction first learns what its target is; whether it may act on it is decided when it takes its seq. */
  private async stepWithTarget(state: ConvState, lane: DeviceLane, frame: SendFrame, bodyJson: string, waiter: Waiter): Promise<void> {
    const ref = frame.ref!;
    const meta = ref <= state.committed ? await this.store.entryMeta(state.conv, ref) : null;
    return this.step(state, lane, frame, bodyJson, waiter, { meta });
  }

  /** The rarer step that must ask the store: whether the cmid is stored, and where the lane's dseqs stand. */
  private async stepAfterStore(state: ConvState, lane: DeviceLane, frame: SendFrame, bodyJson: string, waiter: Waiter, target?: Target): Promise<void> {
    const { origin } = waiter;
    const stored = await this.store.findByCmid(state.conv, origin.user, origin.device, frame.cmid);
    if (stored) {
      this.metrics.dedupHits.inc();
      return this.ack(stored, waiter);
    }
    if (lane.nextDseq === undefined) lane.load(await this.store.lane(state.conv, origin.user, origin.device));
    // A commit may have failed while this step waited on the store.
    if (state.broken) return origin.error(frame.id, 'unavailable', 'conversation is reloading; resend');
    this.place(state, lane, frame, bodyJson, waiter, target);
  }

  /** A resend of a cmid that has its seq: the same ack, now or once it is durable. */
  private resendOf(sent: Sent, waiter: Waiter): void {
    this.metrics.dedupHits.inc();
    if (sent.entry) this.ack(sent.entry, waiter);
    else sent.waiters.push(waiter);
  }

  /** A cmid never given a seq, on a lane whose next dseq is known: wait with its twin, hold it back, refuse it, or sequence it. */
  private place(state: ConvState, lane: DeviceLane, frame: SendFrame, bodyJson: string, waiter: Waiter, target?: Target): void {
    const { origin } = waiter;
    const heldTwin = lane.heldByCmid.get(frame.cmid);
    if (heldTwin && heldTwin.frame.dseq === frame.dseq) {
      this.metrics.dedupHits.inc();
      heldTwin.waiters.push(waiter);
      return;
    }
    if (heldTwin) {
      // The device renumbered this send: a send before it was refused and took no dseq, so the device
      // closed the gap. Its newest numbering counts; the held copy would otherwise sit on a dseq the
      // next renumbered send needs ("already taken"), and wait for a dseq that never comes.
      this.release(lane, heldTwin);
      for (const w of heldTwin.waiters) {
        w.origin.error(w.requestId, 'bad_request', `dseq ${heldTwin.frame.dseq} of ${frame.cmid} was replaced: the device sent it again at dseq ${frame.dseq}`);
      }
    }
    if (this.draining) return origin.error(frame.id, 'unavailable', 'server is shutting down; resend after reconnecting');
    if (!state.isMember(origin.user)) {
      return origin.error(frame.id, 'forbidden', `${origin.user} is not a member of ${frame.conv}`);
    }
    const expected = lane.nextDseq!;
    if (frame.dseq < expected || lane.held.has(frame.dseq)) {
      return origin.error(frame.id, 'bad_request', `dseq ${frame.dseq} is already taken by another cmid; next expected is ${expected}`);
    }
    if (frame.dseq > expected) return this.holdBack(state, lane, frame, bodyJson, waiter, target);

    if (this.accept(state, lane, frame, bodyJson, [waiter], target)) this.drainHeld(state, lane);
  }

  /**
   * Whether a cmid not in the lane's memory could still be in the store. The store
   * lookup is the hottest cost of the send path, so it is skipped only when the
   * cmid cannot be stored: a new dseq, and a cmid outside the range of the lane's
   * stored cmids that memory does not hold (cmids that grow with time, as the SDK's
   * do, are always outside it). A cmid reused with a new dseq is thus found before
   * it gets a seq and answered with the stored ack; it never reaches the store's
   * unique index, where it would fail the whole group commit.
   */
  private mayBeStored(state: ConvState, lane: DeviceLane, frame: SendFrame): boolean {
    return state.strictDedup || lane.nextDseq === undefined || frame.dseq < lane.nextDseq || lane.mayBeStored(frame.cmid);
  }

  /**
   * Gives the send its seq; false (and the reason to its waiters) when it may not
   * have one: an edit, delete or reaction its target refuses (which takes no dseq
   * either), or a sequencer that cannot.
   */
  private accept(state: ConvState, lane: DeviceLane, frame: SendFrame, bodyJson: string, waiters: Waiter[], target?: Target): boolean {
    const { origin } = waiters[0]!;
    const refusal = target ? targetRefusal(state, origin.user, frame, target) : undefined;
    if (refusal) {
      for (const w of waiters) w.origin.error(w.requestId, refusal.code, refusal.message);
      return false;
    }
    const draft: EntryDraft = { kind: frame.kind ?? 'msg', from: origin.user, dev: origin.device, body: frame.body, bodyJson, cmid: frame.cmid, dseq: frame.dseq };
    if (frame.ctx !== undefined) draft.ctx = frame.ctx;
    if (frame.ref !== undefined && draft.kind !== 'msg') draft.ref = frame.ref;
    const sent: Sent = { entry: undefined, waiters };
    try {
      this.sequencer.appendThen(state, draft, origin.connection, (outcome) =>
        this.settle(lane, frame.cmid, sent, outcome),
      );
    } catch (error) {
      if (!(error instanceof CommitFailed)) throw error;
      for (const w of waiters) w.origin.error(w.requestId, 'unavailable', error.message);
      return false;
    }
    lane.remember(frame.cmid, frame.dseq, sent);
    return true;
  }

  /** The commit of a send returned: ack everyone waiting for it, or tell them to resend. */
  private settle(lane: DeviceLane, cmid: string, sent: Sent, outcome: Entry | CommitFailed): void {
    const waiters = sent.waiters;
    sent.waiters = [];
    if (outcome instanceof CommitFailed) {
      lane.forget(cmid, sent);
      for (const w of waiters) w.origin.error(w.requestId, 'unavailable', outcome.message);
      return;
    }
    sent.entry = outcome;
    lane.settled();
    for (const w of waiters) this.ack(outcome, w);
  }

  /** Takes every held send that is now next in line. */
  private drainHeld(state: ConvState, lane: DeviceLane): void {
    for (;;) {
      const next = lane.nextDseq === undefined ? undefined : lane.held.get(lane.nextDseq);
      if (!next) return;
      this.release(lane, next);
      if (!state.isMember(next.waiters[0]!.origin.user)) {
        for (const w of next.waiters) w.origin.error(w.requestId, 'forbidden', `not a member of ${state.conv}`);
        return;
      }
      if (!this.accept(state, lane, next.frame, next.bodyJson, next.waiters, next.target)) return;
    }
  }

  private holdBack(state: ConvState, lane: DeviceLane, frame: SendFrame, bodyJson: string, waiter: Waiter, target?: Target): void {
    const expected = lane.nextDseq!;
    const { user, device } = waiter.origin;
    const bytes = bodyJson.length + (frame.ctx === undefined ? 0 : JSON.stringify(frame.ctx).length);
    if (!this.holds.reserve(user, device, bytes)) {
      return waiter.origin.error(frame.id, 'out_of_order', `dseq ${frame.dseq} is ahead of ${expected} and the device's hold-back buffer is full`, { expected });
    }
    this.metrics.heldBack.inc();
    const held: HeldSend = {
      frame,
      bodyJson,
      bytes,
      waiters: [waiter],
      timer: setTimeout(() => void lane.run(() => this.expire(lane, held)), this.limits.holdMs),
    };
    if (target) held.target = target;
    held.timer.unref();
    lane.hold(held);
  }

  private expire(lane: DeviceLane, held: HeldSend): void {
    if (lane.held.get(held.frame.dseq) !== held) return;
    this.release(lane, held);
    const expected = lane.nextDseq ?? 1;
    for (const w of held.waiters) {
      w.origin.error(w.requestId, 'out_of_order', `dseq ${held.frame.dseq} waited for ${expected}, which did not come`, { expected });
    }
  }

  /** The send is no longer held: its room in the device's and user's budget is free again. */
  private release(lane: DeviceLane, held: HeldSend): void {
    lane.release(held);
    const { user, device } = held.waiters[0]!.origin;
    this.holds.free(user, device, held.bytes);
  }

  private ack(entry: Entry, waiter: Waiter): void {
    waiter.origin.ack(ackFor(entry, waiter.requestId));
    this.metrics.ackSeconds.observe((performance.now() - waiter.receivedAt) / 1000);
  }
}
