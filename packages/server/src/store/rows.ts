/**
 * What the SQL adapters share: how an Entry becomes a row and back, and the
 * gapless-order rule every commit enforces before it writes.
 */
import type { Entry, EntryKind } from 'sequent-client/protocol';
import { isOrderableCmid } from './cmid-order.js';
import { StoreConflictError } from './memory.js';
import type { CommitBatch } from './types.js';

/** The columns of an `entries` row, in the order entryRowValues gives them. */
export const ENTRY_COLUMNS = 'conv, seq, kind, mid, ts, from_user, dev, cmid, dseq, body, ctx, ref';
/** What a read returns: the written columns and what later entries set (an edit's seq, a delete's seq). */
export const READ_COLUMNS = `${ENTRY_COLUMNS}, edited, deleted`;

/** An entries row as a driver returns it. PostgreSQL BIGINTs arrive as strings. */
export interface EntryRow {
  conv: string;
  seq: number | string;
  kind: string;
  mid: string;
  ts: number | string;
  from_user: string;
  dev: string;
  cmid: string | null;
  dseq: number | string | null;
  body: string;
  ctx: string | null;
  ref: number | string | null;
  edited?: number | string | null;
  deleted?: number | string | null;
}

/**
 * Bodies and ctx are stored as JSON text, never as a JSON column type: text
 * keeps key order, number spelling, "\u0000" and lone surrogates exactly as
 * the wire carried them. `undefined` (no JSON value) is stored as null.
 */
export function jsonText(value: unknown): string {
  const text = JSON.stringify(value === undefined ? null : value);
  if (text === undefined) throw new TypeError(`a ${typeof value} cannot be stored as JSON`);
  return text;
}

const ENCODED = '\u0001';
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * A cmid is any 1–64 characters from the client, but PostgreSQL TEXT cannot hold
 * NUL and both databases store UTF-8, where a lone surrogate would collapse to
 * U+FFFD (two cmids becoming one). Such a cmid, and any starting with the marker
 * U+0001, is stored as the marker plus its JSON spelling: lossless and
 * one-to-one, while ordinary cmids stay readable as themselves.
 */
export function encodeCmid(cmid: string): string {
  const plain = !LONE_SURROGATE.test(cmid) && !cmid.includes('\u0000') && !cmid.startsWith(ENCODED);
  return plain ? cmid : ENCODED + JSON.stringify(cmid);
}

export function decodeCmid(stored: string): string {
  return stored.startsWith(ENCODED) ? (JSON.parse(stored.slice(1)) as string) : stored;
}

/** What an entry counts for against a read's maxBytes: its body and ctx texts, and the rest of its fields at about 128 bytes. */
export function entrySize(bodyLength: number, ctxLength: number): number {
  return 128 + bodyLength + ctxLength;
}

/** cmid, dseq and ctx are absent (not null) when the row has none, as on system entries. */
export function entryFromRow(row: EntryRow): Entry {
  const entry: Entry = {
    conv: row.conv,
    seq: Number(row.seq),
    kind: row.kind as EntryKind,
    mid: row.mid,
    ts: Number(row.ts),
    from: row.from_user,
    dev: row.dev,
    body: JSON.parse(row.body) as unknown,
  };
  if (row.cmid !== null) entry.cmid = decodeCmid(row.cmid);
  if (row.dseq !== null) entry.dseq = Number(row.dseq);
  if (row.ctx !== null) entry.ctx = JSON.parse(row.ctx) as Entry['ctx'];
  if (row.ref !== null) entry.ref = Number(row.ref);
  if (row.edited !== undefined && row.edited !== null) entry.edited = Number(row.edited);
  if (row.deleted !== undefined && row.deleted !== null) entry.deleted = Number(row.deleted);
  return entry;
}

export type EntryRowValues = [string, number, string, string, number, string, string, string | null, number | null, string, string | null, number | null];

/**
 * An entry as the values of an `entries` row, in ENTRY_COLUMNS order. `bodyJson`
 * is the body's JSON text when the caller already has it (the server keeps the
 * text of each send's body): it must be what jsonText(entry.body) would give.
 */
export function entryRowValues(entry: Entry, bodyJson?: string): EntryRowValues {
  return [
    entry.conv,
    entry.seq,
    entry.kind,
    entry.mid,
    entry.ts,
    entry.from,
    entry.dev,
    entry.cmid === undefined ? null : encodeCmid(entry.cmid),
    entry.dseq ?? null,
    bodyJson ?? jsonText(entry.body),
    entry.ctx === undefined ? null : jsonText(entry.ctx),
    entry.ref ?? null,
  ];
}

/** Every entry of a batch as row values, using the body texts the batch carries. */
export function batchRows(batch: CommitBatch): EntryRowValues[] {
  return batch.entries.map((entry, i) => entryRowValues(entry, batch.bodyJson?.[i]));
}

/** Throws unless the row is the next seq of its conversation after `last` (the fence against a second owner or a gap). */
export function validateRowOrder(row: EntryRowValues, last: number): void {
  const [conv, seq, , mid] = row;
  if (!Number.isSafeInteger(seq) || seq !== last + 1) {
    throw new StoreConflictError(`${conv}: seq ${seq} does not follow ${last}`);
  }
  if (typeof mid !== 'string') throw new TypeError(`${conv}#${seq}: mid must be a decimal string`);
}

export type LaneHigh = [conv: string, user: string, dev: string, dseq: number, minCmid: string | null, maxCmid: string | null];

/** Each device lane's highest dseq and orderable-cmid range among the rows: one device_lanes write per lane per commit. */
export function laneHighs(rows: readonly EntryRowValues[]): LaneHigh[] {
  const lanes = new Map<string, LaneHigh>();
  for (const [conv, , , , , from, dev, cmid, dseq] of rows) {
    if (dseq === null) continue;
    const key = `${conv}\u0000${from}\u0000${dev}`;
    let lane = lanes.get(key);
    if (!lane) {
      lane = [conv, from, dev, dseq, null, null];
      lanes.set(key, lane);
    }
    if (dseq > lane[3]) lane[3] = dseq;
    // An encoded cmid (see encodeCmid) starts with U+0001, so it is never orderable.
    if (cmid !== null && isOrderableCmid(cmid)) {
      if (lane[4] === null || cmid < lane[4]) lane[4] = cmid;
      if (lane[5] === null || cmid > lane[5]) lane[5] = cmid;
    }
  }
  return [...lanes.values()];
}

/** Throws unless the row's seq is a whole number and its mid a string: what a commit checks before it asks the database whether the seq follows. */
export function checkRowValues(row: EntryRowValues): void {
  const [conv, seq, , mid] = row;
  if (!Number.isSafeInteger(seq) || seq < 1) throw new StoreConflictError(`${conv}: seq ${seq} is not a positive integer`);
  if (typeof mid !== 'string') throw new TypeError(`${conv}#${seq}: mid must be a decimal string`);
}
