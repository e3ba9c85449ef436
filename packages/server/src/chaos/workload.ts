/**
 * The chat-state part of a chaos run's workload: instead of a plain message, a
 * share of each device's turns edits or deletes one of its user's messages,
 * reacts to any member's, moves the read position (forward through the SDK,
 * now and then backwards in a raw frame the server must ignore), asks for the
 * full conversation list (whose rows' unread the checker recounts), or tries
 * what the protocol forbids (editing or deleting another user's message) so
 * that the server's refusal is on the record. Drawn from the device's own
 * seeded stream, like its sends.
 */
import type { Prng } from './prng.js';

export type ChatOperation = 'edit' | 'delete' | 'react' | 'read' | 'read-back' | 'convs' | 'forbidden';

/** Relative weights of the operations within the chat-state share of turns. */
export const CHAT_MIX: Readonly<Record<ChatOperation, number>> = Object.freeze({
  react: 30,
  read: 25,
  edit: 15,
  delete: 10,
  convs: 10,
  'read-back': 5,
  forbidden: 5,
});

/** The share of turns (0–1) that are chat-state operations by default. */
export const DEFAULT_CHAT_SHARE = 0.3;

const TOTAL = Object.values(CHAT_MIX).reduce((a, b) => a + b, 0);

/** One operation drawn by weight. */
export function pickOperation(rng: Prng): ChatOperation {
  let left = rng.next() * TOTAL;
  for (const [operation, weight] of Object.entries(CHAT_MIX) as [ChatOperation, number][]) {
    left -= weight;
    if (left < 0) return operation;
  }
  return 'react';
}

/** Reaction keys a device picks from: few, so that users' votes on one key meet and turn each other off. */
export const REACTION_KEYS = ['+1', 'heart', 'eyes'] as const;

/**
 * The messages of one conversation a device may act on, as it saw them
 * delivered: its user's own and other users', newest last, at most `keep` of
 * each, and the ones it saw deleted. Bounded, so a long run does not grow it.
 */
export class Targets {
  private readonly own: number[] = [];
  private readonly others: number[] = [];
  private readonly deleted = new Set<number>();

  constructor(private readonly keep = 16) {}

  saw(entry: { seq: number; kind: string; from: string; ref?: number }, user: string): void {
    if (entry.kind === 'msg') {
      const list = entry.from === user ? this.own : this.others;
      if (list.includes(entry.seq) || this.deleted.has(entry.seq)) return;
      list.push(entry.seq);
      list.sort((a, b) => a - b);
      if (list.length > this.keep) list.shift();
    } else if (entry.kind === 'delete' && entry.ref !== undefined) {
      this.deleted.add(entry.ref);
      for (const list of [this.own, this.others]) {
        const at = list.indexOf(entry.ref);
        if (at >= 0) list.splice(at, 1);
      }
      // Only deletes of kept targets matter: the set stays as small as the lists.
      if (this.deleted.size > 4 * this.keep) this.deleted.delete(this.deleted.values().next().value as number);
    }
  }

  /** One of the user's own messages not seen deleted, if any. */
  ownOne(rng: Prng): number | undefined {
    return this.own.length === 0 ? undefined : rng.pick(this.own);
  }

  /** Another user's message not seen deleted, if any. */
  otherOne(rng: Prng): number | undefined {
    return this.others.length === 0 ? undefined : rng.pick(this.others);
  }

  /** Any message not seen deleted, if any. */
  anyOne(rng: Prng): number | undefined {
    const all = [...this.own, ...this.others];
    return all.length === 0 ? undefined : rng.pick(all);
  }
}
