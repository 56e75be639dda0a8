import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', '**/*.unit.test.ts'],
    exclude: ['node_modules/**', 'dist/**', '.cache/**'],
    // Integration and end-to-end tests drive real Docker and git: give them room, and run files
    // one at a time on small machines so builds do not starve each other.
    testTimeout: 120_000,
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
