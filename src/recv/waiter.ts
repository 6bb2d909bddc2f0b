/**
 * Waiting for a native queue without blocking the event loop. Native threads
 * never call JS: under Bun a threadsafe doorbell (armed once per wait) wakes
 * the event loop, under Deno a nonblocking wait call resolves a Promise.
 */
import { native, type NativeFunction } from "../../ffi/mod.ts";
import { check } from "../errors.ts";

/** The three native calls of a waitable queue (handle-based). */
export interface WaitSymbols {
  /** Deno: the nonblocking wait export; undefined under Bun. */
  waitAsync: ((handle: number, timeoutMs: number) => Promise<number>) | undefined;
  setNotify: (handle: number, fn: NativeFunction | null) => number;
  arm: (handle: number) => number;
}

/** Waits for one native queue; `close` defers the queue's destruction past waits in flight. */
export class NativeWaiter {
  readonly #symbols: WaitSymbols;
  #doorbell: { close(): void } | null = null;
  #wakers: Array<() => void> = [];
  #pending = 0;
  #destroy: (() => void) | null = null;

  constructor(symbols: WaitSymbols) {
    this.#symbols = symbols;
  }

  /** Resolves when something may be ready, or after `sliceMs` at most. */
  async wait(handle: number, sliceMs: number): Promise<void> {
    this.#pending++;
    try {
      if (this.#symbols.waitAsync) {
        await this.#symbols.waitAsync(handle, sliceMs);
        return;
      }
      this.#ensureDoorbell(handle);
      await new Promise<void>((resolve) => {
        let timer: ReturnType<typeof setTimeout> | undefined = undefined;
        const wake = () => {
          if (timer !== undefined) clearTimeout(timer);
          resolve();
        };
        this.#wakers.push(wake);
        // The timer keeps the process alive (a Bun doorbell does not) and bounds a lost wake-up.
        timer = setTimeout(wake, sliceMs);
        this.#symbols.arm(handle);
      });
    } finally {
      this.#pending--;
      if (this.#pending === 0 && this.#destroy) this.#finish();
    }
  }

  #ensureDoorbell(handle: number): void {
    if (this.#doorbell) return;
    const bell = native.createDoorbell(() => {
      const wakers = this.#wakers;
      this.#wakers = [];
      for (const w of wakers) w();
    });
    if (!bell) return;
    check(this.#symbols.setNotify(handle, bell.pointer), "set_notify");
    this.#doorbell = bell;
  }

  /** Clears the doorbell and runs `destroy` once no wait is inside the library. */
  close(handle: number, destroy: () => void): void {
    if (this.#doorbell) this.#symbols.setNotify(handle, null);
    this.#destroy = destroy;
    if (this.#pending === 0) this.#finish();
  }

  #finish(): void {
    const destroy = this.#destroy;
    this.#destroy = null;
    destroy?.();
    this.#doorbell?.close();
    this.#doorbell = null;
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const w of wakers) w();
  }
}
