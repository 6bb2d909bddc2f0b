/**
 * `bun test --preload tests/gc_preload.ts`: a full garbage collection after
 * every test (scripts/test.sh's forced-GC pass, issue #8), so finalizers of
 * whatever a test dropped run while the next tests use the library.
 * Deno gets the same from tests/bun_test_shim.ts when run with
 * `--v8-flags=--expose-gc`.
 */
import { afterEach } from "bun:test";

afterEach(() => {
  (globalThis as unknown as { Bun: { gc(force: boolean): void } }).Bun.gc(true);
});
