/**
 * `sequent-server serve --tls-cert --tls-key`: wss:// and https:// on the same port,
 * checked against a certificate made for the test; wrong flags are one line.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { BIN, spawnServer } from '../support/cli-server.js';
import { tokens } from '../support/hostile.js';
import { WireClient } from '../support/wire.js';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'sequent-tls-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const cert = join(root, 'cert.pem');
const key = join(root, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
  '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
const ca = readFileSync(cert);

function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

it('serves wss:// and https:// with the given certificate, and nothing in clear text', async () => {
  const server = await spawnServer(join(root, 'data'), ['--tls-cert', cert, '--tls-key', key]);
  try {
    expect(server.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/v1\/ws$/);
    expect(await httpsGet(`${server.httpUrl}/healthz`)).toEqual({ status: 200, body: '{"status":"ok"}' });
    const client = await WireClient.open(server.url, { ca });
    expect(await client.hello(await tokens.mint('alice', 'd1'))).toMatchObject({ t: 'welcome', user: 'alice' });
    expect(await client.request({ t: 'send', conv: 'dm:alice:bob', cmid: 'tls-1', dseq: 1, body: 'over tls' })).toMatchObject({ t: 'ack', seq: 1 });
    client.close();
    // An untrusted certificate is refused by the client, and a clear-text client gets no WebSocket.
    await expect(WireClient.open(server.url)).rejects.toThrow(/self-signed|certificate/);
    await expect(WireClient.open(server.url.replace('wss:', 'ws:'))).rejects.toThrow();
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
  }
});

it('names the flag when the certificate or key is missing, unreadable or not PEM', async () => {
  const serve = (...args: string[]) => run(process.execPath, [BIN, 'serve', '--port', '0', '--data', join(root, 'bad'), ...args], { env: { ...process.env, SEQUENT_SECRET: 'x'.repeat(32) } });
  await expect(serve('--tls-cert', cert)).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--tls-cert and --tls-key go together/) });
  await expect(serve('--tls-cert', join(root, 'nope.pem'), '--tls-key', key)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/^sequent-server serve: cannot read --tls-cert .*nope\.pem \(ENOENT\)\n$/) });
  const garbage = join(root, 'garbage.pem');
  writeFileSync(garbage, 'not a key');
  await expect(serve('--tls-cert', cert, '--tls-key', garbage)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/are not a PEM certificate and its key/) });
});
