/**
 * Every frame of protocol v1 as a TypeBox schema and its static type. Schemas
 * allow unknown fields so that servers and clients can extend frames without
 * breaking older peers (the protocol's "add, never change" rule).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { MAX_CMID_LENGTH, MAX_MEMBERS_PER_CHANGE, MAX_SYNC_LIMIT } from './limits.js';

const NAME = '^[A-Za-z0-9_.-]{1,64}$';
const CONV = '^(g:[A-Za-z0-9_.-]{1,64}|dm:[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.-]{1,64})$';

export const Name = Type.String({ pattern: NAME });
export const ConvId = Type.String({ pattern: CONV });
const RequestId = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const NameList = Type.Array(Name, { maxItems: MAX_MEMBERS_PER_CHANGE });

export const MessageContext = Type.Object({ seen: Type.Optional(Seq) });

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
});

export const SyncFrame = Type.Object({
  t: Type.Literal('sync'),
  id: RequestId,
  conv: ConvId,
  after: Seq,
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_SYNC_LIMIT })),
});

export const ConvsFrame = Type.Object({ t: Type.Literal('convs'), id: RequestId });

/** Extension: an application-level heartbeat, for clients (browsers) that cannot send WebSocket pings. */
export const PingFrame = Type.Object({ t: Type.Literal('ping'), id: RequestId });

export type HelloFrame = Static<typeof HelloFrame>;
export type CreateFrame = Static<typeof CreateFrame>;
export type MembersFrame = Static<typeof MembersFrame>;
export type SendFrame = Static<typeof SendFrame>;
export type SyncFrame = Static<typeof SyncFrame>;
export type ConvsFrame = Static<typeof ConvsFrame>;
export type PingFrame = Static<typeof PingFrame>;
export type ClientFrame = HelloFrame | CreateFrame | MembersFrame | SendFrame | SyncFrame | ConvsFrame | PingFrame;
export type ClientFrameType = ClientFrame['t'];

export const CLIENT_FRAME_SCHEMAS: Readonly<Record<ClientFrameType, TSchema>> = {
  hello: HelloFrame,
  create: CreateFrame,
  members: MembersFrame,
  send: SendFrame,
  sync: SyncFrame,
  convs: ConvsFrame,
  ping: PingFrame,
};

// ---- server → client -------------------------------------------------------

export type EntryKind = 'msg' | 'system';

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
}

export interface ConvsReplyFrame {
  t: 'convs';
  id: number;
  convs: ConvSummary[];
  /** Extension: present when the caller has more conversations than the server lists (maxConvs); the least recently active are left out. */
  truncated?: true;
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
  | PongFrame;
