/**
 * Reclaiming native objects the program forgot to close (issue #8).
 *
 * A finalizer's held value must not reference the object it guards, or the
 * object is never collected: a stream keeps its native handle and its
 * doorbell (a Bun threadsafe callback, which reaches the stream only through
 * a WeakRef) in a {@link NativeParts} that the finalizer frees.
 *
 * Debug mode: with the environment variable `SPEAD_DEBUG=1` (Deno: and
 * `--allow-env`), every native object reclaimed by the garbage collector
 * instead of `close()` / `release()` prints one line on stderr naming it.
 */
import { readEnv } from "../ffi/locate.ts";

const debug = readEnv("SPEAD_DEBUG").value === "1";

/** Called by a finalizer: `what` (e.g. "recv.Stream") was reclaimed without being closed. */
export function reclaimedByGc(what: string): void {
  if (debug) console.warn(`spead: a ${what} was garbage-collected without close(); close it (or use \`using\`) to free it promptly`);
}

/** What the finalizer of a forgotten stream frees. */
export interface NativeParts {
  handle: number;
  doorbell: { close(): void } | null;
}

/**
 * A registry that destroys a forgotten stream's native side, then closes its
 * doorbell (destroy joins the native threads first, so the doorbell is never
 * rung after it is closed).
 */
export function streamFinalizer(destroy: (handle: number) => unknown, what: string): FinalizationRegistry<NativeParts> {
  return new FinalizationRegistry<NativeParts>((parts) => {
    destroy(parts.handle);
    parts.doorbell?.close();
    reclaimedByGc(what);
  });
}
