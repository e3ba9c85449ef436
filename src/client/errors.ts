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
  connection_lost: 'The connection closed before the reply came; the request may or may not have been executed.',
  deadline: 'A send was not acknowledged within sendDeadlineMs.',
  blocked: 'An earlier send of the same conversation failed; later ones wait behind it, to keep the order.',
  identity_mismatch: 'The server named another user or device than the one this store belongs to.',
  unsupported_proto: 'The server does not speak this protocol version (close 4426).',
  store: 'The client store failed to read or write.',
  protocol: 'The server sent a frame the SDK could not understand.',
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
