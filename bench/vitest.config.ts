import { defineConfig } from 'vitest/config';

// Benchmarks reuse the end-to-end harness (test/support) but never run with the test suite:
// they print measurements and ratios, and assert nothing about time.
export default defineConfig({
  test: {
    include: ['bench/**/*.bench.ts'],
    testTimeout: 1_800_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    reporters: ['verbose'],
  },
});
