import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Interop tests start real daemons; keep file-level parallelism modest on 2 cores.
    maxWorkers: 2,
    // The servers tests start (in-process or as the command) keep the HTTP endpoint off unless a
    // test asks for it on a port of its own: the default 127.0.0.1:8601 would collide.
    env: { CATALOG_DNS_HTTP: 'off' },
  },
});
