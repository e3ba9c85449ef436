/**
 * Every frame of protocol v1 as a TypeBox schema and its static type. Schemas
 * allow unknown fields so that servers and clients can extend frames without
 * breaking older peers (the protocol's "add, never change" rule).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { MAX_CMID_LENGTH, MAX_CONVS_LIMIT, MAX_MEMBERS_PER_CHANGE, MAX_SYNC_LIMIT } from './limits.js';

const NAME = '^[A-Za-z0-9_.-]{1,64}$';
const CONV = '^(g:[A-Za-z0-9_.-]{1,64}|dm:[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.-]{1,64})$';

export const Name = Type.String({ pattern: NAME });
export const ConvId = Type.String({ pattern: CONV });
const RequestId = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const NameList = Type.Array(Name, { maxItems: MAX_MEMBERS_PER_CHANGE });

export const MessageContext = Type.Object({ seen: Type.Optional(Seq) });

/** What a client may send: `system` entries are the server's own. */
export const SendKind = Type.Union([Type.Literal('msg'), Type.Literal('edit'), Type.Literal('delete'), Type.Literal('react')]);
/** The kinds that act on an earlier `msg` entry and so carry `ref`. */
export const REF_KINDS = ['edit', 'delete', 'react'] as const;

// ---- client → server -------------------------------------------------------

export const HelloFrame = Type.Object({
  t: Type.Literal('hello'),
  id: RequestId,
  proto: Type.Integer(),
  token: Type.String({ minLength: 1, maxLength: 8192 }),
});

export const CreateFrame = Type.Object({
  t: Type.Literal('create'),
  id: RequestId,
  conv: ConvId,
  members: NameList,
});

export const MembersFrame = Type.Object({
  t: Type.Literal('members'),
  id: RequestId,
  conv: ConvId,
  add: Type.Optional(NameList),
  remove: Type.Optional(NameList),
});

export const SendFrame = Type.Object({
  t: Type.Literal('send'),
  id: RequestId,
  conv: ConvId,
  cmid: Type.String({ minLength: 1, maxLength: MAX_CMID_LENGTH }),
  dseq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  body: Type.Unknown(),
  ctx: Type.Optional(MessageContext),
  /** Chat state: default `msg`; `edit`, `delete` and `react` need `ref`. */
  kind: Type.Optional(SendKind),
  /** Chat state: the seq of the `msg` entry an edit, delete or reaction acts on. */
  ref: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
});

/** Exactly one of `after` and `before` (the codec refuses both and neither). */
export const SyncFrame = Type.Object({
  t: Type.Literal('sync'),
  id: RequestId,
  conv: ConvId,
  after: Type.Optional(Seq),
  /** Chat state: older history, the `limit` entries just below `before`. */
  before: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_SYNC_LIMIT })),
});

export const ConvsFrame = Type.Object({
  t: Type.Literal('convs'),
  id: RequestId,
  /** Chat state: only the rows changed after this version of the caller's list. */
  since: Type.Optional(Seq),
  /** Chat state, with `since`: at most this many rows (default 500). */
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CONVS_LIMIT })),
});

/** Chat state: move the caller's read position forward. */
export const ReadFrame = Type.Object({
  t: Type.Literal('read'),
  id: RequestId,
  conv: ConvId,
  seq: Seq,
  /** Tell only the caller's own devices, not the other members. */
  private: Type.Optional(Type.Boolean()),
});

/** Chat state: the members of a conversation and their public read positions. */
export const InfoFrame = Type.Object({ t: Type.Literal('info'), id: RequestId, conv: ConvId });

/** Chat state: "I am typing", forwarded to the other members' online devices, never stored. */
export const TypingFrame = Type.Object({ t: Type.Literal('typing'), id: RequestId, conv: ConvId });

/** Extension: an application-level heartbeat, for clients (browsers) that cannot send WebSocket pings. */
export const PingFrame = Type.Object({ t: Type.Literal('ping'), id: RequestId });

export type HelloFrame = Static<typeof HelloFrame>;
export type CreateFrame = Static<typeof CreateFrame>;
export type MembersFrame = Static<typeof MembersFrame>;
export type SendFrame = Static<typeof SendFrame>;
export type SyncFrame = Static<typeof SyncFrame>;
export type ConvsFrame = Static<typeof ConvsFrame>;
export type PingFrame = Static<typeof PingFrame>;
export type ReadFrame = Static<typeof ReadFrame>;
export type InfoFrame = Static<typeof InfoFrame>;
export type TypingFrame = Static<typeof TypingFrame>;
export type SendKind = Static<typeof SendKind>;
export type ClientFrame =
  | HelloFrame
  | CreateFrame
  | MembersFrame
  | SendFrame
  | SyncFrame
  | ConvsFrame
  | PingFrame
  | ReadFrame
  | InfoFrame
  | TypingFrame;
export type ClientFrameType = ClientFrame['t'];

export const CLIENT_FRAME_SCHEMAS: Readonly<Record<ClientFrameType, TSchema>> = {
  hello: HelloFrame,
  create: CreateFrame,
  members: MembersFrame,
  send: SendFrame,
  sync: SyncFrame,
  convs: ConvsFrame,
  ping: PingFrame,
  read: ReadFrame,
  info: InfoFrame,
  typing: TypingFrame,
};

// ---- server → client -------------------------------------------------------

/** Clients must ignore kinds they do not know: servers may add more. */
export type EntryKind = 'msg' | 'system' | 'edit' | 'delete' | 'react';

/** One entry of a conversation's log: a push is `{t:"msg", ...Entry}`, a batch lists Entries. */
export interface Entry {
  conv: string;
  seq: number;
  kind: EntryKind;
  mid: string;
  ts: number;
  from: string;
  dev: string;
  cmid?: string;
  dseq?: number;
  body: unknown;
  ctx?: { seen?: number };
  /** Chat state: on `edit`, `delete` and `react`, the seq of the `msg` entry acted on. */
  ref?: number;
  /** Chat state, in `sync` replies: on a `msg` that was edited, the seq of its newest edit. */
  edited?: number;
  /** Chat state: on a deleted `msg` and each of its edits, the seq of the delete; `body` is then null. */
  deleted?: number;
}

/** The body of a `react` entry. */
export interface ReactBody {
  key: string;
  on: boolean;
}

export type SystemBody =
  | { op: 'create'; members: string[] }
  | { op: 'members'; add: string[]; remove: string[] };

export interface WelcomeFrame {
  t: 'welcome';
  id: number;
  user: string;
  device: string;
  serverTime: number;
  limits: { maxBody: number; maxFrame: number };
  /** Extension: how long the server holds a dseq gap before `out_of_order`. */
  holdMs?: number;
}

/**
 * The reply to create, members, read (`seq`: the caller's read position after it)
 * and typing (`seq`: the conversation's newest seq).
 */
export interface OkFrame {
  t: 'ok';
  id: number;
  conv: string;
  seq: number;
}

export interface AckFrame {
  t: 'ack';
  id: number;
  conv: string;
  cmid: string;
  dseq: number;
  seq: number;
  mid: string;
  ts: number;
}

export type MsgFrame = { t: 'msg' } & Entry;

export interface BatchFrame {
  t: 'batch';
  id: number;
  conv: string;
  msgs: Entry[];
  last: number;
}

export interface ConvSummary {
  conv: string;
  last: number;
  ts: number;
  /** Extension: the first seq the caller may read (the entry that added it). */
  from?: number;
  /** Extension: present when the caller was removed; the last seq it may read. */
  until?: number;
  /** Chat state: the caller's read position. */
  read?: number;
  /** Chat state: `msg` entries in (read, last] written by others and not deleted. */
  unread?: number;
}

export interface ConvsReplyFrame {
  t: 'convs';
  id: number;
  convs: ConvSummary[];
  /** Extension: present when the caller has more conversations than the server lists (maxConvs); the least recently active are left out. */
  truncated?: true;
  /** Chat state: the caller's list version; ask `since` it for what changes next. */
  version?: number;
  /** Chat state: the sum of `unread` over all the caller's conversations (not only the rows listed). */
  unread?: number;
  /** Chat state, with `since`: true when more changed rows wait; ask again with `since` = `version`. */
  more?: boolean;
  /** Chat state, with `since`: true when `since` was not a version the server issued and the reply is the full list. */
  full?: true;
}

/** Chat state: a read position moved (push; no id). */
export interface ReadPushFrame {
  t: 'read';
  conv: string;
  user: string;
  seq: number;
  /** Extension: on the user's own devices, when the move was private. */
  private?: true;
}

/** Chat state: the reply to `info`. */
export interface InfoReplyFrame {
  t: 'info';
  id: number;
  conv: string;
  members: string[];
  last: number;
  /** Each current member's last public read position. */
  read: Record<string, number>;
}

/** Chat state: a member is typing (push; no id). */
export interface TypingPushFrame {
  t: 'typing';
  conv: string;
  user: string;
}

export interface ErrorFrame {
  t: 'error';
  id?: number;
  code: import('./errors.js').ErrorCode;
  message: string;
  /** With `out_of_order`: the dseq the server expects next from this device. */
  expected?: number;
}

export interface PongFrame {
  t: 'pong';
  id: number;
  serverTime: number;
}

export type ServerFrame =
  | WelcomeFrame
  | OkFrame
  | AckFrame
  | MsgFrame
  | BatchFrame
  | ConvsReplyFrame
  | ErrorFrame
  | PongFrame
  | ReadPushFrame
  | InfoReplyFrame
  | TypingPushFrame;
