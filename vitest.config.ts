import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests spawn brokers, pseudo-terminals and the CLI: real processes need real time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // 2-core machines: keep process-level parallelism modest so fault tests keep their timing.
    maxWorkers: 2,
    reporters: ['default', ['json', { outputFile: 'test-results.json' }]],
  },
});
