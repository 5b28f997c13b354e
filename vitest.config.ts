import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native addons and uWS listeners: separate processes, not worker threads.
    pool: 'forks',
    // Conversation tests run whole calls in real time; under a loaded CI box they need room.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
