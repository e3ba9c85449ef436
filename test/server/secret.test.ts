/** The embedded server's secret rules: at least 32 characters, and a short kept secret is refused, never replaced. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startServer } from '../../packages/server/src/server/index.js';
import { MemoryStore } from '../../packages/server/src/store/memory.js';

const root = mkdtempSync(join(tmpdir(), 'sequent-secret-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

it('refuses a secret option shorter than 32 characters', async () => {
  await expect(startServer({ port: 0, dataDir: join(root, 'a'), secret: 'x'.repeat(31), store: new MemoryStore() })).rejects.toMatchObject({ option: 'secret' });
});

it('refuses a kept secret file shorter than 32 characters and leaves it as it was', async () => {
  const dataDir = join(root, 'b');
  const saved = process.env['SEQUENT_SECRET'];
  delete process.env['SEQUENT_SECRET'];
  try {
    await startServer({ port: 0, dataDir, store: new MemoryStore() }).then((s) => s.close());
    writeFileSync(join(dataDir, 'secret'), 'short\n');
    await expect(startServer({ port: 0, dataDir, store: new MemoryStore() })).rejects.toThrow(/shorter than 32/);
    expect(readFileSync(join(dataDir, 'secret'), 'utf8')).toBe('short\n');
  } finally {
    if (saved !== undefined) process.env['SEQUENT_SECRET'] = saved;
  }
});
