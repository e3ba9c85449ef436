/**
 * What the SQL adapters share: how an Entry becomes a row and back, and the
 * gapless-order rule every commit enforces before it writes.
 */
import type { Entry, EntryKind } from '../protocol/index.js';
import { StoreConflictError } from './memory.js';

/** The columns of an `entries` row, in the order entryRowValues gives them. */
export const ENTRY_COLUMNS = 'conv, seq, kind, mid, ts, from_user, dev, cmid, dseq, body, ctx';

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
  return entry;
}

/** Throws unless `entry` is the next seq after `last` (the fence against a second owner or a gap). */
export function validateEntryOrder(entry: Entry, last: number): void {
  if (!Number.isSafeInteger(entry.seq) || entry.seq !== last + 1) {
    throw new StoreConflictError(`${entry.conv}: seq ${entry.seq} does not follow ${last}`);
  }
  if (typeof entry.mid !== 'string') throw new TypeError(`${entry.conv}#${entry.seq}: mid must be a decimal string`);
}

export type EntryRowValues = [string, number, string, string, number, string, string, string | null, number | null, string, string | null];

/** An entry as the values of an `entries` row, in ENTRY_COLUMNS order. */
export function entryRowValues(entry: Entry): EntryRowValues {
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
    jsonText(entry.body),
    entry.ctx === undefined ? null : jsonText(entry.ctx),
  ];
}

/** Each device lane's highest dseq among the entries: one device_lanes write per lane per commit. */
export function laneHighs(entries: readonly Entry[]): [conv: string, user: string, dev: string, dseq: number][] {
  const lanes = new Map<string, [string, string, string, number]>();
  for (const entry of entries) {
    if (entry.dseq === undefined) continue;
    const key = `${entry.conv}\u0000${entry.from}\u0000${entry.dev}`;
    const known = lanes.get(key);
    if (!known || entry.dseq > known[3]) lanes.set(key, [entry.conv, entry.from, entry.dev, entry.dseq]);
  }
  return [...lanes.values()];
}
