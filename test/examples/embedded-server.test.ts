/** The embedded-server example on a port that is already taken: one line naming the port, exit 1. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const EXAMPLE = fileURLToPath(new URL('../../examples/dist/embedded-server.js', import.meta.url));
const cwd = mkdtempSync(join(tmpdir(), 'sequent-embedded-'));
const blocker = net.createServer();
afterAll(async () => {
  await new Promise((resolve) => blocker.close(resolve));
  rmSync(cwd, { recursive: true, force: true });
});

it('says in one line that the port is taken', async () => {
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const { port } = blocker.address() as net.AddressInfo;
  const result = spawnSync(process.execPath, [EXAMPLE, String(port)], { cwd, encoding: 'utf8', timeout: 15_000, env: { ...process.env, SEQUENT_SECRET: '' } });
  expect(result.status).toBe(1);
  expect(result.stderr).toBe(`embedded-server: cannot listen on port ${port} (EADDRINUSE); pass another port as the first argument\n`);
});
