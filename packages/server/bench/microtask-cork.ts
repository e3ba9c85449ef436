/**
 * Holds a socket's writes until the current callback and its microtasks are done,
 * so that the frames a benchmark client sends while handling one read leave in
 * one write. This is how the `nats` client buffers its writes (it flushes from a
 * queued microtask), so the Sequent clients pay the same per-write cost as the
 * JetStream publishers they are compared with.
 */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export class MicrotaskCork {
  private corked = false;

  constructor(private readonly socket: Corkable) {}

  /** Corks the socket unless it already is; it is uncorked from a microtask. */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    queueMicrotask(this.release);
  }

  private readonly release = (): void => {
    this.corked = false;
    this.socket.uncork();
  };
}
