/**
 * spead: the SPEAD protocol for Bun and Deno on a Zig core, byte-compatible
 * with spead2. Public API only; everything is re-exported from src/.
 *
 * @module
 */
export {
  BUG_COMPAT_DESCRIPTOR_WIDTHS,
  BUG_COMPAT_PYSPEAD_0_5_2,
  BUG_COMPAT_SHAPE_BIT_1,
  BUG_COMPAT_SWAP_ENDIAN,
  Flavour,
} from "./src/flavour.ts";
export { Empty, type NativeErrorCode, SpeadError, type SpeadErrorCode, Stopped } from "./src/errors.ts";
export { Descriptor, type DescriptorOptions, type RawDescriptor } from "./src/descriptor.ts";
export { Item, type ItemOptions, type NewOrder, type RawItem, type SetFromRawOptions } from "./src/item.ts";
export { type AddItemOptions, type HeapLike, ItemGroup, type UpdateOptions } from "./src/item_group.ts";
export {
  type ByteOrder,
  type Complex,
  type Descr,
  DType,
  type ArrayCtor,
  type DTypeField,
  type DTypeKind,
  type DTypeLike,
  type Format,
  type FormatField,
  type ItemValue,
  type Order,
  type ScalarValue,
  type TypedArray,
} from "./src/dtype/mod.ts";
export {
  CTRL_DESCRIPTOR_REISSUE,
  CTRL_DESCRIPTOR_UPDATE,
  CTRL_STREAM_START,
  CTRL_STREAM_STOP,
  DESCRIPTOR_ID,
  HEAP_CNT_ID,
  HEAP_LENGTH_ID,
  NULL_ID,
  PAYLOAD_LENGTH_ID,
  PAYLOAD_OFFSET_ID,
  STREAM_CTRL_ID,
} from "./src/protocol.ts";
/** The base of every object that owns native memory or threads (close, `using`, finalizer). */
export { NativeObject } from "./src/lifetime.ts";
export { MemoryPool, type MemoryPoolOptions, type MemoryPoolStats } from "./src/memory_pool.ts";
/** spead2's `MEMCPY_STD` / `MEMCPY_NONTEMPORAL` (`recv.StreamConfig({ memcpy })`); also in `recv`. */
export { MEMCPY_NONTEMPORAL, MEMCPY_STD } from "./src/recv/config.ts";
export { MmapAllocator } from "./src/mmap_allocator.ts";
export { ThreadPool, type ThreadPoolOptions } from "./src/thread_pool.ts";
export { processStats, type ProcessStats } from "./src/process_stats.ts";
/** The send side: spead2's `spead2.send` (heaps, streams, item groups). Also the `./send` entry point. */
export * as send from "./src/send/mod.ts";
/** The receive side: spead2's `spead2.recv` (streams, heaps, chunk streams). Also the `./recv` entry point. */
export * as recv from "./src/recv/mod.ts";
