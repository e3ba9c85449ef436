/**
 * The Store contract: the durable truth of every conversation. The server keeps
 * ordering decisions (seq, dseq, membership at a seq) in one place, the
 * conversation's owner, and uses the store only to make them durable and to read
 * them back. Every adapter (SQLite, PostgreSQL, …) passes one conformance suite:
 * test/store/conformance.ts.
 */
import type { Entry } from 'sequent-client/protocol';

export type ConvKind = 'dm' | 'group';

export interface ConvRecord {
  conv: string;
  kind: ConvKind;
  /** The newest seq in the log (0 for none). */
  last: number;
  /** The `ts` of the newest entry (0 for none). */
  lastTs: number;
}

/** One stretch of membership: the user may read seqs in [fromSeq, toSeq] (toSeq null = still a member). */
export interface Membership {
  conv: string;
  user: string;
  fromSeq: number;
  toSeq: number | null;
}

export type MembershipChange =
  | { op: 'add'; conv: string; user: string; seq: number }
  | { op: 'remove'; conv: string; user: string; seq: number };

/**
 * What one group commit makes durable, atomically: all of it or none of it.
 * Entries of one conversation come in ascending seq and continue its log without a gap;
 * `newConvs` are created before the entries are written.
 */
export interface CommitBatch {
  newConvs: { conv: string; kind: ConvKind }[];
  entries: Entry[];
  memberships: MembershipChange[];
  /**
   * Optional, index-aligned with `entries`: each body's JSON text, exactly
   * `JSON.stringify(entry.body)`, when the caller has it already. An adapter that
   * stores bodies as text uses it instead of serializing every body again.
   */
  bodyJson?: readonly (string | undefined)[];
  /**
   * Chat state: read positions moved by `read` requests, applied after the
   * entries, forward only (a lower seq than the stored one changes nothing).
   * Every entry also moves its sender's position (read and public) to its seq,
   * without being listed here.
   */
  reads?: readonly ReadMove[];
  /**
   * Cluster mode: per conversation of the batch, the slot lease it is committed
   * under. An adapter whose data several nodes share (PostgreSQL) checks, inside
   * the commit's transaction, that every listed slot is still held at its epoch,
   * stores the epoch on each of the conversation's entries, and refuses the whole
   * batch with SlotFencedError when one is not; every conversation the batch
   * touches must then be listed (TypeError otherwise). Absent: unfenced, as on a
   * single node (entries get epoch 0). Single-node adapters (memory, SQLite)
   * ignore it.
   */
  fences?: ReadonlyMap<string, CommitFence>;
}

/** The slot lease a conversation is committed under: its slot and the epoch its holder acquired it at. */
export interface CommitFence {
  slot: number;
  epoch: number;
}

export interface ReadMove {
  conv: string;
  user: string;
  seq: number;
  /** False for a private read: only the user's own position moves, not the one others see. */
  public: boolean;
}

/** A member's read positions in one conversation. */
export interface ReadPosition {
  user: string;
  read: number;
  /** The last position others may see (a private read leaves it behind). */
  publicRead: number;
}

/** What an edit, delete or reaction needs to know of its target. */
export interface EntryMeta {
  kind: Entry['kind'];
  from: string;
  /** The seq of the delete that removed it, or null. */
  deleted: number | null;
}

/** The caller's list state: its version, and its unread count over every conversation. */
export interface ConvsState {
  version: number;
  unread: number;
}

/** What one `convs` reply reads: the rows changed since `since`, or the whole list. */
export interface ConvsQuery {
  /** the version the client has; undefined (or one the server never issued) asks for the whole list */
  since: number | undefined;
  /** rows of a `since` page (never splitting one version, as listConvsSince) */
  sinceLimit: number;
  /** rows of the whole list, most recent first */
  fullLimit: number;
}

/** One `convs` reply's data, read in one snapshot: the total agrees with the rows. */
export interface ConvsSnapshot extends ConvsState {
  rows: ConvListing[];
  /** true: `rows` are the changes since `since`; false: the whole list (cut at fullLimit) */
  changedOnly: boolean;
}

/**
 * A device's lane in one conversation as stored. `minCmid`/`maxCmid` bound every
 * stored cmid of the lane that is orderable (isOrderableCmid): a new cmid outside
 * that range cannot be a resend, so the server need not look it up. Null when the
 * lane has no orderable cmid stored.
 */
export interface LaneRecord {
  /** 0 when the device has sent nothing to the conversation. */
  lastDseq: number;
  minCmid: string | null;
  maxCmid: string | null;
}

export interface ConvListing {
  conv: string;
  last: number;
  ts: number;
  fromSeq: number;
  toSeq: number | null;
  /** Chat state: the user's read position. */
  read: number;
  /** Chat state: `msg` entries in (read, min(last, toSeq)] by others and not deleted. */
  unread: number;
  /** Chat state: the user's version at which this row last changed. */
  version: number;
}

export interface Store {
  /** Creates tables if needed. Idempotent. */
  init(): Promise<void>;
  close(): Promise<void>;

  getConv(conv: string): Promise<ConvRecord | null>;
  /**
   * The conversations with entries whose newest entry has a ts of at least
   * `sinceTs`, newest first, at most `limit`. A cluster node that takes a slot over
   * pushes their heads again, in case their old owner died between a commit and its
   * pushes. Rare, so it may scan.
   */
  recentConvs(sinceTs: number, limit: number): Promise<ConvRecord[]>;
  /** Every membership stretch of the conversation, oldest first. */
  getMemberships(conv: string): Promise<Membership[]>;
  /** The entry a (user, device) sent with this cmid into conv, if any. Dedup lasts as long as the log. */
  findByCmid(conv: string, user: string, device: string, cmid: string): Promise<Entry | null>;
  /** What is stored of a device's lane in conv: its highest dseq, and the range its orderable cmids span. */
  lane(conv: string, user: string, device: string): Promise<LaneRecord>;

  /**
   * Atomically and durably writes the batch. Rejects (writing nothing) if an entry's
   * seq is already taken or a (conv, user, device, cmid) repeats — a fence against
   * two owners of one conversation — with StoreConflictError; and, on an adapter
   * that checks `batch.fences`, when a slot moved past the epoch given, with
   * SlotFencedError.
   */
  commit(batch: CommitBatch): Promise<void>;

  /**
   * True when commit() may be called again before earlier calls settle: the
   * batches are then applied in call order and settle in call order. An adapter
   * may write several of them in one transaction; if that transaction fails,
   * every batch in it is rejected, having written nothing. Absent or false: the
   * caller waits for each commit to settle before the next.
   */
  readonly pipelinesCommits?: boolean;

  /**
   * Entries with afterSeq < seq <= untilSeq, ascending, at most `limit`; with
   * `maxBytes`, only as many as fit in it by entrySize (but always the first),
   * so that a page of large entries is never built in memory whole.
   */
  read(conv: string, afterSeq: number, untilSeq: number, limit: number, maxBytes?: number): Promise<Entry[]>;
  /**
   * Optional: the entries read() returns, each as its JSON text, spelled exactly
   * as JSON.stringify(entry) spells what read() gives. A sync reply is built
   * around these texts (an adapter that keeps entries as JSON text can hand it
   * over without building and serializing objects); without it, from read().
   */
  readJson?(conv: string, afterSeq: number, untilSeq: number, limit: number, maxBytes?: number): Promise<string[]>;
  /**
   * The conversations the user has a membership in (its latest stretch), most
   * recent activity first, at most `limit`. A removed member's row shows the
   * time of its removal entry: it learns nothing of what came after.
   */
  listConvs(user: string, limit?: number): Promise<ConvListing[]>;
  /**
   * Chat state: the user's rows whose version is above `since`, lowest version
   * first, at most `limit` — except that rows sharing one version are never split
   * (a page may then pass `limit`): asking again from the last row's version
   * misses nothing. Reads only those rows (an index on the user's version).
   */
  listConvsSince(user: string, since: number, limit: number): Promise<ConvListing[]>;
  /** Chat state: the user's version (0 before any row) and unread total, from one snapshot. */
  convsState(user: string): Promise<ConvsState>;
  /** Chat state: the version, the unread total and the rows of one `convs` reply, all from one snapshot. */
  convsSnapshot(user: string, query: ConvsQuery): Promise<ConvsSnapshot>;
  /** Chat state: the read positions of everyone who ever was a member. */
  readPositions(conv: string): Promise<ReadPosition[]>;
  /** Chat state: the kind, author and delete state of one entry, or null when there is no such seq. */
  entryMeta(conv: string, seq: number): Promise<EntryMeta | null>;

  /** A small key/value table for server settings (the generated token secret, …). */
  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;
}
