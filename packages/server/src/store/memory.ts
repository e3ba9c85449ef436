/**
 * The in-memory reference Store: the contract in its plainest form. Not
 * durable; for tests, examples and as the yardstick other adapters are read
 * against.
 */
import type { Entry } from 'sequent-client/protocol';
import { isOrderableCmid } from './cmid-order.js';
import { entrySize, jsonText } from './rows.js';
import { applyChatState, unreadOf, type MemberState } from './memory-chat.js';
import type { CommitBatch, ConvListing, ConvRecord, ConvsQuery, ConvsSnapshot, ConvsState, EntryMeta, LaneRecord, Membership, ReadPosition, Store } from './types.js';

export interface MemConv {
  record: ConvRecord;
  log: Entry[];
  memberships: Membership[];
  byCmid: Map<string, Entry>;
  lanes: Map<string, LaneRecord>;
  /** Chat state: per user who ever was a member, read positions and the row's version. */
  members: Map<string, MemberState>;
}

const deviceKey = (user: string, device: string) => `${user}\u0000${device}`;
const cmidKey = (user: string, device: string, cmid: string) => `${user}\u0000${device}\u0000${cmid}`;
const copy = <T>(value: T): T => structuredClone(value);
/** What a durable store keeps is the JSON of an entry (-0 becomes 0, undefined fields vanish); the reference keeps the same. */
const asStored = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
}

export class MemoryStore implements Store {
  private convs = new Map<string, MemConv>();
  private meta = new Map<string, string>();
  /** The store-wide change counter: every commit takes the next value as the version of the rows it changes. */
  private version = 0;

  async init(): Promise<void> {}
  async close(): Promise<void> {}

  async getConv(conv: string): Promise<ConvRecord | null> {
    const found = this.convs.get(conv);
    return found ? { ...found.record } : null;
  }

  async recentConvs(sinceTs: number, limit: number): Promise<ConvRecord[]> {
    const recent = [...this.convs.values()].map((c) => c.record).filter((r) => r.last > 0 && r.lastTs >= sinceTs);
    return recent.sort((a, b) => b.lastTs - a.lastTs).slice(0, limit).map((r) => ({ ...r }));
  }

  async getMemberships(conv: string): Promise<Membership[]> {
    return (this.convs.get(conv)?.memberships ?? []).map((m) => ({ ...m }));
  }

  async findByCmid(conv: string, user: string, device: string, cmid: string): Promise<Entry | null> {
    const state = this.convs.get(conv);
    const found = state?.byCmid.get(cmidKey(user, device, cmid));
    // The log holds the entry as edits and deletes have left it.
    return found ? copy(state!.log[found.seq - 1] ?? found) : null;
  }

  async lane(conv: string, user: string, device: string): Promise<LaneRecord> {
    const lane = this.convs.get(conv)?.lanes.get(deviceKey(user, device));
    return lane ? { ...lane } : { lastDseq: 0, minCmid: null, maxCmid: null };
  }

  /** Each commit is applied when called, so calls are applied in order. */
  readonly pipelinesCommits: boolean = true;

  async commit(batch: CommitBatch): Promise<void> {
    // Validate everything against a copy first, so a refused batch writes nothing.
    const next = new Map(this.convs);
    const touched = new Map<string, MemConv>();
    const working = (conv: string): MemConv => {
      let state = touched.get(conv);
      if (!state) {
        const base = next.get(conv);
        if (!base) throw new StoreConflictError(`conversation ${conv} does not exist`);
        state = {
          record: { ...base.record },
          log: base.log,
          memberships: base.memberships.map((m) => ({ ...m })),
          byCmid: new Map(base.byCmid),
          lanes: new Map([...base.lanes].map(([key, lane]) => [key, { ...lane }])),
          members: new Map([...base.members].map(([user, m]) => [user, { ...m }])),
        };
        touched.set(conv, state);
        next.set(conv, state);
      }
      return state;
    };
    const appended = new Map<string, Entry[]>();
    for (const { conv, kind } of batch.newConvs) {
      if (next.has(conv)) throw new StoreConflictError(`conversation ${conv} already exists`);
      next.set(conv, { record: { conv, kind, last: 0, lastTs: 0 }, log: [], memberships: [], byCmid: new Map(), lanes: new Map(), members: new Map() });
    }
    for (const entry of batch.entries) {
      const state = working(entry.conv);
      if (entry.seq !== state.record.last + 1) {
        throw new StoreConflictError(`${entry.conv}: seq ${entry.seq} does not follow ${state.record.last}`);
      }
      if (entry.cmid !== undefined) {
        const key = cmidKey(entry.from, entry.dev, entry.cmid);
        if (state.byCmid.has(key)) throw new StoreConflictError(`${entry.conv}: cmid ${entry.cmid} is already stored`);
        state.byCmid.set(key, entry);
      }
      if (entry.dseq !== undefined) {
        const key = deviceKey(entry.from, entry.dev);
        const lane = state.lanes.get(key) ?? { lastDseq: 0, minCmid: null, maxCmid: null };
        lane.lastDseq = Math.max(lane.lastDseq, entry.dseq);
        if (entry.cmid !== undefined && isOrderableCmid(entry.cmid)) {
          if (lane.minCmid === null || entry.cmid < lane.minCmid) lane.minCmid = entry.cmid;
          if (lane.maxCmid === null || entry.cmid > lane.maxCmid) lane.maxCmid = entry.cmid;
        }
        state.lanes.set(key, lane);
      }
      state.record.last = entry.seq;
      state.record.lastTs = entry.ts;
      const list = appended.get(entry.conv) ?? [];
      list.push(asStored(entry));
      appended.set(entry.conv, list);
    }
    for (const change of batch.memberships) {
      const state = working(change.conv);
      const open = state.memberships.find((m) => m.user === change.user && m.toSeq === null);
      if (change.op === 'add') {
        if (open) throw new StoreConflictError(`${change.conv}: ${change.user} is already a member`);
        state.memberships.push({ conv: change.conv, user: change.user, fromSeq: change.seq, toSeq: null });
      } else {
        if (!open) throw new StoreConflictError(`${change.conv}: ${change.user} is not a member`);
        open.toSeq = change.seq;
      }
    }
    for (const [conv, entries] of appended) {
      const state = next.get(conv)!;
      state.log = [...state.log, ...entries];
    }
    for (const move of batch.reads ?? []) working(move.conv);
    if (touched.size > 0) applyChatState(touched, batch, this.version + 1);
    if (touched.size > 0) this.version++;
    this.convs = next;
  }

  async read(conv: string, afterSeq: number, untilSeq: number, limit: number, maxBytes = Infinity): Promise<Entry[]> {
    const log = this.convs.get(conv)?.log ?? [];
    // seq n sits at index n - 1: the log is gapless from 1.
    const range = log.slice(Math.max(0, afterSeq), Math.max(0, Math.min(untilSeq, afterSeq + limit)));
    const page: Entry[] = [];
    let bytes = 0;
    for (const entry of range) {
      bytes += entrySize(jsonText(entry.body).length, entry.ctx === undefined ? 0 : jsonText(entry.ctx).length);
      if (page.length > 0 && bytes > maxBytes) break;
      page.push(copy(entry));
    }
    return page;
  }

  async listConvs(user: string, limit = Number.MAX_SAFE_INTEGER): Promise<ConvListing[]> {
    return this.listingsOf(user).slice(0, limit);
  }

  async listConvsSince(user: string, since: number, limit: number): Promise<ConvListing[]> {
    return changedSince(this.listingsOf(user), since, limit);
  }

  async convsSnapshot(user: string, query: ConvsQuery): Promise<ConvsSnapshot> {
    // Nothing here awaits before the last row is read: no commit can land in between.
    const all = this.listingsOf(user);
    const state = stateOf(all);
    if (query.since !== undefined && query.since <= state.version) {
      return { ...state, rows: changedSince(all, query.since, query.sinceLimit), changedOnly: true };
    }
    return { ...state, rows: all.slice(0, query.fullLimit), changedOnly: false };
  }

  async convsState(user: string): Promise<ConvsState> {
    return stateOf(this.listingsOf(user));
  }

  /** The user's rows, most recent activity first. */
  private listingsOf(user: string): ConvListing[] {
    const listings: ConvListing[] = [];
    for (const state of this.convs.values()) {
      const mine = state.memberships.filter((m) => m.user === user).at(-1);
      if (!mine) continue;
      const ts = mine.toSeq === null ? state.record.lastTs : (state.log[mine.toSeq - 1]?.ts ?? state.record.lastTs);
      const member = state.members.get(user);
      const read = member?.read ?? 0;
      listings.push({
        conv: state.record.conv,
        last: state.record.last,
        ts,
        fromSeq: mine.fromSeq,
        toSeq: mine.toSeq,
        read,
        unread: unreadOf(state.log, user, read, mine.toSeq ?? state.record.last),
        version: member?.version ?? 0,
      });
    }
    return listings.sort((a, b) => b.ts - a.ts || (a.conv < b.conv ? -1 : a.conv > b.conv ? 1 : 0));
  }

  async readPositions(conv: string): Promise<ReadPosition[]> {
    const members = this.convs.get(conv)?.members ?? new Map<string, MemberState>();
    return [...members].map(([user, m]) => ({ user, read: m.read, publicRead: m.publicRead }));
  }

  async entryMeta(conv: string, seq: number): Promise<EntryMeta | null> {
    const entry = this.convs.get(conv)?.log[seq - 1];
    return entry ? { kind: entry.kind, from: entry.from, deleted: entry.deleted ?? null } : null;
  }

  async getMeta(key: string): Promise<string | null> {
    return this.meta.get(key) ?? null;
  }

  async setMeta(key: string, value: string): Promise<void> {
    this.meta.set(key, value);
  }
}

/** The rows changed after `since`, lowest version first; rows of one version go together, past `limit` if need be. */
function changedSince(rows: readonly ConvListing[], since: number, limit: number): ConvListing[] {
  const changed = rows.filter((l) => l.version > since).sort((a, b) => a.version - b.version || (a.conv < b.conv ? -1 : a.conv > b.conv ? 1 : 0));
  if (changed.length <= limit) return changed;
  const cut = changed[limit - 1]!.version;
  return changed.filter((l, i) => i < limit || l.version === cut);
}

/** The list's version (its newest row's) and unread total (the sum of its rows). */
function stateOf(rows: readonly ConvListing[]): ConvsState {
  return { version: rows.reduce((v, r) => Math.max(v, r.version), 0), unread: rows.reduce((sum, r) => sum + r.unread, 0) };
}
