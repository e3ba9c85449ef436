/**
 * Which slot a conversation is in, and which live node a slot belongs to.
 *
 * `slotOf` must give the same answer on every node and every release for as long
 * as a database lives (the slot count is stored with it), so it is defined by a
 * standard: the first four bytes of SHA-256 of the conversation id's UTF-8 bytes,
 * big-endian, modulo the slot count. No seed, no platform dependence.
 *
 * Ownership is rendezvous (highest-random-weight) hashing: every node scores
 * every slot with a hash of (slot, node) and the highest score wins. When a node
 * joins it takes only the slots where it now scores highest (about 1/N of them)
 * and when one leaves only its own slots move, each to its runner-up — no ring,
 * no virtual nodes, no table to agree on beyond the list of live names.
 */
import { createHash } from 'node:crypto';
import { rememberUpTo } from './memo.js';

/** Slots of a new cluster database; fixed for its lifetime. */
export const DEFAULT_SLOTS = 1024;
/** Upper bound on the slot count: lease rows are created for every slot up front. */
export const MAX_SLOTS = 65_536;

export function checkSlotCount(slots: number): void {
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) {
    throw new RangeError(`the slot count must be an integer from 1 to ${MAX_SLOTS}, got ${slots}`);
  }
}

/** Conversations whose slot is remembered (for the slot count last asked about). */
const SLOTS_REMEMBERED = 10_000;
let remembered: { slots: number; of: (conv: string) => number } | undefined;

/**
 * The slot of a conversation among `slots` slots. Asked on every send, commit and
 * status of a cluster node, and a SHA-256 each time showed in its profiles, so the
 * answers are remembered; a process uses one slot count, so only the last one's are.
 */
export function slotOf(conv: string, slots: number): number {
  if (remembered?.slots !== slots) {
    remembered = { slots, of: rememberUpTo(SLOTS_REMEMBERED, (id: string) => createHash('sha256').update(id, 'utf8').digest().readUInt32BE(0) % slots) };
  }
  return remembered.of(conv);
}

/** A node's score for a slot: 48 bits of SHA-256 of "slot/node", an exact JS integer. */
export function weight(slot: number, node: string): number {
  return createHash('sha256').update(`${slot}/${node}`, 'utf8').digest().readUIntBE(0, 6);
}

/** The node that wins `slot` among `nodes`; undefined when there are none. Ties (vanishingly rare) go to the greater name. */
export function ownerOf(slot: number, nodes: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const node of nodes) {
    const w = weight(slot, node);
    if (w > bestWeight || (w === bestWeight && best !== undefined && node > best)) {
      best = node;
      bestWeight = w;
    }
  }
  return best;
}

/** The winner of every slot among `nodes` (index = slot). */
export function assignSlots(slots: number, nodes: readonly string[]): (string | undefined)[] {
  const unique = [...new Set(nodes)];
  const owners = new Array<string | undefined>(slots);
  for (let slot = 0; slot < slots; slot++) owners[slot] = ownerOf(slot, unique);
  return owners;
}

/**
 * Rendezvous assignment with a cache keyed by the set of live names: nodes
 * recompute it every tick, and it only changes when membership does.
 */
export class SlotAssignment {
  private key = '';
  private owners: (string | undefined)[] = [];

  constructor(readonly slots: number) {
    checkSlotCount(slots);
  }

  /** Owner of every slot among `nodes` (order and duplicates do not matter). */
  over(nodes: readonly string[]): readonly (string | undefined)[] {
    const sorted = [...new Set(nodes)].sort();
    const key = JSON.stringify(sorted);
    if (key !== this.key) {
      this.owners = assignSlots(this.slots, sorted);
      this.key = key;
    }
    return this.owners;
  }

  /** The slots `node` wins among `nodes`. */
  wonBy(node: string, nodes: readonly string[]): number[] {
    const owners = this.over(nodes);
    const won: number[] = [];
    for (let slot = 0; slot < owners.length; slot++) if (owners[slot] === node) won.push(slot);
    return won;
  }
}
