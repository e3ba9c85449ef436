/**
 * A request for a conversation another node owns, on its way there and back.
 * The gateway node sends the decoded frame with who sent it; the owner runs it
 * as if it came from a local connection (a `ForwardedOrigin`) and replies with
 * the one frame it answers — `ack`, `ok` or `error` — which the gateway writes
 * to the client unchanged. The gateway never answers for the owner: no ack
 * without the owner's commit, and `unavailable` when the owner cannot be asked.
 *
 * NATS is trusted like the database: the owner does not re-check the frame's
 * schema or the sender's token, which the gateway did.
 */
import { encodeAck, type AckFrame, type CreateFrame, type ErrorCode, type MembersFrame, type ReadFrame, type SendFrame, type ServerFrame } from 'sequent-client/protocol';
import type { Origin } from '../server/origin.js';

export type OwnerFrame = SendFrame | CreateFrame | MembersFrame | ReadFrame;

/** What crosses the bus: the frame (a send without its body, which travels as its JSON text), and its origin. */
interface ForwardedRequest {
  f: OwnerFrame;
  /** A send's body as the JSON text the gateway measured. */
  b?: string;
  u: string;
  d: string;
  c: number;
}

export interface Forwarded {
  frame: OwnerFrame;
  bodyJson: string | undefined;
  user: string;
  device: string;
  connection: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeForwarded(origin: Origin, frame: OwnerFrame, bodyJson?: string): Uint8Array {
  let request: ForwardedRequest;
  if (frame.t === 'send') {
    const { body: _body, ...withoutBody } = frame;
    request = { f: withoutBody as SendFrame, b: bodyJson ?? JSON.stringify(frame.body), u: origin.user, d: origin.device, c: origin.connection };
  } else {
    request = { f: frame, u: origin.user, d: origin.device, c: origin.connection };
  }
  return encoder.encode(JSON.stringify(request));
}

export function decodeForwarded(bytes: Uint8Array): Forwarded {
  const request = JSON.parse(decoder.decode(bytes)) as ForwardedRequest;
  const frame = request.f;
  if (frame.t === 'send') frame.body = JSON.parse(request.b ?? 'null') as unknown;
  return { frame, bodyJson: request.b, user: request.u, device: request.d, connection: request.c };
}

/**
 * The origin of a forwarded request on the owner's node: its first answer is
 * the reply. Every owner request is answered exactly once (a held send that
 * is replaced is answered with an error then), so there is never a second.
 */
export class ForwardedOrigin implements Origin {
  readonly user: string;
  readonly device: string;
  readonly connection: number;
  /** The reply frame's JSON, once the owner has decided. */
  readonly answer: Promise<string>;
  private resolve!: (text: string) => void;
  private answered = false;

  constructor(forwarded: Forwarded) {
    this.user = forwarded.user;
    this.device = forwarded.device;
    this.connection = forwarded.connection;
    this.answer = new Promise((resolve) => (this.resolve = resolve));
  }

  ack(frame: AckFrame): void {
    this.reply(encodeAck(frame));
  }

  ok(id: number, conv: string, seq: number): void {
    this.reply(JSON.stringify({ t: 'ok', id, conv, seq }));
  }

  error(id: number | undefined, code: ErrorCode, message: string, extra?: { expected?: number }): void {
    const frame: ServerFrame = { t: 'error', code, message, ...extra };
    if (id !== undefined) frame.id = id;
    this.reply(JSON.stringify(frame));
  }

  private reply(text: string): void {
    if (this.answered) return;
    this.answered = true;
    this.resolve(text);
  }
}

export function encodeReply(text: string): Uint8Array {
  return encoder.encode(text);
}

export function decodeReply(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
