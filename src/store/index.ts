/** The Store contract and its adapters. PostgreSQL's `pg` is loaded only by openPostgresStore's module. */
export type { Store, ConvRecord, ConvKind, Membership, MembershipChange, CommitBatch, ConvListing, LaneRecord } from './types.js';
export { StoreConflictError, MemoryStore } from './memory.js';
export { openSqliteStore, SQLITE_SCHEMA_VERSION, type SqliteStoreOptions, type SqliteDurability } from './sqlite.js';
