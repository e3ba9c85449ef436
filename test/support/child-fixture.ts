/**
 * Bundles a TypeScript child-process fixture into a runnable .mjs (esbuild,
 * dependencies left external), so crash tests can SIGKILL a real process without
 * a prior build step.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Writes `<outDir>/<name>.mjs` from the fixture at `entry` (a path from the repository root); returns its path. */
export async function bundleFixture(entry: string, outDir: string, name: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, `${name}.mjs`);
  await build({
    entryPoints: [join(ROOT, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
  return outfile;
}
