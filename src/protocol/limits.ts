/** The protocol's version and default limits. */

export const PROTO_VERSION = 1;

export const DEFAULT_MAX_FRAME = 256 * 1024;
export const DEFAULT_MAX_BODY = 64 * 1024;
export const DEFAULT_HOLD_MS = 2000;
export const HELLO_TIMEOUT_MS = 10_000;
export const DEFAULT_SYNC_LIMIT = 100;
export const MAX_SYNC_LIMIT = 1000;
export const MAX_CMID_LENGTH = 64;
/** A create or members frame may name at most this many users (extension limit). */
export const MAX_MEMBERS_PER_CHANGE = 1000;

export interface Limits {
  readonly maxBody: number;
  readonly maxFrame: number;
}
