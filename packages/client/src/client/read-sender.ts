/**
 * Sends the user's read positions: forward only and coalesced. Per
 * conversation one `read` request is in flight at a time; a markRead meanwhile
 * only raises the value that goes next, so scrolling through a hundred
 * messages costs a request or two. What the server did not confirm (the
 * connection dropped, the app was offline) goes out again on the next
 * connection, from the positions the conversation list keeps.
 */
import type { ServerFrame } from '../protocol/frames.js';
import type { Request } from './connection.js';
import { SequentClientError } from './errors.js';

export interface ReadSenderHooks {
  /** Sends a request; rejects when not connected or the connection drops. */
  ask(frame: Request): Promise<ServerFrame>;
  /** The server's read position after a request (it may be above what was asked: another device read further). */
  confirmed(conv: string, seq: number): void;
  error(error: SequentClientError): void;
}

interface Wanted {
  seq: number;
  private: boolean;
  inFlight: boolean;
}

export class ReadSender {
  private readonly wanted = new Map<string, Wanted>();

  constructor(private readonly hooks: ReadSenderHooks) {}

  /** Asks for the position to reach `seq` (a lower or equal ask than one pending changes nothing). */
  want(conv: string, seq: number, isPrivate: boolean): void {
    const current = this.wanted.get(conv);
    if (current) {
      if (seq > current.seq) {
        current.seq = seq;
        current.private = isPrivate;
      }
      if (!current.inFlight) this.send(conv, current);
      return;
    }
    const next = { seq, private: isPrivate, inFlight: false };
    this.wanted.set(conv, next);
    this.send(conv, next);
  }

  private send(conv: string, wanted: Wanted): void {
    wanted.inFlight = true;
    const asked = wanted.seq;
    const frame: Request = wanted.private ? { t: 'read', conv, seq: asked, private: true } : { t: 'read', conv, seq: asked };
    this.hooks.ask(frame).then(
      (reply) => {
        wanted.inFlight = false;
        if (reply.t === 'ok') this.hooks.confirmed(conv, reply.seq);
        else if (reply.t === 'error') this.hooks.error(new SequentClientError(reply.code, `read of ${conv} at ${asked}: ${reply.message}`));
        else this.hooks.error(new SequentClientError('protocol', `unexpected reply to read: ${reply.t}`));
        if (wanted.seq > asked && reply.t === 'ok') this.send(conv, wanted);
        else if (this.wanted.get(conv) === wanted) this.wanted.delete(conv);
      },
      () => {
        // Not connected, or the connection dropped: the next connection sends what is unconfirmed.
        wanted.inFlight = false;
        if (this.wanted.get(conv) === wanted) this.wanted.delete(conv);
      },
    );
  }
}
