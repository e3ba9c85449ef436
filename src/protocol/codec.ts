/**
 * Text in, a typed client frame or a protocol error out. Pure and socket-free so
 * that every malformed-input rule is testable from literal fixtures.
 */
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { CLIENT_FRAME_SCHEMAS, type ClientFrame, type ClientFrameType } from './frames.js';
import type { ErrorCode } from './errors.js';

export type DecodeResult =
  | {
      ok: true;
      frame: ClientFrame;
      /** A send's body as JSON text (JSON.stringify of it): measured here, reused for the store and the pushes. */
      bodyJson?: string;
    }
  | { ok: false; code: ErrorCode; message: string; id?: number };

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

function withId(result: { ok: false; code: ErrorCode; message: string }, id: number | undefined): DecodeResult {
  return id === undefined ? result : { ...result, id };
}

/**
 * Decodes one client frame. `maxFrame` and `maxBody` are byte limits; a frame over
 * `maxFrame` is refused before it is parsed.
 */
export function decodeClientFrame(text: string, maxFrame: number, maxBody: number): DecodeResult {
  if (!fitsUtf8(text, maxFrame)) {
    // Parsing the oversized frame is wasted work except for one thing: its id lets
    // the client match the error to its request. The transport caps how large it can be.
    return withId({ ok: false, code: 'too_large', message: `frame larger than maxFrame (${maxFrame} bytes)` }, idOfText(text));
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: 'bad_request', message: 'frame is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'bad_request', message: 'frame must be a JSON object' };
  }
  const record = value as Record<string, unknown>;
  const id = requestIdOf(record);
  const type = record['t'];
  const checker = typeof type === 'string' ? checkerFor(type) : undefined;
  if (!checker) {
    return withId({ ok: false, code: 'bad_request', message: `unknown frame type ${JSON.stringify(type)}` }, id);
  }
  if (!checker.Check(value)) {
    const first = checker.Errors(value).First();
    const where = first ? `${first.path || '/'}: ${first.message}` : 'invalid frame';
    return withId({ ok: false, code: 'bad_request', message: `${type as string} ${where}` }, id);
  }
  const frame = value as ClientFrame;
  if (frame.t === 'send') {
    if (frame.body === undefined) {
      return withId({ ok: false, code: 'bad_request', message: 'send /body: required' }, id);
    }
    const bodyJson = JSON.stringify(frame.body);
    if (!fitsUtf8(bodyJson, maxBody)) {
      const bodyBytes = utf8Length(bodyJson);
      return withId({ ok: false, code: 'too_large', message: `body is ${bodyBytes} bytes, more than maxBody (${maxBody})` }, id);
    }
    return { ok: true, frame, bodyJson };
  }
  return { ok: true, frame };
}

export function isClientFrameType(type: unknown): type is ClientFrameType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(CLIENT_FRAME_SCHEMAS, type);
}
