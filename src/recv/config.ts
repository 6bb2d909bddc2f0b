import { checkInteger, checkOptions } from "../errors.ts";

import { MmapAllocator } from "../mmap_allocator.ts";

/** Copy payloads into heaps with the C library's memcpy (spead2's `MEMCPY_STD`; the default). */
export const MEMCPY_STD = 0;
/**
 * Copy payloads into heaps with non-temporal (streaming) stores, which bypass
 * the caches (spead2's `MEMCPY_NONTEMPORAL`): faster when heap buffers are cold
 * (many heaps in flight, a large pool) and the payload is read later if at
 * all; slower when the consumer reads each heap at once. x86-64 only; elsewhere
 * it is the same as {@link MEMCPY_STD}.
 */
export const MEMCPY_NONTEMPORAL = 1;

/** A memory pool as a stream sees it (see `MemoryPool`). */
export interface PayloadAllocator {
  /** Native pool handle (docs/ABI.md, stream config word 8). */
  readonly nativeHandle: number;
}

/** Options of {@link StreamConfig}; defaults are spead2's. */
export interface StreamConfigOptions {
  /** Live (partial) heaps kept per substream before the oldest is evicted. Default 4. */
  maxHeaps?: number;
  /** Heap cnts are spread over this many independent slot sets (cnt % substreams). Default 1. */
  substreams?: number;
  /** PySPEAD 0.5.2 compatibility flags (0..7). Default 0. */
  bugCompat?: number;
  /** Accept packets of a heap in any order. Default false. */
  allowOutOfOrder?: boolean;
  /** Accept heaps without HEAP_LENGTH. Default true. */
  allowUnsizedHeaps?: boolean;
  /** Stop the stream on a STREAM_CTRL stop item. Default true. */
  stopOnStopItem?: boolean;
  /**
   * Where heap payloads come from: a `MemoryPool`, an `MmapAllocator`, or by
   * default a plain pre-faulting allocator (as spead2's default).
   */
  memoryAllocator?: PayloadAllocator | MmapAllocator;
  /**
   * Largest HEAP_LENGTH accepted, in bytes (rounded up to whole MiB; default
   * 256 MiB). Not in spead2: it stops one forged header from making the
   * receiver allocate gigabytes. Such packets are counted in
   * `packets_rejected_too_large`.
   */
  maxHeapLength?: number;
  /** How payloads are copied into heaps: {@link MEMCPY_STD} (default) or {@link MEMCPY_NONTEMPORAL}. */
  memcpy?: number;
}


/** Receive stream configuration (spead2's `recv.StreamConfig`); immutable. */
export class StreamConfig {
  /** spead2's default for `maxHeaps`. */
  static readonly DEFAULT_MAX_HEAPS = 4;
  /** Live heaps per substream before the oldest is evicted. */
  readonly maxHeaps: number;
  /** Independent slot sets, chosen by cnt modulo this. */
  readonly substreams: number;
  /** PySPEAD 0.5.2 compatibility flags (0..7). */
  readonly bugCompat: number;
  /** Whether packets of a heap may arrive in any order. */
  readonly allowOutOfOrder: boolean;
  /** Whether heaps without HEAP_LENGTH are accepted. */
  readonly allowUnsizedHeaps: boolean;
  /** Whether a STREAM_CTRL stop item stops the stream. */
  readonly stopOnStopItem: boolean;
  /** Where heap payloads come from (undefined: a pre-faulting default allocator). */
  readonly memoryAllocator: PayloadAllocator | MmapAllocator | undefined;
  /** Largest HEAP_LENGTH accepted, in bytes. */
  readonly maxHeapLength: number;
  /** How payloads are copied into heaps ({@link MEMCPY_STD} or {@link MEMCPY_NONTEMPORAL}). */
  readonly memcpy: number;

  /** Checks the options; throws `invalid_argument` naming a value outside its range. */
  constructor(options: StreamConfigOptions = {}) {
    checkOptions("options", options, "recv.StreamConfigOptions ({ maxHeaps, memoryAllocator, ... })");
    this.maxHeaps = checkInteger("maxHeaps", options.maxHeaps ?? StreamConfig.DEFAULT_MAX_HEAPS, 1, 65536);
    this.substreams = checkInteger("substreams", options.substreams ?? 1, 1, 65536);
    this.bugCompat = checkInteger("bugCompat", options.bugCompat ?? 0, 0, 7);
    this.allowOutOfOrder = options.allowOutOfOrder ?? false;
    this.allowUnsizedHeaps = options.allowUnsizedHeaps ?? true;
    this.stopOnStopItem = options.stopOnStopItem ?? true;
    this.memoryAllocator = options.memoryAllocator;
    this.maxHeapLength = checkInteger("maxHeapLength", options.maxHeapLength ?? 256 * 2 ** 20, 1, 2 ** 52);
    this.memcpy = checkInteger("memcpy", options.memcpy ?? MEMCPY_STD, MEMCPY_STD, MEMCPY_NONTEMPORAL);
  }
}

/** Options of {@link RingStreamConfig}; defaults are spead2's. */
export interface RingStreamConfigOptions {
  /** Capacity of the ring of completed heaps. Default 4. */
  heaps?: number;
  /** Drop heaps that are not contiguous (default true); false delivers `IncompleteHeap`s. */
  contiguousOnly?: boolean;
}

/** Ring configuration of a receive stream (spead2's `recv.RingStreamConfig`). */
export class RingStreamConfig {
  /** spead2's default ring capacity. */
  static readonly DEFAULT_HEAPS = 4;
  /** Completed heaps the ring holds. */
  readonly heaps: number;
  /** Whether heaps that are not contiguous are dropped (true) or delivered as `IncompleteHeap`. */
  readonly contiguousOnly: boolean;

  /** Checks the options; throws `invalid_argument` naming a value outside its range. */
  constructor(options: RingStreamConfigOptions = {}) {
    checkOptions("options", options, "recv.RingStreamConfigOptions ({ heaps, contiguousOnly })");
    this.heaps = checkInteger("heaps", options.heaps ?? RingStreamConfig.DEFAULT_HEAPS, 1, 65536);
    this.contiguousOnly = options.contiguousOnly ?? true;
  }
}
