/**
 * The one registry of error codes and close codes. Clients switch on these
 * strings and numbers, so they never change meaning; docs/errors.md lists every
 * one of them and a test keeps the two in step.
 */

export const ERROR_CODES = {
  bad_request: 'The frame is malformed, has a wrong field type, or breaks a rule of the protocol.',
  unauthorized: 'The token is missing, invalid or expired.',
  forbidden: 'The caller is not allowed to do this (for example, not a member of the conversation at its current seq).',
  not_found: 'The conversation does not exist, or the entry an edit, delete or reaction names is not a message of it.',
  conflict: 'The thing already exists (for example, creating a group that exists), or an edit, reaction or second delete names a deleted message.',
  too_large: 'The frame is larger than maxFrame, or the body larger than maxBody.',
  rate_limited: 'The connection sends faster than its rate limit allows, or has too many requests waiting; slow down and retry.',
  out_of_order: 'A dseq above the next expected one waited holdMs without the missing ones arriving; resend from `expected`.',
  unavailable: 'Try again: the server is draining or the conversation is moving between servers.',
  internal: 'An unexpected server failure; the request may be retried with the same cmid.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}

/** WebSocket close codes the server uses. 1xxx are standard; 4xxx are Sequent's. */
export const CLOSE_CODES = {
  normal: { code: 1000, meaning: 'Normal closure.' },
  going_away: { code: 1001, meaning: 'The server is shutting down (SIGTERM drain); reconnect, possibly to another server.' },
  repeated_bad_frames: { code: 4400, meaning: 'The client kept sending frames that are not JSON objects or are too large.' },
  not_authenticated: { code: 4401, meaning: 'A frame other than hello came before a successful hello, hello failed authentication, or the token expired; reconnect with a fresh token.' },
  hello_timeout: { code: 4408, meaning: 'No hello within the hello timeout (10 s).' },
  slow_consumer: { code: 4429, meaning: 'Extension: the client did not read fast enough and its send buffer passed the server limit; reconnect and sync.' },
  unsupported_proto: { code: 4426, meaning: 'Extension: the hello asked for a protocol version the server does not speak.' },
  too_many_connections: { code: 4430, meaning: 'Extension: the user, or the remote address, already has as many connections open as the server allows.' },
} as const;

export type CloseName = keyof typeof CLOSE_CODES;
