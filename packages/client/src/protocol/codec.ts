/**
 * Text in, a typed client frame or a protocol error out. Pure and socket-free so
 * that every malformed-input rule is testable from literal fixtures.
 */
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { CLIENT_FRAME_SCHEMAS, type ClientFrame, type ClientFrameType, type SendFrame } from './frames.js';
import { MAX_CTX_BYTES, MAX_JSON_DEPTH, MAX_REACTION_KEY } from './limits.js';
import type { ErrorCode } from './errors.js';

export type DecodeResult =
  | {
      ok: true;
      frame: ClientFrame;
      /** A send's body as JSON text (JSON.stringify of it): measured here, reused for the store and the pushes. */
      bodyJson?: string;
    }
  | {
      ok: false;
      code: ErrorCode;
      message: string;
      id?: number;
      /** The frame's `t` when it names a known frame type: a refused hello is answered before the close. */
      type?: ClientFrameType;
      /** Where the frame first fails its schema (a JSON pointer such as "/token"). */
      path?: string;
    };

type Refusal = Extract<DecodeResult, { ok: false }>;

let checkers: Map<string, TypeCheck<TSchema>> | undefined;

function checkerFor(type: string): TypeCheck<TSchema> | undefined {
  if (!checkers) {
    checkers = new Map();
    for (const [name, schema] of Object.entries(CLIENT_FRAME_SCHEMAS)) {
      checkers.set(name, TypeCompiler.Compile(schema));
    }
  }
  return checkers.get(type);
}

const encoder = new TextEncoder();

/** UTF-8 byte length without allocating for pure-ASCII strings. */
export function utf8Length(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return encoder.encode(text).length;
  }
  return text.length;
}

/** Whether text is at most `max` bytes as UTF-8, counting only when it could be more: a UTF-16 unit is at most 3 bytes. */
function fitsUtf8(text: string, max: number): boolean {
  return text.length * 3 <= max || (text.length <= max && utf8Length(text) <= max);
}

function requestIdOf(value: Record<string, unknown>): number | undefined {
  const id = value['id'];
  return Number.isSafeInteger(id) && (id as number) >= 0 ? (id as number) : undefined;
}

function idOfText(text: string): number | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? requestIdOf(value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function refuse(code: ErrorCode, message: string, id?: number, type?: ClientFrameType, path?: string): Refusal {
  const refusal: Refusal = { ok: false, code, message };
  if (id !== undefined) refusal.id = id;
  if (type !== undefined) refusal.type = type;
  if (path !== undefined) refusal.path = path;
  return refusal;
}

/**
 * Whether a JSON value nests arrays and objects deeper than `max` (a scalar is
 * depth 0). Iterative: the point is to refuse values that recursion would choke on.
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: [object, number][] = [[value, 1]];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [node, depth] = next;
    if (depth > max) return true;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * Decodes one client frame. `maxFrame` and `maxBody` are byte limits; a frame over
 * `maxFrame` is refused before it is parsed. Never throws: any input gets a result.
 */
export function decodeClientFrame(text: string, maxFrame: number, maxBody: number): DecodeResult {
  try {
    return decode(text, maxFrame, maxBody);
  } catch {
    // Every known shape is refused above with a precise message; this is the net under them.
    return refuse('bad_request', 'frame could not be read');
  }
}

function decode(text: string, maxFrame: number, maxBody: number): DecodeResult {
  if (!fitsUtf8(text, maxFrame)) {
    // Parsing the oversized frame is wasted work except for one thing: its id lets
    // the client match the error to its request. The transport caps how large it can be.
    return refuse('too_large', `frame larger than maxFrame (${maxFrame} bytes)`, idOfText(text));
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return refuse('bad_request', 'frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return refuse('bad_request', 'frame must be a JSON object');
  }
  const record = value as Record<string, unknown>;
  const id = requestIdOf(record);
  const t = record['t'];
  const type = isClientFrameType(t) ? t : undefined;
  if (type === undefined) {
    return refuse('bad_request', `unknown frame type ${typeof t === 'string' ? JSON.stringify(t.slice(0, 64)) : `(a ${t === null ? 'null' : typeof t})`}`, id);
  }
  const checker = checkerFor(type)!;
  if (!checker.Check(value)) {
    const first = checker.Errors(value).First();
    const where = first ? `${first.path || '/'}: ${first.message}` : 'invalid frame';
    return refuse('bad_request', `${type} ${where}`, id, type, first?.path);
  }
  const frame = value as ClientFrame;
  if (frame.t === 'send') return decodeSend(frame, maxBody, id);
  if (frame.t === 'sync' && (frame.after === undefined) === (frame.before === undefined)) {
    return refuse('bad_request', 'sync: exactly one of after and before', id, 'sync');
  }
  return { ok: true, frame };
}

/** The chat-state rules of a send that the frame alone decides: which kinds take `ref`, and the bodies of delete and react. */
function kindProblem(frame: SendFrame): string | undefined {
  const kind = frame.kind ?? 'msg';
  if (kind === 'msg') return frame.ref === undefined ? undefined : 'send /ref: only edit, delete and react take ref';
  if (frame.ref === undefined) return `send /ref: required with kind ${kind}`;
  if (kind === 'delete' && frame.body !== null) return 'send /body: a delete has body null';
  if (kind === 'react') return reactBodyProblem(frame.body);
  return undefined;
}

function reactBodyProblem(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'send /body: a reaction is {"key": string, "on": boolean}';
  const { key, on } = body as Record<string, unknown>;
  if (typeof key !== 'string') return 'send /body/key: required string';
  const length = [...key].length;
  if (length < 1 || length > MAX_REACTION_KEY) return `send /body/key: 1 to ${MAX_REACTION_KEY} characters`;
  if (typeof on !== 'boolean') return 'send /body/on: required boolean';
  return undefined;
}

/** A send's body and ctx: nested at most MAX_JSON_DEPTH, and together at most maxBody bytes, so that whatever is acked can be stored and pushed. */
function decodeSend(frame: SendFrame, maxBody: number, id: number | undefined): DecodeResult {
  if (frame.body === undefined) return refuse('bad_request', 'send /body: required', id, 'send');
  const problem = kindProblem(frame);
  if (problem !== undefined) return refuse('bad_request', problem, id, 'send');
  if (nestsDeeperThan(frame.body, MAX_JSON_DEPTH)) {
    return refuse('bad_request', `send /body: nests deeper than ${MAX_JSON_DEPTH} levels`, id, 'send');
  }
  let ctxBytes = 0;
  if (frame.ctx !== undefined) {
    if (nestsDeeperThan(frame.ctx, MAX_JSON_DEPTH)) {
      return refuse('bad_request', `send /ctx: nests deeper than ${MAX_JSON_DEPTH} levels`, id, 'send');
    }
    const ctxJson = JSON.stringify(frame.ctx);
    if (!fitsUtf8(ctxJson, MAX_CTX_BYTES)) {
      return refuse('too_large', `ctx is ${utf8Length(ctxJson)} bytes, more than ${MAX_CTX_BYTES}`, id, 'send');
    }
    ctxBytes = utf8Length(ctxJson);
  }
  const bodyJson = JSON.stringify(frame.body);
  if (!fitsUtf8(bodyJson, maxBody - ctxBytes)) {
    const bytes = utf8Length(bodyJson) + ctxBytes;
    const what = ctxBytes > 0 ? 'body and ctx are' : 'body is';
    return refuse('too_large', `${what} ${bytes} bytes, more than maxBody (${maxBody})`, id, 'send');
  }
  return { ok: true, frame, bodyJson };
}

export function isClientFrameType(type: unknown): type is ClientFrameType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(CLIENT_FRAME_SCHEMAS, type);
}
