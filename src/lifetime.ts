/**
 * One lifetime for every JS object that owns a native one (issue #9):
 * {@link NativeObject} holds the handle, refuses use after close with a clear
 * error, defers destroy while a call is inside the library, and reclaims an
 * object the program forgot to close (issue #8).
 *
 * A finalizer's held value must not reference the object it guards, or the
 * object is never collected: the handle, the kind and the doorbell (a Bun
 * threadsafe callback, which reaches only the object's {@link Waiter}) live in
 * a {@link Held} record that the finalizer frees.
 *
 * Debug mode: with the environment variable `SPEAD_DEBUG=1` (Deno: and
 * `--allow-env`), every native object reclaimed by the garbage collector
 * instead of `close()` / `release()` prints one line on stderr naming it.
 */
import { readEnv } from "../ffi/locate.ts";
import { SpeadError } from "./errors.ts";
import { type WaitCalls, Waiter } from "./waiter.ts";

const debug = readEnv("SPEAD_DEBUG").value === "1";

/** Called by a finalizer: `what` (e.g. "recv.Stream") was reclaimed without being closed. */
export function reclaimedByGc(what: string): void {
  if (debug) console.warn(`spead: a ${what} was garbage-collected without close(); close it (or use \`using\`) to free it promptly`);
}

/** What one class of native objects shares (one constant per class). */
export interface NativeKind {
  /** Named by the debug line of a reclaimed object ("recv.Stream"). */
  readonly what: string;
  /** Frees the native side: a facade destroy method (throws SpeadError on failure). */
  readonly destroy: (handle: number) => void;
  /** The wait exports of objects JS waits on (streams, rings): see {@link NativeObject.waitReady}. */
  readonly wait?: WaitCalls;
  /** Stops what runs, before the destroy (streams, rings, groups); `stop()` calls it too. */
  readonly stop?: (handle: number) => void;
  /** The error after close: `"closed"` (default; streams, pools) or `"released"` (leases). */
  readonly closedCode?: "closed" | "released";
  /** Its message (default "<what> has been closed"). */
  readonly closedMessage?: string;
  /** Print the debug line when reclaimed (objects users create and should close; default false). */
  readonly reportReclaimed?: boolean;
}

/** What the finalizer of a forgotten object frees; never references the object. */
export interface Held {
  handle: number;
  readonly kind: NativeKind;
  /** A Bun doorbell to close after the destroy (which joins the threads that ring it). */
  doorbell: { close(): void } | null;
}

const registry = new FinalizationRegistry<Held>((held) => {
  try {
    held.kind.destroy(held.handle);
  } catch {
    // a finalizer has nobody to report to; the destroy is what could be done
  }
  held.doorbell?.close();
  if (held.kind.reportReclaimed) reclaimedByGc(held.kind.what);
});

/**
 * The base of every object that owns a native handle: streams, chunk rings,
 * chunk streams and groups, memory pools, send buffers, packet generators.
 *
 * - `nativeHandle` gives the handle, or throws `SpeadError(closedCode)` once
 *   the object is closed (use after close is a JS error, never a segfault);
 * - `close()` runs {@link beforeClose} (stop what runs), then destroys the
 *   native object — at once, or, while a call is inside the library
 *   ({@link hold}: a Deno nonblocking wait), when that call returns;
 *   `Symbol.dispose` is `close()`; both are idempotent;
 * - a FinalizationRegistry destroys an object the program dropped without
 *   closing it (a safety net: Deno may not collect for a long time);
 * - {@link waitReady} waits for the native side without blocking the event
 *   loop, with the one runtime waiter (src/waiter.ts).
 */
export abstract class NativeObject implements Disposable {
  #handle: number;
  readonly #held: Held;
  #inCalls = 0;
  #closing = false;
  #waiter: Waiter | null = null;

  /**
   * Takes ownership of `handle`, a native object of `kind`.
   *
   * @param target what the finalizer watches (default the object itself; a
   *   buffer whose views outlive it passes its ArrayBuffer)
   */
  protected constructor(handle: number, kind: NativeKind, target?: object) {
    this.#handle = handle;
    this.#held = { handle, kind, doorbell: null };
    if (kind.wait) this.#waiter = new Waiter(kind.wait, this.#held);
    registry.register(target ?? this, this.#held, this.#held);
  }

  /** @internal The native handle; throws once the object is closed (or closing). */
  get nativeHandle(): number {
    if (this.#handle === 0 || this.#closing) {
      const kind = this.#held.kind;
      throw new SpeadError(kind.closedCode ?? "closed", kind.closedMessage ?? `${kind.what} has been closed`);
    }
    return this.#handle;
  }

  /** Whether the object has been closed (destroyed, or closing with a call still inside the library). */
  protected get isClosed(): boolean {
    return this.#handle === 0 || this.#closing;
  }

  /** The handle, or 0 once destroyed (for paths that must not throw). */
  protected get rawHandle(): number {
    return this.#handle;
  }

  /**
   * Counts a use the native side still makes of the object (a Deno wait
   * inside the library, a send reading a buffer): `close()` meanwhile stops
   * the object but defers the destroy until the last {@link unhold}.
   */
  protected hold(): void {
    this.#inCalls++;
  }

  /** Ends a {@link hold}; the last one runs a destroy that `close()` deferred. */
  protected unhold(): void {
    this.#inCalls--;
    if (this.#inCalls === 0 && this.#closing) this.#destroyNow();
  }

  /**
   * Resolves when the native side may have news (something ready, or
   * stopped), after one wait slice at most. False once a Deno wait reported
   * the object stopped. A Deno wait is a call inside the library
   * ({@link hold}); a Bun wait is a doorbell and a timer.
   */
  protected waitReady(): Promise<boolean> {
    const waiter = this.#waiter!;
    const handle = this.nativeHandle;
    if (!waiter.insideLibrary) return waiter.wait(handle);
    this.hold();
    return waiter.wait(handle).then(
      (going) => {
        this.unhold();
        return going;
      },
      (err) => {
        this.unhold();
        throw err;
      },
    );
  }

  /** Calls the kind's stop, unless closed (for the subclasses' `stop()`). */
  protected stopNative(): void {
    if (!this.isClosed) this.#held.kind.stop?.(this.#handle);
  }

  /** Before the destroy, with the handle still valid: the kind's stop by default. */
  protected beforeClose(_handle: number): void {
    this.stopNative();
  }

  /** Runs after the native destroy (e.g. rejecting what can no longer complete). */
  protected afterDestroy(): void {}

  /** Stops the object and frees its native side (see the class). Idempotent. */
  close(): void {
    const handle = this.#handle;
    if (handle === 0 || this.#closing) return;
    this.beforeClose(handle);
    if (this.#handle === 0) return; // the hook closed it already
    this.#waiter?.detach(handle);
    if (this.#inCalls > 0) {
      this.#closing = true; // a Deno wait is still inside the library; destroyed when it returns
      return;
    }
    this.#destroyNow();
  }

  #destroyNow(): void {
    const handle = this.#handle;
    if (handle === 0) return;
    this.#handle = 0;
    this.#closing = false;
    registry.unregister(this.#held);
    try {
      this.#held.kind.destroy(handle);
    } finally {
      this.#held.doorbell?.close();
      this.#held.doorbell = null;
      this.#waiter?.dispose();
      this.afterDestroy();
    }
  }

  /** @internal The library took the object (a chunk given to a ring): no destroy from JS, no finalizer. */
  protected disown(): void {
    registry.unregister(this.#held);
  }

  /** @internal The library gave the object (back) to JS under `handle`: tracked again. */
  protected adopt(handle: number): void {
    this.#handle = handle;
    this.#held.handle = handle;
    registry.register(this, this.#held, this.#held);
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}
