/**
 * spead2's `MemoryPool`: pre-faulted buffers for heap payloads, recycled when
 * heaps are released. Pass it as `recv.StreamConfig({ memoryAllocator: pool })`.
 */
import { native } from "../ffi/mod.ts";
import { check, SpeadError } from "./errors.ts";

/** Pool counters (see docs/ABI.md). */
export type MemoryPoolStats = Record<string, number> & {
  readonly free: number;
  readonly outstanding: number;
  readonly allocated: number;
  readonly misses: number;
  readonly bypassed: number;
};

let poolStatNames: string[] | undefined;

function statNames(): string[] {
  if (poolStatNames) return poolStatNames;
  const names: string[] = [];
  const buf = new Uint8Array(64);
  const len = new Uint32Array(1);
  for (let i = 0; i < 64; i++) {
    if (native.symbols.spead_memory_pool_stat_name(i, buf, buf.length, len) !== 0) break;
    names.push(new TextDecoder().decode(buf.subarray(0, len[0])));
  }
  poolStatNames = names;
  return names;
}

const poolFinalizer = new FinalizationRegistry<number>((handle) => {
  native.symbols.spead_memory_pool_destroy(handle);
});

/**
 * A pool of `upper`-byte buffers serving every payload request in
 * `[lower, upper]` (others bypass it). `initial` buffers are allocated and
 * pre-faulted now; at most `maxFree` are kept when returned. With `lowWater`
 * > 0 a native thread refills the pool to `initial` whenever a take leaves
 * fewer than `lowWater` free (spead2's thread-pool constructor).
 *
 * `close()` never frees memory still in use: buffers held by unreleased heaps
 * and streams stay valid and are freed when the last one lets go.
 */
export class MemoryPool implements Disposable {
  readonly lower: number;
  readonly upper: number;
  readonly maxFree: number;
  readonly initial: number;
  readonly lowWater: number;
  #handle: number;
  readonly #token = {};

  constructor(lower: number, upper: number, maxFree: number, initial: number, lowWater = 0) {
    for (const [name, v] of [["lower", lower], ["upper", upper], ["maxFree", maxFree], ["initial", initial], [
      "lowWater",
      lowWater,
    ]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new SpeadError("invalid_argument", `${name} = ${v}`);
    }
    this.lower = lower;
    this.upper = upper;
    this.maxFree = maxFree;
    this.initial = initial;
    this.lowWater = lowWater;
    const words = BigUint64Array.of(BigInt(lower), BigInt(upper), BigInt(maxFree), BigInt(initial), BigInt(lowWater));
    const out = new Uint32Array(1);
    check(native.symbols.spead_memory_pool_create(words, words.length, out), "MemoryPool");
    this.#handle = out[0];
    poolFinalizer.register(this, this.#handle, this.#token);
  }

  /** @internal Native handle, used in stream configs. */
  get nativeHandle(): number {
    if (this.#handle === 0) throw new SpeadError("closed", "memory pool has been closed");
    return this.#handle;
  }

  /** Current counters: free, outstanding, allocated, misses, bypassed, returned, released, refilled, failures. */
  get stats(): MemoryPoolStats {
    const names = statNames();
    const out = new BigUint64Array(Math.max(1, names.length));
    const n = new Uint32Array(1);
    check(native.symbols.spead_memory_pool_stats(this.nativeHandle, out, out.length, n), "MemoryPool.stats");
    const stats: Record<string, number> = {};
    for (let i = 0; i < Math.min(n[0], names.length); i++) stats[names[i]] = Number(out[i]);
    return stats as MemoryPoolStats;
  }

  /** Releases the pool's free buffers; buffers still in use stay valid until released. Idempotent. */
  close(): void {
    if (this.#handle === 0) return;
    const h = this.#handle;
    this.#handle = 0;
    poolFinalizer.unregister(this.#token);
    check(native.symbols.spead_memory_pool_destroy(h), "MemoryPool.close");
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
