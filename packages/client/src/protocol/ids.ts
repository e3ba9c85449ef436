/** Names of users, devices and conversations, as the protocol defines them. */

export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value);
}

export type ConvRef =
  | { readonly kind: 'dm'; readonly conv: string; readonly users: readonly [string, string] }
  | { readonly kind: 'group'; readonly conv: string; readonly name: string };

/** Parses `dm:<a>:<b>` (a < b by code point, a ≠ b) or `g:<name>`; null when malformed. */
export function parseConvId(conv: unknown): ConvRef | null {
  if (typeof conv !== 'string') return null;
  if (conv.startsWith('g:')) {
    const name = conv.slice(2);
    return isName(name) ? { kind: 'group', conv, name } : null;
  }
  if (conv.startsWith('dm:')) {
    const parts = conv.slice(3).split(':');
    if (parts.length !== 2) return null;
    const [a, b] = parts as [string, string];
    if (!isName(a) || !isName(b) || !(a < b)) return null;
    return { kind: 'dm', conv, users: [a, b] };
  }
  return null;
}

/** The id of the 1:1 conversation between two distinct users. */
export function dmConvId(userA: string, userB: string): string {
  if (userA === userB) throw new Error('a direct conversation needs two distinct users');
  return userA < userB ? `dm:${userA}:${userB}` : `dm:${userB}:${userA}`;
}

export function groupConvId(name: string): string {
  return `g:${name}`;
}
