import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Writable } from 'node:stream';
import * as ws from 'ws';

/** ws's frame parser; the package exports it, its type declarations do not. */
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => Writable };
import { FrameFlusher, textFrames, TurnFrames, type FrameSink } from '../../packages/server/src/server/turn-frames.js';

/** What a real WebSocket client (ws's own frame parser) reads out of the bytes. */
function parseAsClient(bytes: Buffer): Promise<string[]> {
  const receiver = new Receiver({ isServer: false });
  const messages: string[] = [];
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    expect(isBinary).toBe(false);
    messages.push(data.toString('utf8'));
  });
  return new Promise((resolve, reject) => {
    receiver.on('error', reject);
    receiver.write(bytes, () => resolve(messages));
  });
}

/** Payload sizes around the three header forms (7-bit, 16-bit and 64-bit lengths). */
const boundarySize = fc.constantFrom(0, 1, 125, 126, 127, 65_535, 65_536, 70_000);

const payload = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 300 }).map((s) => Buffer.from(s)),
  boundarySize.map((n) => 'x'.repeat(n)),
  boundarySize.map((n) => Buffer.alloc(n, 'y')),
);

class RecordingSink implements FrameSink {
  open = true;
  readonly writes: Buffer[] = [];
  write(chunk: Buffer): void {
    this.writes.push(chunk);
  }
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('text frames for one turn', () => {
  it('frames any payloads so that a WebSocket client reads them back in order, byte for byte', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(payload, { maxLength: 12 }), async (payloads) => {
        const read = await parseAsClient(textFrames(payloads));
        expect(read).toEqual(payloads.map((p) => (typeof p === 'string' ? Buffer.from(p).toString('utf8') : p.toString('utf8'))));
      }),
      { numRuns: 200 },
    );
  });

  it("writes a turn's frames in one write at the end of the turn, and nothing before", async () => {
    const sink = new RecordingSink();
    const frames = new TurnFrames(sink, new FrameFlusher());
    frames.push('{"t":"ack","id":1}');
    frames.push(Buffer.from('{"t":"msg","seq":1}'));
    frames.push('{"t":"ack","id":2}');
    expect(sink.writes).toHaveLength(0);
    expect(frames.queuedBytes).toBeGreaterThan(0);
    await nextTurn();
    expect(sink.writes).toHaveLength(1);
    expect(frames.queuedBytes).toBe(0);
    expect(await parseAsClient(sink.writes[0]!)).toEqual(['{"t":"ack","id":1}', '{"t":"msg","seq":1}', '{"t":"ack","id":2}']);
    frames.push('{"t":"ack","id":3}');
    await nextTurn();
    expect(sink.writes).toHaveLength(2);
  });

  it('flushes on demand (before a close frame) and drops frames once the socket is no longer open', async () => {
    const sink = new RecordingSink();
    const frames = new TurnFrames(sink, new FrameFlusher());
    frames.push('{"t":"error","code":"bad_request"}');
    frames.flush();
    expect(sink.writes).toHaveLength(1);
    sink.open = false;
    frames.push('{"t":"ack","id":9}');
    await nextTurn();
    expect(sink.writes).toHaveLength(1);
    expect(frames.queuedBytes).toBe(0);
  });
});
