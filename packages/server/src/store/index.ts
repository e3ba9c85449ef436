/**
 * sequent-server/store: the Store contract and the in-memory store. The adapters
 * are subpaths (`sequent-server/store/sqlite`, `sequent-server/store/postgres`), so
 * importing this loads neither better-sqlite3 nor pg.
 */
export type { Store, ConvRecord, ConvKind, Membership, MembershipChange, CommitBatch, CommitFence, ConvListing, LaneRecord, EntryMeta, ReadMove, ReadPosition, ConvsState, ConvsQuery, ConvsSnapshot } from './types.js';
export { StoreConflictError, MemoryStore } from './memory.js';
export { SlotFencedError } from '../db/pg-fence.js';
