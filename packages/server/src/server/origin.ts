/**
 * Where a request came from and how it is answered. The core (ingest, groups,
 * the sequencer's callers) answers through this and never sees a socket: today
 * the origin is a local connection (`Session`); in cluster mode it may be a
 * request another node forwarded, answered over the bus. Either way the answer
 * leaves only once the core has decided it (an ack only after the commit).
 */
import type { AckFrame, ErrorCode, ServerFrame } from 'sequent-client/protocol';

export interface Origin {
  readonly user: string;
  readonly device: string;
  /** The connection the request came in on: an entry it sends is answered to it by ack, not pushed to it. */
  readonly connection: number;
  /** The send's entry is durable. */
  ack(frame: AckFrame): void;
  /** A request that is not a send took effect at `seq` (or already held there). */
  ok(id: number, conv: string, seq: number): void;
  error(id: number | undefined, code: ErrorCode, message: string, extra?: { expected?: number }): void;
}

/**
 * An origin that also takes whole reply frames (a sync's batch, a convs or info
 * reply): what the read and chat-state requests answer through.
 */
export interface Requester extends Origin {
  send(frame: ServerFrame): void;
  /** A frame's JSON, as text or already UTF-8 encoded. */
  sendText(text: string | Buffer): void;
  /** Reads of this connection waiting for the store (bounded by the read limits). */
  pendingReads: number;
}
