/** docs/operations.md names every flag of serve and token and every environment variable the CLI reads. */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { run } from './run.js';

const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');

it.each([['serve'], ['token']])('lists every flag of sequent %s', (command) => {
  const flags = [...run([command, '--help']).stdout.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]!);
  expect(flags.length).toBeGreaterThan(3);
  for (const flag of flags) expect(doc).toContain(`| \`--${flag}\` |`);
});

it('lists SEQUENT_SECRET and the token default', () => {
  expect(doc).toContain('| `SEQUENT_SECRET` |');
  expect(doc).toMatch(/\| `--ttl` \| `24h` \|/);
});
