// The wire protocol, shared by server and client. Browser-safe: no Node built-ins.
export { ERROR_CODES, ERROR_CODE_LIST, CLOSE_CODES, isErrorCode } from './errors.js';
export type { ErrorCode, CloseName } from './errors.js';
export { NAME_PATTERN, isName, parseConvId, dmConvId, groupConvId } from './ids.js';
export type { ConvRef } from './ids.js';
export {
  PROTO_VERSION,
  DEFAULT_MAX_FRAME,
  DEFAULT_MAX_BODY,
  DEFAULT_HOLD_MS,
  HELLO_TIMEOUT_MS,
  DEFAULT_SYNC_LIMIT,
  MAX_SYNC_LIMIT,
  MAX_CMID_LENGTH,
  MAX_MEMBERS_PER_CHANGE,
  MAX_JSON_DEPTH,
  MAX_CTX_BYTES,
  DEFAULT_CONVS_LIMIT,
  MAX_CONVS_LIMIT,
  MAX_REACTION_KEY,
  TYPING_INTERVAL_MS,
} from './limits.js';
export type { Limits } from './limits.js';
export { decodeClientFrame, utf8Length, isClientFrameType } from './codec.js';
export type { DecodeResult } from './codec.js';
export { encodeMsgFrame, encodeAck, encodeBatch } from './encode.js';
export { CLIENT_FRAME_SCHEMAS, REF_KINDS } from './frames.js';
export type {
  ClientFrame,
  ClientFrameType,
  HelloFrame,
  CreateFrame,
  MembersFrame,
  SendFrame,
  SyncFrame,
  ConvsFrame,
  PingFrame,
  ReadFrame,
  InfoFrame,
  TypingFrame,
  SendKind,
  ReactBody,
  ReadPushFrame,
  InfoReplyFrame,
  TypingPushFrame,
  Entry,
  EntryKind,
  SystemBody,
  WelcomeFrame,
  OkFrame,
  AckFrame,
  MsgFrame,
  BatchFrame,
  ConvSummary,
  ConvsReplyFrame,
  ErrorFrame,
  PongFrame,
  ServerFrame,
} from './frames.js';
