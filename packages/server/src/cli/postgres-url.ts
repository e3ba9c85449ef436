/** `--postgres` as psql reads it: a URL without a user name means the operating-system user, not no user at all. */
import { userInfo } from 'node:os';

export function withDefaultUser(url: string, env: NodeJS.ProcessEnv = process.env): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url; // the server's option check names the bad URL
  }
  if (parsed.username !== '' || (env['PGUSER'] ?? '') !== '') return url;
  const user = env['USER'] || env['LOGNAME'] || safeUserName();
  if (user === undefined) return url;
  parsed.username = encodeURIComponent(user);
  return parsed.toString();
}

function safeUserName(): string | undefined {
  try {
    return userInfo().username;
  } catch {
    return undefined;
  }
}

/** A PostgreSQL server's error (it has a SQLSTATE and a severity) or a failure to reach one. */
export function isPostgresFailure(error: unknown): error is Error & { code?: string } {
  if (!(error instanceof Error)) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  if (typeof severity === 'string' && typeof code === 'string') return true;
  // pg's own client-side refusals (a password the server asks for and the URL lacks) carry no code.
  if (/^SASL|password/.test(error.message)) return true;
  return typeof code === 'string' && ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH'].includes(code);
}
