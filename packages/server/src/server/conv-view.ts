/**
 * What the read-side requests (`sync`, `info`, `typing`) need to know of a
 * conversation: whether it exists, who may read which seqs, who its members are
 * and what is durable. On one node the owner's memory answers (`ConvState` is a
 * view); in a cluster a node that does not own the conversation answers from
 * the store, so any node serves reads and only writes go to the owner.
 */
import { parseConvId, type ConvRef } from 'sequent-client/protocol';
import type { Store } from '../store/index.js';
import { loadConvState } from './owner.js';

export interface ConvView {
  readonly conv: string;
  readonly ref: ConvRef;
  /** A group exists once its create entry is there; a DM always exists. */
  readonly exists: boolean;
  /** The newest durable seq. */
  readonly committed: number;
  /** Current members. */
  readonly memberList: readonly string[];
  isMember(user: string): boolean;
  /** The seqs the user may read now (its latest stretch, cut at what is durable); null when none. */
  readableRange(user: string): { from: number; until: number } | null;
}

export interface ConvViews {
  /** The conversation's view; null for a malformed id. */
  get(conv: string): Promise<ConvView | null>;
}

/** Views read from the store on every request: right on any node, owner or not, at two queries each. */
export class StoreConvViews implements ConvViews {
  constructor(private readonly store: Store) {}

  async get(conv: string): Promise<ConvView | null> {
    const ref = parseConvId(conv);
    return ref ? loadConvState(this.store, ref, false) : null;
  }
}
