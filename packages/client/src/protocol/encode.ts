/**
 * Server frames as text, spelled exactly as JSON.stringify would spell them, for
 * the frames the server sends once per message or more: the ack, the push and
 * the sync reply. The server keeps each send's body as the JSON text it
 * validated, so a push is built around that text instead of serializing the
 * body again for every use, and a batch around its store's entry texts.
 */
import type { AckFrame, Entry } from './frames.js';

const str = JSON.stringify as (value: string) => string;

/** A number as JSON spells it: non-finite numbers become null. */
function num(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

/**
 * The members of an entry's JSON object, without the braces, in the order the
 * server builds entries. `bodyJson` must be JSON.stringify(entry.body) when given.
 */
function entryMembers(entry: Entry, bodyJson: string | undefined): string {
  let text = `"conv":${str(entry.conv)},"seq":${num(entry.seq)},"kind":${str(entry.kind)},"mid":${str(entry.mid)},"ts":${num(entry.ts)},"from":${str(entry.from)},"dev":${str(entry.dev)}`;
  const body = bodyJson ?? (JSON.stringify(entry.body) as string | undefined);
  if (body !== undefined) text += `,"body":${body}`;
  if (entry.cmid !== undefined) text += `,"cmid":${str(entry.cmid)}`;
  if (entry.dseq !== undefined) text += `,"dseq":${num(entry.dseq)}`;
  if (entry.ctx !== undefined) text += `,"ctx":${JSON.stringify(entry.ctx)}`;
  if (entry.ref !== undefined) text += `,"ref":${num(entry.ref)}`;
  if (entry.edited !== undefined) text += `,"edited":${num(entry.edited)}`;
  if (entry.deleted !== undefined) text += `,"deleted":${num(entry.deleted)}`;
  return text;
}

/** The push of an entry: the same text as JSON.stringify({ t: 'msg', ...entry }) for an entry built in protocol order. */
export function encodeMsgFrame(entry: Entry, bodyJson?: string): string {
  return `{"t":"msg",${entryMembers(entry, bodyJson)}}`;
}

/** An ack: the same text as JSON.stringify(ack). */
export function encodeAck(ack: AckFrame): string {
  return `{"t":"ack","id":${num(ack.id)},"conv":${str(ack.conv)},"cmid":${str(ack.cmid)},"dseq":${num(ack.dseq)},"seq":${num(ack.seq)},"mid":${str(ack.mid)},"ts":${num(ack.ts)}}`;
}

/**
 * A sync reply around its entries' JSON texts: the same text as
 * JSON.stringify({ t: 'batch', id, conv, msgs, last }) when each text is
 * JSON.stringify of the entry.
 */
export function encodeBatch(id: number, conv: string, entryTexts: readonly string[], last: number): string {
  return `{"t":"batch","id":${num(id)},"conv":${str(conv)},"msgs":[${entryTexts.join(',')}],"last":${num(last)}}`;
}
