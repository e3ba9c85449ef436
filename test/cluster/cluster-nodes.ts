/** Test nodes of the lease layer: each with its own pool, as separate processes would have. */
import { type ClusterDb, openClusterDb } from '../../packages/server/src/cluster/db.js';
import { type LostReason, SlotLeases, type SlotLeasesOptions } from '../../packages/server/src/cluster/leases.js';

export interface TestNode {
  name: string;
  db: ClusterDb;
  leases: SlotLeases;
  acquired: { slot: number; epoch: number; at: number }[];
  lost: { slot: number; epoch: number; reason: LostReason }[];
  errors: unknown[];
  superseded: boolean;
  /** Stops the leases (gracefully unless halted) and closes the pool. */
  close(): Promise<void>;
}

export async function startNode(
  url: string,
  name: string,
  config: { leaseMs: number; slots: number } & Partial<Omit<SlotLeasesOptions, 'db' | 'node'>>,
): Promise<TestNode> {
  const { leaseMs, slots, ...rest } = config;
  const db = await openClusterDb({ url, leaseMs, slots, maxConnections: 3 });
  const node: Partial<TestNode> & Pick<TestNode, 'acquired' | 'lost' | 'errors'> = { name, db, acquired: [], lost: [], errors: [], superseded: false };
  try {
    node.leases = await SlotLeases.start({
      ...rest,
      db,
      node: name,
      onAcquired: (slot, epoch) => node.acquired.push({ slot, epoch, at: performance.now() }),
      onLost: (slot, epoch, reason) => node.lost.push({ slot, epoch, reason }),
      onError: (error) => node.errors.push(error),
      onSuperseded: () => {
        node.superseded = true;
      },
    });
  } catch (error) {
    await db.close();
    throw error;
  }
  node.close = async () => {
    await node.leases!.stop();
    await db.close();
  };
  return node as TestNode;
}

export function heldSlots(node: TestNode): number[] {
  return node.leases.held().map((h) => h.slot);
}
