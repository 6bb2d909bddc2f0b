/**
 * spead2's `MemoryPool`: pre-faulted buffers for heap payloads, recycled when
 * heaps are released. Pass it as `recv.StreamConfig({ memoryAllocator: pool })`.
 */
import { MemoryPoolConfigView } from "../ffi/abi.gen.ts";
import { lib } from "../ffi/mod.ts";
import { checkOptions, SpeadError } from "./errors.ts";
import { statsReader } from "./native_stats.ts";
import { type NativeKind, NativeObject } from "./lifetime.ts";
import type { MmapAllocator } from "./mmap_allocator.ts";

/** Options of {@link MemoryPool}; defaults are spead2's. */
export interface MemoryPoolOptions {
  /** Refill in the background to `initial` when a take leaves fewer than this many free (0 = never). */
  lowWater?: number;
  /** Where pool buffers come from; `new MmapAllocator({ preferHuge: true })` asks for huge pages. */
  allocator?: MmapAllocator;
  /** Warn on stderr when the pool is empty (spead2's `warn_on_empty`). Default true. */
  warnOnEmpty?: boolean;
}

/** Pool counters (see docs/ABI.md). */
export type MemoryPoolStats = Record<string, number> & {
  readonly free: number;
  readonly outstanding: number;
  readonly allocated: number;
  readonly misses: number;
  readonly bypassed: number;
};

const readPoolStats = statsReader(lib.memoryPoolStatName, lib.memoryPoolStats, "MemoryPool.stats");

const kind: NativeKind = {
  what: "MemoryPool",
  destroy: lib.memoryPoolDestroy,
  closedMessage: "memory pool has been closed",
  reportReclaimed: true,
};

/**
 * A pool of `upper`-byte buffers serving every payload request in
 * `[lower, upper]` (others bypass it). `initial` buffers are allocated and
 * pre-faulted now; at most `maxFree` are kept when returned. With
 * `options.lowWater` > 0 a native thread refills the pool to `initial`
 * whenever a take leaves fewer than `lowWater` free (spead2's thread-pool
 * constructor). An empty pool allocates a fresh buffer and warns.
 *
 * `close()` never frees memory still in use: buffers held by unreleased heaps
 * and streams stay valid and are freed when the last one lets go.
 */
export class MemoryPool extends NativeObject implements Disposable {
  /** Smallest request served from the pool, in bytes. */
  readonly lower: number;
  /** Size of each pool buffer: the largest request served from the pool. */
  readonly upper: number;
  /** Free buffers kept at most; more are given back to the system. */
  readonly maxFree: number;
  /** Buffers allocated (and pre-faulted) up front. */
  readonly initial: number;
  /** Free buffers below which a background thread refills the pool (0: never). */
  readonly lowWater: number;
  /** Print `memory pool is empty when allocating N bytes` (at most once a second) when it runs dry. */
  readonly warnOnEmpty: boolean;
  /** Where buffers come from (default: pre-faulted anonymous mmap). */
  readonly allocator: MmapAllocator | undefined;

  /** spead2's `MemoryPool(lower, upper, max_free, initial)`; throws `invalid_argument` naming a bad size. */
  constructor(lower: number, upper: number, maxFree: number, initial: number, options: MemoryPoolOptions = {}) {
    checkOptions("options", options, "MemoryPoolOptions ({ lowWater, allocator, warnOnEmpty })");
    const lowWater = options.lowWater ?? 0;
    for (const [name, v] of [["lower", lower], ["upper", upper], ["maxFree", maxFree], ["initial", initial], [
      "lowWater",
      lowWater,
    ]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new SpeadError("invalid_argument", `${name} = ${v}`);
    }
    const warnOnEmpty = options.warnOnEmpty ?? true;
    const flags = (options.allocator?.preferHuge ? 1 : 0) | (warnOnEmpty ? 2 : 0);
    const record = new MemoryPoolConfigView();
    record.lower = BigInt(lower);
    record.upper = BigInt(upper);
    record.free_max = BigInt(maxFree);
    record.initial = BigInt(initial);
    record.low_water = BigInt(lowWater);
    record.flags = BigInt(flags);
    super(lib.memoryPoolCreate(record.view, "MemoryPool"), kind);
    this.lower = lower;
    this.upper = upper;
    this.maxFree = maxFree;
    this.initial = initial;
    this.lowWater = lowWater;
    this.warnOnEmpty = warnOnEmpty;
    this.allocator = options.allocator;
  }

  /** Current counters: free, outstanding, allocated, misses, bypassed, returned, released, refilled, failures. */
  get stats(): MemoryPoolStats {
    return readPoolStats(this.nativeHandle) as MemoryPoolStats;
  }

  /** Releases the pool's free buffers; buffers still in use stay valid until released. Idempotent. */
  override close(): void {
    super.close();
  }
}
