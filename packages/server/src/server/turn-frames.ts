/**
 * A connection's outgoing text frames, written once per event-loop turn. Under
 * load most of the server's frames are acks and pushes sent in the same turn to
 * the same connection; going through `ws` frame by frame cost two stream writes
 * and a header allocation per frame, which was a large share of the main
 * thread. Here the turn's frames are framed (RFC 6455 §5.2, server to client:
 * FIN, text opcode, no mask) into one buffer and written once.
 *
 * Only data frames take this path. Control frames (ping, pong, close) stay with
 * `ws`; a caller flushes before handing `ws` a ping or a close so that they
 * follow the data sent before them.
 */
import { Buffer } from 'node:buffer';

export interface FrameSink {
  /** True while frames may still be written (the WebSocket is open). */
  readonly open: boolean;
  write(chunk: Buffer): void;
}

/** Bytes of the header for a payload of `length` bytes. */
function headerLength(length: number): number {
  return length < 126 ? 2 : length < 0x10000 ? 4 : 10;
}

/** Writes one FIN text-frame header at `offset`; returns the offset after it. */
function writeHeader(target: Buffer, offset: number, length: number): number {
  target[offset] = 0x81;
  if (length < 126) {
    target[offset + 1] = length;
    return offset + 2;
  }
  if (length < 0x10000) {
    target[offset + 1] = 126;
    target.writeUInt16BE(length, offset + 2);
    return offset + 4;
  }
  target[offset + 1] = 127;
  target.writeUInt32BE(Math.floor(length / 0x1_0000_0000), offset + 2);
  target.writeUInt32BE(length >>> 0, offset + 6);
  return offset + 10;
}

/** The given payloads (strings as UTF-8) as consecutive unmasked text frames in one buffer. */
export function textFrames(payloads: readonly (string | Buffer)[]): Buffer {
  const lengths = payloads.map((p) => (typeof p === 'string' ? Buffer.byteLength(p) : p.length));
  let total = 0;
  for (const length of lengths) total += headerLength(length) + length;
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (let i = 0; i < payloads.length; i++) {
    const payload = payloads[i]!;
    const length = lengths[i]!;
    offset = writeHeader(out, offset, length);
    if (typeof payload === 'string') out.write(payload, offset);
    else payload.copy(out, offset);
    offset += length;
  }
  return out;
}

/**
 * Writes every connection's queued frames at the end of the event-loop turn: one
 * setImmediate for all of them. (Flushing a commit's acks before its pushes were
 * built was tried: no gain at peak, and a worse p99 at half of peak.)
 */
export class FrameFlusher {
  private dirty: TurnFrames[] = [];
  private scheduled = false;

  /** `frames` got its first frame of the turn. */
  mark(frames: TurnFrames): void {
    this.dirty.push(frames);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flushAll);
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (const frames of dirty) frames.flush();
  };
}

export class TurnFrames {
  private pending: (string | Buffer)[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly flusher: FrameFlusher,
  ) {}

  /** About how many bytes are queued in this turn (string payloads counted in UTF-16 units, a lower bound of their UTF-8 size). */
  get queuedBytes(): number {
    return this.pendingBytes;
  }

  /** Queues a text frame to leave with the rest of this turn's frames. */
  push(payload: string | Buffer): void {
    if (this.pending.length === 0) this.flusher.mark(this);
    this.pending.push(payload);
    this.pendingBytes += payload.length;
  }

  /** Writes what is queued now; frames queued after a closed socket are dropped, as `ws` drops sends after close. */
  flush(): void {
    if (this.pending.length === 0) return;
    const payloads = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.sink.open) this.sink.write(textFrames(payloads));
  }
}
