/**
 * Several fault proxies (one per cluster node) seen as one by the runner: a
 * connection fault is aimed at a connection picked among all of them, and a
 * setting applies to every one. Connection ids are `node × 1e6 + id`, so the
 * first proxy's ids are its own (a single server's history reads as before).
 */
import type { FaultOptions, FaultProxy, TargetedFault } from './proxy.js';

const SPAN = 1_000_000;

export interface ProxyGroup {
  readonly proxies: readonly FaultProxy[];
  open(): number[];
  inject(connection: number, fault: TargetedFault): boolean;
  setFaults(faults: Partial<FaultOptions>): void;
  /** Connections cut by faults and by calls, over every proxy. */
  cuts(): number;
  close(): Promise<void>;
}

export function proxyGroup(proxies: readonly FaultProxy[]): ProxyGroup {
  return {
    proxies,
    open: () => proxies.flatMap((p, i) => p.open().map((id) => i * SPAN + id)),
    inject: (connection, fault) => proxies[Math.floor(connection / SPAN)]?.inject(connection % SPAN, fault) ?? false,
    setFaults: (faults) => {
      for (const p of proxies) p.setFaults(faults);
    },
    cuts: () => proxies.reduce((n, p) => n + p.stats.cutByFault + p.stats.cutByCall, 0),
    close: async () => {
      await Promise.all(proxies.map((p) => p.close()));
    },
  };
}
