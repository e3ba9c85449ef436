/**
 * Which node decides a request: the holder of its conversation's slot. A
 * request for a slot this node holds runs here; any other is forwarded over the
 * bus to the holder and its reply written back (forwarding.ts). The holder runs
 * forwarded requests only while it still holds the slot; a request that finds
 * nobody holding it, or no answer in time, is `unavailable`, and the client
 * resends with the same cmid and dseq, which the store's dedup makes safe.
 */
import type { CreateFrame, MembersFrame, ReadFrame, SendFrame } from 'sequent-client/protocol';
import type { OwnerRequests } from '../server/owner-requests.js';
import type { Origin, Requester } from '../server/origin.js';
import { NotOwnerError } from '../server/owner.js';
import { failureCode, failureMessage } from '../server/failures.js';
import type { ClusterBus, SlotHandler } from './bus.js';
import { decodeForwarded, encodeForwarded, encodeReply, ForwardedOrigin, type OwnerFrame } from './forwarding.js';
import { slotOf } from './slots.js';

export interface SlotHolder {
  /** The epoch this node holds `slot` at while it may serve it; otherwise undefined. */
  epochOf(slot: number): number | undefined;
}

export interface RoutingCounters {
  /** A request went to another node. */
  forwarded(): void;
  /** A forwarded request found no owner or no answer in time. */
  unanswered(cause: string): void;
}

export class ClusterRouting implements OwnerRequests<Requester> {
  constructor(
    /** This node's own ingest, groups and chat state. */
    private readonly local: OwnerRequests,
    private readonly bus: ClusterBus,
    private readonly holder: SlotHolder,
    private readonly slots: number,
    /** Longer than a send may be held back waiting for its dseq, or a held send would time out here first. */
    private readonly timeoutMs: number,
    private readonly counters: RoutingCounters,
  ) {}

  send(origin: Requester, frame: SendFrame, receivedAt: number, bodyJson: string): void | Promise<void> {
    const slot = slotOf(frame.conv, this.slots);
    if (this.holder.epochOf(slot) !== undefined) return runHere(origin, frame, () => this.local.send(origin, frame, receivedAt, bodyJson));
    return this.forward(origin, slot, frame, bodyJson);
  }

  create(origin: Requester, frame: CreateFrame): Promise<void> {
    return this.route(origin, frame, () => this.local.create(origin, frame));
  }

  members(origin: Requester, frame: MembersFrame): Promise<void> {
    return this.route(origin, frame, () => this.local.members(origin, frame));
  }

  read(origin: Requester, frame: ReadFrame): Promise<void> {
    return this.route(origin, frame, () => this.local.read(origin, frame));
  }

  private async route(origin: Requester, frame: OwnerFrame, here: () => Promise<void>): Promise<void> {
    const slot = slotOf(frame.conv, this.slots);
    if (this.holder.epochOf(slot) !== undefined) return runHere(origin, frame, here);
    return this.forward(origin, slot, frame);
  }

  private async forward(origin: Requester, slot: number, frame: OwnerFrame, bodyJson?: string): Promise<void> {
    this.counters.forwarded();
    const result = await this.bus.forward(slot, encodeForwarded(origin, frame, bodyJson), this.timeoutMs);
    // The owner's frame goes out as the bytes it came in (no decode to text and encode again).
    if (result.ok) return origin.sendText(Buffer.from(result.reply.buffer, result.reply.byteOffset, result.reply.byteLength));
    this.counters.unanswered(result.cause);
    origin.error(frame.id, 'unavailable', `the owner of ${frame.conv} could not be reached (${result.cause}); resend`);
  }
}

/**
 * The slot's holder answering a forwarded request. `local` are this node's own
 * handlers; a request for a slot given up since it was sent is `unavailable`,
 * never forwarded again (two nodes disagreeing about the owner must not bounce it).
 */
export function answerForwarded(local: OwnerRequests, holder: SlotHolder, onError: (error: unknown) => void): SlotHandler {
  return async (bytes, slot) => {
    const forwarded = decodeForwarded(bytes);
    const origin = new ForwardedOrigin(forwarded);
    const { frame } = forwarded;
    if (holder.epochOf(slot) === undefined) {
      origin.error(frame.id, 'unavailable', `${frame.conv} is moving to another node; resend`);
    } else {
      const run = (): void | Promise<void> => {
        switch (frame.t) {
          case 'send':
            return local.send(origin, frame, performance.now(), forwarded.bodyJson ?? JSON.stringify(frame.body));
          case 'create':
            return local.create(origin, frame);
          case 'members':
            return local.members(origin, frame);
          case 'read':
            return local.read(origin, frame);
        }
      };
      const failed = (error: unknown): void => {
        onError(error);
        const code = failureCode(error);
        origin.error(frame.id, code, failureMessage(code));
      };
      try {
        const done = runHere(origin, frame, run);
        if (done instanceof Promise) done.catch(failed);
      } catch (error) {
        failed(error);
      }
    }
    // Every owner request is answered once; one answered after the gateway's timeout is dropped there.
    return encodeReply(await origin.answer);
  };
}

/**
 * Runs a request here. The slot may be lost between the check and the load of
 * its conversation: that is `unavailable` (resend, it goes to the new holder).
 * Any other failure goes on to the caller, which logs it and answers `internal`.
 */
function runHere(origin: Origin, frame: OwnerFrame, run: () => void | Promise<void>): void | Promise<void> {
  const moved = (error: unknown): void => {
    if (!(error instanceof NotOwnerError)) throw error;
    origin.error(frame.id, 'unavailable', error.message);
  };
  try {
    const done = run();
    if (done instanceof Promise) return done.catch(moved);
  } catch (error) {
    moved(error);
  }
}
