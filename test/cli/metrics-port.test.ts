/**
 * `sequent-server serve --metrics-port`: /metrics is never on the public port; with
 * the flag it is served on a port of its own (loopback by default), its counters
 * moving with the traffic; a taken metrics port is one line naming the flag.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { spawnServerProcess, stopServer } from '../../packages/server/src/chaos/server-process.js';
import { TEST_SECRET } from '../support/cli-server.js';
import { tokens } from '../support/hostile.js';
import { WireClient } from '../support/wire.js';
import { run } from './run.js';

const root = mkdtempSync(join(tmpdir(), 'sequent-metrics-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('by default no /metrics anywhere; with --metrics-port 0 on a loopback port of its own, counting what clients did', async () => {
  const plain = await spawnServerProcess({ dataDir: join(root, 'plain'), secret: TEST_SECRET });
  try {
    expect(plain.metricsUrl).toBeUndefined();
    expect((await fetch(`${plain.httpUrl}/metrics`)).status).toBe(404);
  } finally {
    await stopServer(plain);
  }

  const server = await spawnServerProcess({ dataDir: join(root, 'metrics'), secret: TEST_SECRET, args: ['--metrics-port', '0'] });
  try {
    expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(new URL(server.metricsUrl!).port).not.toBe(String(server.port));
    expect((await fetch(`${server.httpUrl}/metrics`)).status).toBe(404);
    const client = await WireClient.open(server.url);
    await client.hello(await tokens.mint('alice', 'd1'));
    for (let dseq = 1; dseq <= 3; dseq++) expect(await client.request({ t: 'send', conv: 'dm:alice:bob', cmid: `m-${dseq}`, dseq, body: dseq })).toMatchObject({ t: 'ack' });
    client.close();
    const scraped = await fetch(server.metricsUrl!);
    expect(scraped.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await scraped.text();
    expect(text).toMatch(/^sequent_entries_committed_total 3$/m);
    expect(text).toMatch(/^sequent_frames_in_total\{type="send"\} 3$/m);
  } finally {
    await stopServer(server);
  }
});

it('a metrics port that is taken, or out of range, is one line naming the flag', async () => {
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  const taken = (squatter.address() as { port: number }).port;
  try {
    const busy = run(['serve', '--port', '0', '--data', join(root, 'busy'), '--metrics-port', String(taken)], { SEQUENT_SECRET: TEST_SECRET });
    expect(busy.code).toBe(1);
    expect(busy.stderr).toBe(`sequent-server serve: cannot listen on 127.0.0.1:${taken} for metrics (EADDRINUSE); check --metrics-host and --metrics-port\n`);
  } finally {
    squatter.close();
  }
  const range = run(['serve', '--port', '0', '--data', join(root, 'range'), '--metrics-port', '70000'], { SEQUENT_SECRET: TEST_SECRET });
  expect(range.code).toBe(2);
  expect(range.stderr).toMatch(/--metrics-port/);
});
