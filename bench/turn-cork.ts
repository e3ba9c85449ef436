/**
 * Holds a socket's writes until the end of the current event-loop turn, so that
 * the frames a benchmark client sends in one turn leave in one write, as the
 * server's do (src/server/turn-frames.ts) and as the `nats` client buffers.
 */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export class TurnCork {
  private corked = false;

  constructor(private readonly socket: Corkable) {}

  /** Corks the socket unless it already is; it is uncorked once the turn's I/O callbacks have run. */
  hold(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    setImmediate(this.release);
  }

  private readonly release = (): void => {
    this.corked = false;
    this.socket.uncork();
  };
}
