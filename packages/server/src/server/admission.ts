/**
 * How many connections each remote address and each user has open, so that
 * one client cannot hold an unbounded share of the server's sockets and memory.
 * An address is counted from the upgrade on (a flood of connections that never
 * say hello counts too); a user from its successful hello.
 */
export interface AdmissionLimits {
  /** 0: no cap (a proxy in front hides the clients' addresses). */
  readonly maxConnectionsPerAddress: number;
  readonly maxConnectionsPerUser: number;
}

export class Admission {
  private readonly byAddress = new Map<string, number>();
  private readonly byUser = new Map<string, number>();

  constructor(private readonly limits: AdmissionLimits) {}

  /** Counts a new connection from `address`; false (and not counted) when the address is at its cap. */
  admitAddress(address: string): boolean {
    return admit(this.byAddress, address, this.limits.maxConnectionsPerAddress);
  }

  releaseAddress(address: string): void {
    release(this.byAddress, address);
  }

  /** Counts an authenticated connection of `user`; false (and not counted) when the user is at its cap. */
  admitUser(user: string): boolean {
    return admit(this.byUser, user, this.limits.maxConnectionsPerUser);
  }

  releaseUser(user: string): void {
    release(this.byUser, user);
  }
}

function admit(counts: Map<string, number>, key: string, max: number): boolean {
  const open = counts.get(key) ?? 0;
  if (max > 0 && open >= max) return false;
  counts.set(key, open + 1);
  return true;
}

function release(counts: Map<string, number>, key: string): void {
  const open = counts.get(key) ?? 0;
  if (open <= 1) counts.delete(key);
  else counts.set(key, open - 1);
}
