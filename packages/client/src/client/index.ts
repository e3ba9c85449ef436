// The Sequent client SDK (`sequent-client`). Browser-safe: nothing here may
// import a Node built-in; the Node file store is `sequent-client/file-store`.
export { SequentClient } from './client.js';
export type {
  ClientEvents,
  MessageEvent,
  SendEvent,
  SendOptions,
  MembershipResult,
  TypedEntry,
  ReadEvent,
  TypingEvent,
  ReadOptions,
  HistoryOptions,
  HistoryPage,
  ConversationMembers,
} from './events.js';
export type { ChatMessage, Reaction } from './fold.js';
export { CLIENT_STATES } from './connection.js';
export type { ClientState, StateChange } from './connection.js';
export { SendHandle } from './send-handle.js';
export type { SendState, SentInfo } from './send-handle.js';
export type { BlockedConversation } from './outbox.js';
export type { ViewItem } from './view.js';
export type { ConversationInfo } from './conversations.js';
export { SequentClientError, CLIENT_ERROR_CODES } from './errors.js';
export type { ClientErrorCode } from './errors.js';
export {
  DEFAULT_GAP_WAIT_MS,
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_SEND_DEADLINE_MS,
  DEFAULT_BACKOFF,
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_PING_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SYNC_PAGE_SIZE,
  DEFAULT_SYNC_CONCURRENCY,
} from './options.js';
export type { ClientOptions, DeliveryMode, ClientLogger } from './options.js';
export type { BackoffOptions } from './backoff.js';
export { webSocketTransport, tapTransport } from './transport.js';
export type { Transport, TransportConnection, TransportTap, WebSocketLike, WebSocketConstructor } from './transport.js';
export { newCmid, newDeviceId } from './ids.js';
export { MemoryClientStore } from './store.js';
export type { ClientStore, ClientSnapshot, ClientIdentity, ConvRecord, OutboxEntry, SendError } from './store.js';
export { IndexedDbClientStore } from './indexeddb-store.js';
export type { IndexedDbClientStoreOptions } from './indexeddb-store.js';
export type { Entry, EntryKind, SystemBody } from '../protocol/frames.js';
