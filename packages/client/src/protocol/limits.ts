/** The protocol's version and default limits. */

export const PROTO_VERSION = 1;

export const DEFAULT_MAX_FRAME = 256 * 1024;
export const DEFAULT_MAX_BODY = 64 * 1024;
export const DEFAULT_HOLD_MS = 2000;
export const HELLO_TIMEOUT_MS = 10_000;
export const DEFAULT_SYNC_LIMIT = 100;
export const MAX_SYNC_LIMIT = 1000;
export const MAX_CMID_LENGTH = 64;
/** Chat state: rows of a `convs since` reply by default and at most. */
export const DEFAULT_CONVS_LIMIT = 500;
export const MAX_CONVS_LIMIT = 1000;
/** Chat state: a reaction's `key` is 1 to this many characters (code points). */
export const MAX_REACTION_KEY = 32;
/** Chat state: the server forwards at most one typing push per (user, conversation) in this many ms. */
export const TYPING_INTERVAL_MS = 1000;
/** A create or members frame may name at most this many users (extension limit). */
export const MAX_MEMBERS_PER_CHANGE = 1000;
/**
 * How deeply a send's `body` or `ctx` may nest arrays and objects (extension
 * limit). Serializing and storing a value walks it recursively; a limit far
 * above any chat payload keeps a 10 kB frame from exhausting the stack.
 */
export const MAX_JSON_DEPTH = 32;
/** A send's `ctx`, serialized, is at most this many bytes; it also counts toward maxBody (extension limit). */
export const MAX_CTX_BYTES = 1024;

export interface Limits {
  readonly maxBody: number;
  readonly maxFrame: number;
}
