/**
 * NATS subjects of a cluster. Everything starts with the prefix (default
 * `sequent.<database name>`), so two clusters on one NATS server never cross.
 * User ids are free text and may hold '.', '*', '>' or spaces, which mean
 * something in a subject: they travel as base64url of their UTF-8 bytes, one
 * token that can hold nothing else.
 */
import { rememberUpTo } from './memo.js';

const TOKEN = /^[A-Za-z0-9_-]+$/;

export function checkPrefix(prefix: string): void {
  if (prefix.length === 0 || prefix.length > 200 || !prefix.split('.').every((t) => TOKEN.test(t))) {
    throw new RangeError(`a NATS prefix is dot-separated tokens of letters, digits, '_' and '-', got ${JSON.stringify(prefix)}`);
  }
}

/** `sequent.<database name>` for a PostgreSQL URL; characters a subject token cannot hold become '_'. */
export function defaultPrefix(postgresUrl: string): string {
  const url = new URL(postgresUrl);
  // libpq's rule: no database in the URL means the database named after the user
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || decodeURIComponent(url.username) || 'postgres';
  return `sequent.${database.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export interface Subjects {
  /** Requests for the owner of `slot`. */
  own(slot: number): string;
  /** The queue group every owner subscribes in, so one request reaches one owner. */
  readonly owners: string;
  /** Pushes for a user's devices, on whichever nodes they are connected to. */
  user(user: string): string;
}

/** User subjects remembered (a push is published for every audience user of every batch); past it the memory starts over. */
export const USER_SUBJECTS_KEPT = 10_000;

export function subjects(prefix: string): Subjects {
  checkPrefix(prefix);
  return {
    own: (slot) => `${prefix}.own.${slot}`,
    owners: `${prefix}.owners`,
    user: rememberUpTo(USER_SUBJECTS_KEPT, (user: string) => `${prefix}.u.${Buffer.from(user, 'utf8').toString('base64url') || '-'}`),
  };
}
