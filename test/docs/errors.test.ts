import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLOSE_CODES, ERROR_CODE_LIST } from '../../packages/client/src/protocol/index.js';

const page = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

function tableColumn(section: string, pattern: RegExp): string[] {
  return [...section.matchAll(pattern)].map((m) => m[1]!);
}

describe('docs/errors.md', () => {
  it('lists exactly the error codes of the registry', () => {
    const errorSection = page.split('## Close codes')[0]!;
    expect(tableColumn(errorSection, /^\| `([a-z_]+)` \|/gm).sort()).toEqual([...ERROR_CODE_LIST].sort());
  });

  it('lists exactly the close codes of the registry, with their numbers', () => {
    const closeSection = page.split('## Close codes')[1]!;
    const rows = [...closeSection.matchAll(/^\| (\d{4}) \| `([a-z_]+)` \|/gm)].map((m) => [m[2], Number(m[1])]);
    const registry = Object.entries(CLOSE_CODES).map(([name, { code }]) => [name, code]);
    expect(rows.sort()).toEqual(registry.sort());
  });

  it('docs/protocol.md lists every close code the server uses', () => {
    const protocol = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    for (const { code } of Object.values(CLOSE_CODES)) expect(protocol).toContain(`| ${code} |`);
  });
});
