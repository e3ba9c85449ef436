/** A stopping server says where its drain spent its time: a supervisor's kill timeout is sized from this line. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { startTestServer } from '../support/wire.js';

it('logs one drained line with the connections it closed and the time of each phase', async () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const test = await startTestServer({ logger: pino({ level: 'info' }, sink) });
  const alice = await test.connect('alice');
  await test.connect('bob');
  await test.server.close();
  expect((await alice.closed).code).toBe(1001);
  await test.stop();
  const drained = lines.filter((l) => l['msg'] === 'drained');
  expect(drained).toHaveLength(1);
  expect(drained[0]).toMatchObject({ connections: 2 });
  for (const key of ['settleMs', 'disconnectMs', 'closeMs']) expect(drained[0]![key]).toEqual(expect.any(Number));
});
