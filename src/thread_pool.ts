import { checkOptions, SpeadError } from "./errors.ts";

/** Options of {@link ThreadPool}; defaults are spead2's. */
export interface ThreadPoolOptions {
  /** Threads in the pool (spead2 semantics; see the class note). Default 1. */
  threads?: number;
  /** CPU cores to pin I/O threads to, used round-robin. Default none. */
  affinity?: readonly number[];
}

/**
 * spead2's `ThreadPool(threads, affinity)`. In this library every stream owns
 * exactly one native I/O thread (spead2's recommended set-up: one single
 * threaded pool per stream), so a pool carries the placement of those
 * threads: each stream created with it pins its I/O thread(s) to the next
 * core of `affinity` in turn. `threads` is kept for API parity.
 */
export class ThreadPool {
  /** Threads per stream (kept for spead2 API parity). */
  readonly threads: number;
  /** CPU cores the I/O threads are pinned to, in turn. */
  readonly affinity: readonly number[];
  #next = 0;

  /** Checks the options; throws `invalid_argument` for a bad count or core. */
  constructor(options?: ThreadPoolOptions);
  /** spead2's positional form: `ThreadPool(threads, affinity)`. */
  constructor(threads: number, affinity?: readonly number[]);
  constructor(a: ThreadPoolOptions | number = {}, b?: readonly number[]) {
    const options: ThreadPoolOptions = typeof a === "number" ? { threads: a, affinity: b } :
      checkOptions("options", a, "ThreadPoolOptions ({ threads, affinity }) or ThreadPool(threads, affinity)") ?? {};
    this.threads = options.threads ?? 1;
    this.affinity = [...(options.affinity ?? [])];
    if (!Number.isInteger(this.threads) || this.threads < 1) {
      throw new SpeadError("invalid_argument", `threads = ${this.threads} must be >= 1`);
    }
    for (const core of this.affinity) {
      if (!Number.isInteger(core) || core < 0) throw new SpeadError("invalid_argument", `affinity core ${core}`);
    }
  }

  /** @internal The core for the next I/O thread, or -1 for no pinning. */
  nextCore(): number {
    if (this.affinity.length === 0) return -1;
    const core = this.affinity[this.#next % this.affinity.length];
    this.#next++;
    return core;
  }
}
