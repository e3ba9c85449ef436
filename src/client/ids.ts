/** Random ids made on the device: the device id (once per install) and each message's cmid. */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * `length` characters from [A-Za-z0-9] (about 5.95 bits each), from the
 * platform's CSPRNG (Web Crypto, present in browsers and in Node ≥ 19).
 */
export function randomId(length: number): string {
  const bytes = new Uint8Array(length);
  globalThis.crypto.getRandomValues(bytes);
  let id = '';
  // 248 = 4 × 62: rejecting bytes at or above it keeps every character equally likely.
  for (let i = 0; id.length < length; i++) {
    if (i === bytes.length) {
      globalThis.crypto.getRandomValues(bytes);
      i = 0;
    }
    const byte = bytes[i] as number;
    if (byte < 248) id += ALPHABET[byte % 62];
  }
  return id;
}

/** A new device id: 20 characters, valid as a protocol name. */
export function newDeviceId(): string {
  return randomId(20);
}

/** A new cmid: 22 characters (about 131 bits), unique per (device, conversation) without coordination. */
export function newCmid(): string {
  return randomId(22);
}
