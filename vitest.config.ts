import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Engines spawn their own worker threads; keep test files from fighting over the 2 cores.
    fileParallelism: false,
    reporters: ['default'],
  },
});
