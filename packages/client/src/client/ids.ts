/** Random ids made on the device: the device id (once per install) and each message's cmid. */

/**
 * [0-9A-Za-z] in ASCII order: random characters are drawn from it, and the
 * fixed-width numbers written with it sort as their values do.
 */
const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Random bytes from the platform's CSPRNG (Web Crypto, present in browsers and in
 * Node ≥ 19), drawn a pool at a time: one getRandomValues call and one buffer per
 * id cost more than the rest of building it.
 */
const pool = new Uint8Array(512);
let used = pool.length;

function randomByte(): number {
  if (used === pool.length) {
    globalThis.crypto.getRandomValues(pool);
    used = 0;
  }
  return pool[used++] as number;
}

/** `length` characters from [A-Za-z0-9] (about 5.95 bits each). */
export function randomId(length: number): string {
  let id = '';
  while (id.length < length) {
    const byte = randomByte();
    // 248 = 4 × 62: rejecting bytes at or above it keeps every character equally likely.
    if (byte < 248) id += DIGITS[byte % 62];
  }
  return id;
}

/** A new device id: 20 characters, valid as a protocol name. */
export function newDeviceId(): string {
  return randomId(20);
}

const TIME_WIDTH = 8; // 62^8 ms is about 6,900 years.

/** `ms` in base 62, fixed width: later times sort after earlier ones. */
export function timePrefix(ms: number): string {
  let rest = Math.max(0, Math.floor(ms));
  let text = '';
  for (let i = 0; i < TIME_WIDTH; i++) {
    text = DIGITS[rest % 62] + text;
    rest = Math.floor(rest / 62);
  }
  return text;
}

/**
 * A new cmid: 22 characters, unique per (device, conversation) without
 * coordination. The first 8 are the creation time in ms and the other 14 random
 * (about 83 bits), so a device's cmids grow with time: the server's dedup index
 * then takes new ones at its end instead of at random places, which costs it
 * fewer page writes per commit.
 */
export function newCmid(now: number = Date.now()): string {
  return timePrefix(now) + randomId(14);
}
