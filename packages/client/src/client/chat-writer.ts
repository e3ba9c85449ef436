/**
 * Saves the chat state (list rows, read positions, version) as it changes:
 * one write at a time, the newest state wins, so a burst of pushes costs a
 * write or two. Without saveChat in the store it does nothing.
 */
import { SequentClientError } from './errors.js';
import type { ChatState, ClientStore } from './store.js';

export class ChatWriter {
  private dirty = false;
  private writing: Promise<void> | undefined;

  constructor(
    private readonly store: ClientStore,
    private readonly state: () => ChatState,
    private readonly onError: (error: SequentClientError) => void,
  ) {}

  save(): void {
    if (!this.store.saveChat) return;
    this.dirty = true;
    if (this.writing) return;
    this.writing = (async () => {
      // A microtask first: the changes of one tick go into one write.
      await Promise.resolve();
      while (this.dirty) {
        this.dirty = false;
        try {
          await this.store.saveChat?.(this.state());
        } catch (error) {
          this.onError(new SequentClientError('store', 'could not save the conversation list', error));
          break;
        }
      }
      this.writing = undefined;
    })();
  }

  async drain(): Promise<void> {
    await this.writing;
  }
}
