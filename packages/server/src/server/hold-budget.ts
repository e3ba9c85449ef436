/**
 * What sends held back for a missing dseq may cost, counted over all of a
 * device's conversations and all of a user's devices: a client that opens gaps
 * in many conversations at once must not hold more than its share of memory.
 */
export interface HoldLimits {
  readonly maxHeldPerDevice: number;
  readonly maxHeldBytesPerDevice: number;
  readonly maxHeldBytesPerUser: number;
}

interface Held {
  count: number;
  bytes: number;
}

export class HoldBudget {
  private readonly byDevice = new Map<string, Held>();
  private readonly byUser = new Map<string, Held>();

  constructor(private readonly limits: HoldLimits) {}

  /** Takes room for one held send of `bytes`; false, taking nothing, when the device or its user has no more. */
  reserve(user: string, device: string, bytes: number): boolean {
    const mine = this.byDevice.get(deviceKey(user, device)) ?? { count: 0, bytes: 0 };
    const theirs = this.byUser.get(user) ?? { count: 0, bytes: 0 };
    if (mine.count + 1 > this.limits.maxHeldPerDevice) return false;
    if (mine.bytes + bytes > this.limits.maxHeldBytesPerDevice || theirs.bytes + bytes > this.limits.maxHeldBytesPerUser) return false;
    this.byDevice.set(deviceKey(user, device), { count: mine.count + 1, bytes: mine.bytes + bytes });
    this.byUser.set(user, { count: theirs.count + 1, bytes: theirs.bytes + bytes });
    return true;
  }

  /** Gives back what reserve() took, once the send is no longer held. */
  free(user: string, device: string, bytes: number): void {
    shrink(this.byDevice, deviceKey(user, device), bytes);
    shrink(this.byUser, user, bytes);
  }
}

function deviceKey(user: string, device: string): string {
  return `${user}\u0000${device}`;
}

function shrink(map: Map<string, Held>, key: string, bytes: number): void {
  const held = map.get(key);
  if (!held) return;
  if (held.count <= 1) map.delete(key);
  else map.set(key, { count: held.count - 1, bytes: held.bytes - bytes });
}
