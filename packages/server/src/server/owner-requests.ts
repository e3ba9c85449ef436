/**
 * The requests only a conversation's owner may decide — a send (its seq), a
 * group's creation and membership, a read position — as one interface. On one
 * node this node owns every conversation and they go straight to ingest,
 * groups and chat state; a cluster node sends those of conversations it does
 * not own to their owner (cluster/routing.ts). Reads (`sync`, `convs`, `info`)
 * and `typing` are not here: any node answers them.
 */
import type { CreateFrame, MembersFrame, ReadFrame, SendFrame } from 'sequent-client/protocol';
import type { ChatState } from './chat-state.js';
import type { Groups } from './groups.js';
import type { Ingest } from './ingest.js';
import type { Origin } from './origin.js';

/** `O`: what the caller's requests come from (a forwarding router needs more than an Origin: a way to write the owner's reply). */
export interface OwnerRequests<O extends Origin = Origin> {
  /** `bodyJson` is JSON.stringify(frame.body), which the gateway has from measuring it. */
  send(origin: O, frame: SendFrame, receivedAt: number, bodyJson: string): void | Promise<void>;
  create(origin: O, frame: CreateFrame): Promise<void>;
  members(origin: O, frame: MembersFrame): Promise<void>;
  read(origin: O, frame: ReadFrame): Promise<void>;
}

/** This node decides: the requests go to its own ingest, groups and chat state. */
export function decidedHere(ingest: Ingest, groups: Groups, chat: ChatState): OwnerRequests {
  return {
    send: (origin, frame, receivedAt, bodyJson) => ingest.send(origin, frame, receivedAt, bodyJson),
    create: (origin, frame) => groups.create(origin, frame),
    members: (origin, frame) => groups.members(origin, frame),
    read: (origin, frame) => chat.read(origin, frame),
  };
}
