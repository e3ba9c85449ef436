/**
 * A request for a conversation another node owns, on its way there and back.
 * The gateway node sends the decoded frame with who sent it (in batches, forward-batch.ts); the owner runs it
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

/**
 * What crosses the bus: the frame without a send's body, and its origin, as
 * JSON; then, for a send, a newline and the body's JSON text as the gateway
 * measured it. (JSON.stringify never writes a raw newline, so the first one
 * ends the head; the body is neither escaped into a string nor parsed twice.)
 */
interface ForwardedHead {
  f: OwnerFrame;
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
  if (frame.t === 'send') {
    // `body: undefined` leaves the body out of the head.
    const head: ForwardedHead = { f: { ...frame, body: undefined }, u: origin.user, d: origin.device, c: origin.connection };
    return encoder.encode(`${JSON.stringify(head)}\n${bodyJson ?? JSON.stringify(frame.body)}`);
  }
  return encoder.encode(JSON.stringify({ f: frame, u: origin.user, d: origin.device, c: origin.connection } satisfies ForwardedHead));
}

export function decodeForwarded(bytes: Uint8Array): Forwarded {
  const text = decoder.decode(bytes);
  const newline = text.indexOf('\n');
  const head = JSON.parse(newline < 0 ? text : text.slice(0, newline)) as ForwardedHead;
  const frame = head.f;
  let bodyJson: string | undefined;
  if (frame.t === 'send') {
    bodyJson = newline < 0 ? 'null' : text.slice(newline + 1);
    frame.body = JSON.parse(bodyJson) as unknown;
  }
  return { frame, bodyJson, user: head.u, device: head.d, connection: head.c };
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
