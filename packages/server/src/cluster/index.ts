/** Cluster mode's building blocks: slots, membership, slot leases with their commit fence, the NATS bus and the push filter. */
export { assignSlots, checkSlotCount, DEFAULT_SLOTS, MAX_SLOTS, ownerOf, SlotAssignment, slotOf, weight } from './slots.js';
export { type ClusterDb, type ClusterDbOptions, openClusterDb } from './db.js';
export { clusterPoolConfig, type ClusterSessionOptions, type SessionSettings, sessionSettings } from './pg-session.js';
export { type ClusterTables, clusterTables, ensureClusterSchema, SchemaVersionError, SlotCountMismatchError, storedSlotCount } from './schema.js';
export { fence, fencedTransaction, fenceSql, isFenceRefusal, SlotFencedError } from './fence.js';
export { checkNodeName, type Heartbeat, Membership, type NodeRow } from './membership.js';
export { type SlotLease, type SlotRow, SlotRows } from './slot-rows.js';
export { type LostReason, SlotLeases, type SlotLeasesOptions } from './leases.js';
export { checkPrefix, defaultPrefix, type Subjects, subjects } from './subjects.js';
export { ClusterBus, type ClusterBusOptions, DEFAULT_FORWARD_TIMEOUT_MS, type ForwardResult, type SlotHandler, type UnavailableCause } from './bus.js';
export { type OfferOutcome, PushFilter, type PushFilterOptions, type PushedEntry } from './push-filter.js';
