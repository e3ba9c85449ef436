/**
 * Where a request came from and how it is answered. The core (ingest, groups,
 * the sequencer's callers) answers through this and never sees a socket: today
 * the origin is a local connection (`Session`); in cluster mode it may be a
 * request another node forwarded, answered over the bus. Either way the answer
 * leaves only once the core has decided it (an ack only after the commit).
 */
import type { AckFrame, ErrorCode } from 'sequent-client/protocol';

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
