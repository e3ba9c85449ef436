/**
 * The SDK must run in a browser: bundling the sequent-client package's entry for
 * the browser platform, with nothing external, must succeed without any Node
 * built-in — from its sources and from what its build wrote.
 */
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../packages/client/', import.meta.url));

async function bundle(entry: string): Promise<{ metafile: Metafile; text: string }> {
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: root,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  return { metafile: result.metafile, text: result.outputFiles[0]?.text ?? '' };
}

describe('browser bundle of sequent-client', () => {
  it('bundles for the browser with no Node built-in and no dependency', async () => {
    const { metafile, text } = await bundle('src/client/index.ts');
    const inputs = Object.keys(metafile.inputs);
    const builtins = new Set([...builtinModules, ...builtinModules.map((name) => `node:${name}`)]);
    const imports = Object.values(metafile.inputs).flatMap((input) => input.imports.map((i) => i.path));
    expect(imports.filter((path) => builtins.has(path))).toEqual([]);
    expect(inputs.filter((path) => path.includes('node_modules'))).toEqual([]);
    expect(inputs.filter((path) => path.includes('file-store'))).toEqual([]);
    expect(inputs).toContain('src/client/client.ts');
    expect(text).toContain('SequentClient');
  });

  it('the built package bundles the same way: no Node built-in, nothing from node_modules', async () => {
    const { metafile } = await bundle('dist/src/client/index.js');
    const inputs = Object.keys(metafile.inputs);
    expect(inputs.filter((path) => path.includes('node_modules') || path.includes('file-store'))).toEqual([]);
    expect(inputs).toContain('dist/src/client/client.js');
  });

  it('would catch a Node built-in: the file store does not bundle for the browser', async () => {
    await expect(bundle('src/client/file-store.ts')).rejects.toThrow(/node:fs/);
  });
});
