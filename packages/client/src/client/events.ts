/** The SDK's typed events and the small types of its public calls. */
import type { Entry, SystemBody } from '../protocol/frames.js';
import type { StateChange } from './connection.js';
import type { ConversationInfo } from './conversations.js';
import type { BlockedConversation } from './outbox.js';
import type { SequentClientError } from './errors.js';
import type { SendHandle, SendState } from './send-handle.js';

/**
 * An entry whose message body has the app's type: `new SequentClient<Chat>(…)`
 * types `entry.body` as `Chat` where `kind` is `'msg'`. The SDK does not check
 * bodies; the type is the app's promise about what its clients send.
 */
export type TypedEntry<Body = unknown> =
  | (Omit<Entry, 'kind' | 'body'> & { kind: 'msg'; body: Body })
  | (Omit<Entry, 'kind' | 'body'> & { kind: 'system'; body: SystemBody });

export interface MessageEvent<Body = unknown> {
  conv: string;
  entry: TypedEntry<Body>;
  /** Where the entry belongs in entries(conv) (ascending seq); in ordered mode always the end. */
  index: number;
  /** Sent from this device (this store). */
  own: boolean;
}

export interface SendEvent<Body = unknown> {
  handle: SendHandle<Body>;
  state: SendState;
  /** undefined when the handle was just created (by send() or restored from the store). */
  previous: SendState | undefined;
}

export interface ClientEvents<Body = unknown> {
  state: StateChange;
  message: MessageEvent<Body>;
  send: SendEvent<Body>;
  conversations: ConversationInfo[];
  /** A conversation's oldest unacked send failed; later ones wait. `discardable`: only discard() unblocks it. */
  blocked: BlockedConversation;
  error: SequentClientError;
}

export interface SendOptions {
  /** ctx.seen: the highest seq on screen when composing. Default: the highest seq delivered in that conversation (or its cursor). */
  seen?: number;
}

export interface MembershipResult {
  conv: string;
  /** The seq of the system entry (or the current seq, when nothing changed). */
  seq: number;
}

