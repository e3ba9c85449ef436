/**
 * Writes each conversation's cursor to the store as it moves: one write at a
 * time per conversation, and the newest value wins, so a burst of deliveries
 * costs a couple of writes, not one per entry.
 */
import { SequentClientError } from './errors.js';
import type { ClientStore } from './store.js';

interface Pending {
  latest: number;
  writing: Promise<void> | undefined;
}

export class CursorWriter {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly store: ClientStore,
    private readonly onError: (error: SequentClientError) => void,
  ) {}

  save(conv: string, cursor: number): void {
    let state = this.pending.get(conv);
    if (!state) {
      state = { latest: cursor, writing: undefined };
      this.pending.set(conv, state);
    }
    state.latest = Math.max(state.latest, cursor);
    if (state.writing) return;
    const current = state;
    current.writing = (async () => {
      let written = -1;
      while (written < current.latest) {
        written = current.latest;
        try {
          await this.store.setCursor(conv, written);
        } catch (error) {
          this.onError(new SequentClientError('store', `could not save the cursor of ${conv}`, error));
          break;
        }
      }
      current.writing = undefined;
    })();
  }

  /** Waits for the writes under way. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.pending.values()].map((state) => state.writing));
  }
}
