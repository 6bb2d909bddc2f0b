/**
 * The runtime waiter shared by receive streams, chunk rings and send streams:
 * waiting for a native queue without blocking the event loop. Native threads
 * never call JS. Under Deno a nonblocking wait export (a call on its own
 * thread) resolves a Promise; under Bun a threadsafe doorbell, armed once per
 * wait, wakes the event loop, and one interval per waiter (not a timer per
 * wait) keeps the process alive while anyone waits and bounds a lost wake-up.
 * src/lifetime.ts's NativeObject owns one and counts a Deno wait as a call
 * inside the library, so a close() meanwhile defers the destroy.
 */
import { native, type NativeFunction, Status } from "../ffi/mod.ts";

/** Longest single wait: keeps shutdown prompt and bounds a lost wake-up. */
export const WAIT_SLICE_MS = 50;

/** The facade calls of one waitable kind (handle-based). */
export interface WaitCalls {
  /** Deno: the nonblocking wait (`lib.nonblocking.*Wait`); undefined under Bun. */
  readonly waitAsync: ((handle: number, timeoutMs: number) => Promise<number>) | undefined;
  readonly setNotify: (handle: number, callback: NativeFunction | null) => void;
  readonly arm: (handle: number) => void;
}

function notStopped(status: number): boolean {
  return status !== Status.stopped;
}

/** Waits on one native object; its doorbell is put in `held` for the object's finalizer. */
export class Waiter {
  readonly #calls: WaitCalls;
  readonly #held: { doorbell: { close(): void } | null };
  #doorbellSet = false;
  #wakers: Array<() => void> = [];
  #keepAlive: ReturnType<typeof setInterval> | null = null;

  constructor(calls: WaitCalls, held: { doorbell: { close(): void } | null }) {
    this.#calls = calls;
    this.#held = held;
  }

  /** Whether a wait is a call inside the library (Deno), during which the object must not be destroyed. */
  get insideLibrary(): boolean {
    return this.#calls.waitAsync !== undefined;
  }

  /**
   * Resolves when something may be ready, or after a slice; false once a Deno
   * wait says stopped. Plain Promise chains, no async frames: a send stream
   * waits once per completion batch.
   */
  wait(handle: number): Promise<boolean> {
    const waitAsync = this.#calls.waitAsync;
    if (waitAsync) return waitAsync(handle, WAIT_SLICE_MS).then(notStopped);
    this.#ensureDoorbell(handle);
    return new Promise<boolean>((resolve) => {
      this.#wakers.push(() => resolve(true));
      this.#ensureKeepAlive();
      this.#calls.arm(handle);
    });
  }

  #ensureDoorbell(handle: number): void {
    if (this.#doorbellSet) return;
    this.#doorbellSet = true;
    // The callback reaches only this waiter, never the object that owns it (src/lifetime.ts).
    const bell = native.createDoorbell(() => this.#ring());
    if (!bell) return;
    this.#held.doorbell = bell;
    this.#calls.setNotify(handle, bell.pointer);
  }

  #ensureKeepAlive(): void {
    if (this.#keepAlive !== null) return;
    this.#keepAlive = setInterval(() => {
      if (this.#wakers.length === 0) {
        this.#stopKeepAlive();
        return;
      }
      this.#ring();
    }, WAIT_SLICE_MS);
  }

  #stopKeepAlive(): void {
    if (this.#keepAlive === null) return;
    clearInterval(this.#keepAlive);
    this.#keepAlive = null;
  }

  /** Wakes every pending wait. */
  #ring(): void {
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const w of wakers) w();
  }

  /** Before the destroy: the native side stops ringing (the doorbell itself is closed after the destroy). */
  detach(handle: number): void {
    if (this.#held.doorbell) this.#calls.setNotify(handle, null);
  }

  /** After the destroy: no timer left, every pending wait woken. */
  dispose(): void {
    this.#stopKeepAlive();
    this.#ring();
  }
}
