import { defineConfig } from 'vitest/config';

// The slow suite (CI: `npx vitest run --config vitest.slow.config.ts`): property tests with thousands of
// cases and adversarial traffic against real servers. The default config excludes test/slow/**.
export default defineConfig({
  test: {
    include: ['test/slow/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
