/**
 * Holds a socket's writes until the end of the current event-loop turn. One
 * syscall per frame was most of the server's time under load; with this, the
 * frames sent in one turn (the acks of a group commit, a burst of pushes, a
 * client's next sends) leave in one write.
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
