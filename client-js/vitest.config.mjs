// Unit tests of the snippet's pure parts (test/*.test.ts), in Node: the queue, batch cutting
// by encoded size, ack and refusal handling, backoff. The browser-facing parts are tested in
// real Chromium by tests/test_browser_*.py.
import { defineConfig } from "vitest/config";

export default defineConfig({
  define: { DEBUG: "false", VERSION: '"test"' },
  test: { include: ["test/**/*.test.ts"] },
});
