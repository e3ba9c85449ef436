/** The SDK's typed events and the small types of its public calls. */
import type { Entry, ReactBody, SystemBody } from '../protocol/frames.js';
import type { StateChange } from './connection.js';
import type { ConversationInfo } from './conversations.js';
import type { ChatMessage } from './fold.js';
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
  | (Omit<Entry, 'kind' | 'body'> & { kind: 'system'; body: SystemBody })
  | (Omit<Entry, 'kind' | 'body'> & { kind: 'edit'; body: Body | null })
  | (Omit<Entry, 'kind' | 'body'> & { kind: 'delete'; body: null })
  | (Omit<Entry, 'kind' | 'body'> & { kind: 'react'; body: ReactBody });

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
  /** A member's read position moved (this user's from any device, or another member's public one). */
  read: ReadEvent;
  /** Another member is typing; show it until `until` (about 5 s) unless another comes. */
  typing: TypingEvent;
  error: SequentClientError;
}

export interface ReadEvent {
  conv: string;
  user: string;
  seq: number;
  /** This user (on any of its devices). */
  own: boolean;
}

export interface TypingEvent {
  conv: string;
  user: string;
  /** Local time (options.now) until which to show it. */
  until: number;
}

export interface ReadOptions {
  /** Tell only this user's own devices, not the other members (their "seen by" keeps the last public value). */
  private?: boolean;
}

export interface HistoryOptions {
  /** Load the entries just below this seq. Default: below the oldest entry held for the conversation. */
  before?: number;
  /** How many entries (default 50, at most 1000). */
  limit?: number;
}

export interface HistoryPage<Body = unknown> {
  /** The messages of the page, folded (edits, deletes, reactions known so far applied). */
  messages: ChatMessage<Body>[];
  /** The lowest seq loaded (undefined when nothing was). */
  from: number | undefined;
  /** True while older readable history remains. */
  more: boolean;
}

/** A conversation's members and their public read positions, for "seen by 3 of 4". */
export interface ConversationMembers {
  conv: string;
  members: string[];
  last: number;
  read: Record<string, number>;
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

