/**
 * Saves the chat state (list rows, read positions, version) as it changes:
 * one write at a time, the newest state wins, and while changes keep coming at
 * most one write per CHAT_SAVE_INTERVAL_MS. A change after a quiet spell is
 * written at once (after a microtask, so that the changes of one tick go
 * together); a catch-up, which moves the list with every page of entries,
 * costs a write per interval instead of one per page, each of them a copy of
 * the whole list. Without saveChat in the store it does nothing.
 */
import { startTimer, type TimerHandle } from './backoff.js';
import { SequentClientError } from './errors.js';
import type { ChatState, ClientStore } from './store.js';

/** The least time between two chat-state writes during a burst of changes. */
export const CHAT_SAVE_INTERVAL_MS = 100;

export class ChatWriter {
  private dirty = false;
  private writing: Promise<void> | undefined;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  /** drain() is waiting: write without waiting out the interval. */
  private flushing = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly store: ClientStore,
    private readonly state: () => ChatState,
    private readonly onError: (error: SequentClientError) => void,
    private readonly intervalMs = CHAT_SAVE_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  save(): void {
    if (!this.store.saveChat) return;
    this.dirty = true;
    this.writing ??= this.run();
  }

  /** Writes what is still unsaved now, without waiting out the interval. */
  async drain(): Promise<void> {
    this.flushing = true;
    this.wake?.();
    try {
      await this.writing;
    } finally {
      this.flushing = false;
    }
  }

  private async run(): Promise<void> {
    // A microtask first: the changes of one tick go into one write.
    await Promise.resolve();
    while (this.dirty) {
      const wait = this.lastWriteAt + this.intervalMs - this.now();
      if (wait > 0 && !this.flushing) await this.sleep(wait);
      this.dirty = false;
      try {
        await this.store.saveChat?.(this.state());
      } catch (error) {
        this.onError(new SequentClientError('store', 'could not save the conversation list', error));
        break;
      }
      this.lastWriteAt = this.now();
    }
    this.writing = undefined;
  }

  private async sleep(ms: number): Promise<void> {
    let timer: TimerHandle | undefined;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      timer = startTimer(resolve, ms);
    });
    clearTimeout(timer);
    this.wake = undefined;
  }
}
