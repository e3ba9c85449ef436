/**
 * Errors the SDK reports, each with a stable string code apps can switch on.
 * Server error codes (docs/errors.md) pass through unchanged; the rest are the
 * SDK's own and listed here.
 */
import type { ErrorCode } from '../protocol/errors.js';

export const CLIENT_ERROR_CODES = {
  invalid_argument: 'A call got an argument the protocol would refuse (conversation id, body size, …).',
  not_started: 'The call needs start() first.',
  stopped: 'The client was stopped.',
  timeout: 'No connection or no reply within requestTimeoutMs.',
  connect_failed: 'The transport could not open the connection (wrong URL or port, server down, TLS); the message names its reason. The SDK keeps retrying.',
  connection_lost: 'The connection closed before the reply came; the request may or may not have been executed.',
  deadline: 'A send was not acknowledged within sendDeadlineMs.',
  blocked: 'An earlier send of the same conversation failed; later ones wait behind it, to keep the order.',
  discarded: 'The send was discarded (discard()); it will never be sent.',
  cannot_discard: 'discard() on a send the server may have taken (failed on its deadline, or still sending): retry it instead.',
  identity_mismatch: 'The server named another user or device than the one this store belongs to.',
  unsupported_proto: 'The server does not speak this protocol version (close 4426).',
  store: 'The client store failed to read or write.',
  protocol: 'The server sent a frame the SDK could not understand.',
  server_behind:
    "The server's log of a conversation ends below a seq this device already holds: entries the server acknowledged are gone from it (a database failed over to a replica that was behind). Reported once per conversation and position; tell the operator.",
} as const;

export type ClientErrorCode = keyof typeof CLIENT_ERROR_CODES;

export class SequentClientError extends Error {
  constructor(
    readonly code: ClientErrorCode | ErrorCode,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'SequentClientError';
  }
}
