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
  /** Upgraded connections whose hello is not answered yet, over all addresses; 0: no cap. */
  readonly maxPendingHellos: number;
}

/** What a client is told when the server has as many hellos waiting as it takes: come back after this. */
export const RETRY_AFTER_SECONDS = 1;
/** The whole answer to an upgrade refused for load: no WebSocket handshake, no session, no token check. */
export const BUSY_RESPONSE = `HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${RETRY_AFTER_SECONDS}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;

export class Admission {
  private readonly byAddress = new Map<string, number>();
  private readonly byUser = new Map<string, number>();
  private pending = 0;
  private readonly pendingByAddress = new Map<string, number>();

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

  /** Hellos waiting to be answered now. */
  get pendingHellos(): number {
    return this.pending;
  }

  /**
   * Counts an upgrade from `address` whose hello is to come; false (and not counted) when as many
   * are waiting as the server takes, or an eighth of that from this address: one host that opens
   * connections and never says hello cannot hold the server's handshakes (the hello timeout ends
   * its sockets). The caller calls `release` once the hello is read or the socket is gone.
   */
  admitHandshake(address: string): { release: () => void } | undefined {
    const max = this.limits.maxPendingHellos;
    if (max > 0 && this.pending >= max) return undefined;
    // Behind a proxy (no per-address cap) every client has the proxy's address: no share per address either.
    const perAddress = max === 0 || this.limits.maxConnectionsPerAddress === 0 ? 0 : Math.max(1, Math.floor(max / 8));
    if (!admit(this.pendingByAddress, address, perAddress)) return undefined;
    this.pending++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.pending--;
        release(this.pendingByAddress, address);
      },
    };
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
