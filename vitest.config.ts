import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', '**/*.unit.test.ts'],
    exclude: ['node_modules/**', 'dist/**', '.cache/**'],
    // Integration and end-to-end tests drive real Docker and git: give them room. Two files at a
    // time: one file alone left a 2-core machine at a load of ~1.6 (most of a test is waiting on
    // containers, health checks and timeouts), and the suite must stay under 25 minutes.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    maxWorkers: 2,
  },
});
