/**
 * After this node takes slots, the newest entry of each recently active
 * conversation in them is pushed once more. Its old owner may have died between
 * a commit and its pushes; a device that missed that last push would otherwise
 * see nothing until the conversation's next entry. Receivers that have it drop
 * it (their push filters); one that missed more fills the gap from the store.
 */
import { NotOwnerError, type ConversationOwner } from '../server/owner.js';
import type { Delivery } from '../server/delivery.js';
import type { Store } from '../store/index.js';
import { slotOf } from './slots.js';

export interface TakeoverHeadsOptions {
  store: Store;
  owner: ConversationOwner;
  delivery: Delivery;
  slots: number;
  /** How far back "recently active" reaches, ms of entry ts (a few leases: the window an owner can die in unnoticed). */
  windowMs: number;
  /** Most conversations looked at per run. */
  limit: number;
  /** Slots acquired within this long are handled in one run (one scan of the recent conversations). */
  batchMs: number;
  onError(error: unknown): void;
  now?: () => number;
}

export class TakeoverHeads {
  private pending = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: TakeoverHeadsOptions) {}

  /** The slot is this node's now. */
  acquired(slot: number): void {
    if (this.stopped) return;
    this.pending.add(slot);
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.run();
      }, this.options.batchMs);
      this.timer.unref();
    }
  }

  /** Stops taking slots and waits for a run in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private async run(): Promise<void> {
    await this.running;
    const slots = this.pending;
    this.pending = new Set();
    this.running = this.push(slots).catch((error: unknown) => this.options.onError(error));
    await this.running;
  }

  private async push(slots: ReadonlySet<number>): Promise<void> {
    const { store, owner, delivery } = this.options;
    const now = (this.options.now ?? Date.now)();
    const recent = (await store.recentConvs(now - this.options.windowMs, this.options.limit)).filter((r) => slots.has(slotOf(r.conv, this.options.slots)));
    for (const record of recent) {
      if (this.stopped) return;
      let state;
      try {
        state = await owner.get(record.conv);
      } catch (error) {
        if (error instanceof NotOwnerError) continue; // moved on again meanwhile
        throw error;
      }
      if (!state || state.committed === 0) continue;
      const [entry] = await store.read(record.conv, state.committed - 1, state.committed, 1);
      if (entry) delivery.entries([{ entry, bodyJson: undefined, audience: state.memberList, originId: undefined }]);
    }
  }
}
