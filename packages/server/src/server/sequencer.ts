/**
 * The single point of order of the conversations this node owns. `append` has
 * the owner's state hand out the next seq and ts and adds a mid, synchronously
 * (so assignment order is call order), then group
 * commit makes many entries durable in one store transaction. Only after the
 * commit are the callers answered and the entries pushed, in seq order.
 */
import type { Logger } from 'pino';
import type { Entry } from 'sequent-client/protocol';
import { SlotFencedError, type CommitBatch, type CommitFence, type ConvKind, type MembershipChange, type Store } from '../store/index.js';
import type { ConversationOwner, ConvState, EntryDraft } from './owner.js';
import type { ServerMetrics } from './metrics.js';

export interface Clock {
  now(): number;
  observe(ts: number): void;
}

export interface MidSource {
  next(): string;
}

export type { EntryDraft } from './owner.js';

export interface Committed {
  entry: Entry;
  /** JSON.stringify(entry.body), if the draft brought it. */
  bodyJson: string | undefined;
  /** Users to push the entry to: members at its seq, and those it removes. */
  audience: readonly string[];
  /** The connection that sent it, which gets the reply instead of a push. */
  originId: number | undefined;
}

/** Called once per append: with the entry once it is durable, or with why it never will be. */
export type Settle = (outcome: Entry | CommitFailed) => void;

interface Pending extends Committed {
  state: ConvState;
  newConv: ConvKind | undefined;
  memberships: MembershipChange[];
  settle: Settle;
}

/** Batches in flight to a store that pipelines commits: enough that the store never waits for this thread. */
const PIPELINE_DEPTH = 64;
/**
 * While a batch is with the store, a turn's entries go after it only once this
 * many are queued; fewer wait for the store's answer and go then, together. Under
 * load the store thus always has the next batch; under light load commits stay
 * few and large instead of one small one per turn (each with its fsync, its
 * answer and its socket writes), which raised the p99 at half of peak.
 */
const PIPELINE_MIN_BATCH = 32;

export class CommitFailed extends Error {
  override name = 'CommitFailed';
}

export class Sequencer {
  private queue: Pending[] = [];
  /** Batches with the store and not yet answered. */
  private inFlight = 0;
  /**
   * How many may be. A store that applies commits in call order gets each turn's
   * entries at once (and groups them itself); otherwise one batch at a time, the
   * next growing while it waits (group commit here).
   */
  private readonly maxInFlight: number;
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly conversations: ConversationOwner,
    private readonly clock: Clock,
    private readonly mids: MidSource,
    private readonly maxBatch: number,
    private readonly metrics: ServerMetrics,
    private readonly logger: Logger,
    private readonly onCommitted: (committed: readonly Committed[]) => void,
  ) {
    this.maxInFlight = store.pipelinesCommits ? PIPELINE_DEPTH : 1;
  }

  /**
   * Assigns the next seq of `state` to the draft now, and resolves once the entry
   * is durable. The caller has checked that the author may write at this seq.
   * Rejects with CommitFailed, having changed nothing, when no mid can be had.
   */
  append(state: ConvState, draft: EntryDraft, originId: number | undefined): Promise<Entry> {
    return new Promise<Entry>((resolve, reject) => {
      this.appendThen(state, draft, originId, (outcome) => (outcome instanceof CommitFailed ? reject(outcome) : resolve(outcome)));
    });
  }

  /**
   * append() for the hot path: `settle` is called synchronously when the batch's
   * commit returns, so an ack needs no promise. Throws CommitFailed, changing
   * nothing, when no mid can be had.
   */
  appendThen(state: ConvState, draft: EntryDraft, originId: number | undefined, settle: Settle): void {
    const now = this.clock.now();
    const { entry, newConv, memberships, audience } = state.assign(draft, this.nextMid(), now);
    this.queue.push({ state, entry, bodyJson: draft.bodyJson, audience, originId, newConv, memberships, settle });
    this.schedule();
  }

  /**
   * Taken before any state changes, so an append that cannot get a mid (the
   * generator lost its worker lease, or refuses a clock far in the past) leaves
   * the conversation untouched and its sender gets `unavailable`.
   */
  private nextMid(): string {
    try {
      return this.mids.next();
    } catch (error) {
      this.logger.error({ err: error }, 'no message id available');
      throw new CommitFailed(`no message id available: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Resolves when nothing is queued or being committed. */
  idle(): Promise<void> {
    if (this.inFlight === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    // setImmediate runs after the poll phase, so every frame read in this turn joins one commit.
    setImmediate(() => {
      this.scheduled = false;
      this.writeNext(false);
    });
  }

  /**
   * Hands what is queued to the store, in batches of up to maxBatch, while the
   * store may take another: always when it has none, otherwise only when called
   * on an answer (`answered`) or once PIPELINE_MIN_BATCH are waiting.
   */
  private writeNext(answered = true): void {
    for (;;) {
      if (this.inFlight >= this.maxInFlight) return;
      if (this.queue.length === 0) {
        if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
        return;
      }
      if (this.inFlight > 0 && !answered && this.queue.length < PIPELINE_MIN_BATCH) return;
      this.handOver(this.queue.splice(0, this.maxBatch));
    }
  }

  private handOver(batch: Pending[]): void {
    this.inFlight++;
    const started = performance.now();
    let durable: Promise<void>;
    try {
      durable = this.store.commit(commitBatchOf(batch));
    } catch (error) {
      durable = Promise.reject(error);
    }
    durable.then(
      () => this.written(batch, started),
      (error: unknown) => {
        this.inFlight--;
        this.fail(batch, error);
        this.writeNext();
      },
    );
  }

  private written(batch: Pending[], started: number): void {
    this.inFlight--;
    this.metrics.commitSeconds.observe((performance.now() - started) / 1000);
    this.metrics.commitBatch.observe(batch.length);
    this.metrics.entriesCommitted.inc(batch.length);
    for (const item of batch) item.state.durable(item.entry.seq, item.entry.from);
    // The store gets the next batch before this one is answered: its inserts and
    // fsync then overlap with the acks and pushes below instead of waiting for them.
    this.writeNext();
    for (const item of batch) this.settle(item, item.entry);
    this.onCommitted(batch);
  }

  /** One caller's answer must not keep the others of the batch from theirs. */
  private settle(item: Pending, outcome: Entry | CommitFailed): void {
    try {
      item.settle(outcome);
    } catch (error) {
      this.logger.error({ err: error, conv: item.entry.conv, seq: item.entry.seq }, 'answering a commit failed');
    }
  }

  /**
   * A failed commit wrote nothing. Its conversations' seqs were handed out in
   * memory, so their state is dropped (to be reloaded from the store) and every
   * queued entry of them is refused too: committing them would leave a gap.
   * Entries of them already in a later batch with the store fail there, by the
   * store's own order check, and that batch's other conversations are reloaded
   * in turn.
   */
  private fail(batch: Pending[], error: unknown): void {
    if (error instanceof SlotFencedError) {
      // Expected after a takeover: the conversations are another node's now, and their senders resend there.
      this.metrics.fencedCommits.inc();
      this.logger.warn({ slot: error.slot, epoch: error.epoch, entries: batch.length }, 'commit refused: the slot moved to another node');
    } else {
      this.logger.error({ err: error, entries: batch.length }, 'group commit failed');
    }
    const broken = new Set(batch.map((item) => item.state));
    for (const state of broken) this.conversations.invalidate(state);
    const refused = [...batch, ...this.queue.filter((item) => broken.has(item.state))];
    this.queue = this.queue.filter((item) => !broken.has(item.state));
    for (const item of refused) {
      item.state.dropped();
      this.settle(item, new CommitFailed('the entry could not be stored; resend it'));
    }
  }
}

function commitBatchOf(batch: readonly Pending[]): CommitBatch {
  const bodyJson: (string | undefined)[] = [];
  const commit: CommitBatch = { newConvs: [], entries: [], memberships: [], bodyJson };
  let fences: Map<string, CommitFence> | undefined;
  for (const item of batch) {
    if (item.state.fence) (fences ??= new Map()).set(item.entry.conv, item.state.fence);
    if (item.newConv) commit.newConvs.push({ conv: item.entry.conv, kind: item.newConv });
    commit.entries.push(item.entry);
    bodyJson.push(item.bodyJson);
    for (const change of item.memberships) commit.memberships.push(change);
  }
  if (fences) commit.fences = fences;
  return commit;
}
