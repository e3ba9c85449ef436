/** A client connection as a gateway sees it (user ann, device phone, connection 42): every frame written to it, in order. */
import type { AckFrame, ErrorCode, ServerFrame } from '../../packages/client/src/protocol/index.js';
import type { Requester } from '../../packages/server/src/server/origin.js';

export function requester(): Requester & { written: ServerFrame[] } {
  const written: ServerFrame[] = [];
  return {
    user: 'ann',
    device: 'phone',
    connection: 42,
    pendingReads: 0,
    written,
    ack: (frame: AckFrame) => written.push(frame),
    ok: (id: number, conv: string, seq: number) => written.push({ t: 'ok', id, conv, seq }),
    error: (id: number | undefined, code: ErrorCode, message: string) => written.push({ t: 'error', id, code, message } as ServerFrame),
    send: (frame: ServerFrame) => written.push(frame),
    sendText: (text: string | Buffer) => written.push(JSON.parse(String(text)) as ServerFrame),
  };
}
