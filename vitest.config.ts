import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run the packages from their sources, as the root tsconfig's paths type-check them;
    // spawned servers and examples run what the build wrote.
    alias: [
      { find: /^sequent-client$/, replacement: source('./packages/client/src/client/index.ts') },
      { find: /^sequent-client\/protocol$/, replacement: source('./packages/client/src/protocol/index.ts') },
      { find: /^sequent-client\/file-store$/, replacement: source('./packages/client/src/client/file-store.ts') },
      { find: /^sequent-server$/, replacement: source('./packages/server/src/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
