/**
 * How a request that failed unexpectedly is answered. A store that cannot be
 * reached right now (a database restarting, a network cut, a connection the
 * server ended, a timeout) is `unavailable`: the client retries and nothing was
 * decided. Anything else is a bug here, `internal`.
 */
import type { ErrorCode } from 'sequent-client/protocol';

/** Node's socket errors, and PostgreSQL's connection-exception class (08), shutdown (57P0x) and lock timeouts (55P03). */
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '55P03', '57P01', '57P02', '57P03', '57014', '40001', '40P01', '25P03']);

export function failureCode(error: unknown): ErrorCode {
  if (!(error instanceof Error)) return 'internal';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (TRANSIENT_CODES.has(code) || code.startsWith('08'))) return 'unavailable';
  // pg's own messages for a connection it lost or never got, and for a query it gave up waiting for.
  if (/Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error/i.test(error.message)) return 'unavailable';
  return 'internal';
}

export function failureMessage(code: ErrorCode): string {
  return code === 'unavailable' ? 'the store cannot be reached right now; retry' : 'internal error';
}
