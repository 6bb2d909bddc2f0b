/** The native form of a receive stream's configuration (shared by recv.Stream and chunk streams). */
import { RecvStreamConfigView } from "../../ffi/abi.gen.ts";
import { MmapAllocator } from "../mmap_allocator.ts";
import type { RingStreamConfig, StreamConfig } from "./config.ts";

/** The `RecvStreamConfig` record of `spead_recv_stream_create` (ffi/abi.gen.ts); `core` -1 = no pinning. */
export function configRecord(config: StreamConfig, ring: RingStreamConfig, core = -1): Uint8Array {
  const alloc = config.memoryAllocator;
  const r = new RecvStreamConfigView();
  r.heaps_max = config.maxHeaps;
  r.substreams = config.substreams;
  r.bug_compat = config.bugCompat;
  r.allow_out_of_order = config.allowOutOfOrder ? 1 : 0;
  r.allow_unsized_heaps = config.allowUnsizedHeaps ? 1 : 0;
  r.stop_on_stop_item = config.stopOnStopItem ? 1 : 0;
  r.ring_heaps = ring.heaps;
  r.contiguous_only = ring.contiguousOnly ? 1 : 0;
  r.memory_pool = alloc instanceof MmapAllocator ? 0 : alloc?.nativeHandle ?? 0;
  r.heap_length_max_mib = Math.min(0xffff_ffff, Math.ceil(config.maxHeapLength / 2 ** 20));
  r.allocator_flags = alloc instanceof MmapAllocator ? alloc.nativeFlags : 0;
  r.reader_core = core < 0 ? 0xffff_ffff : core;
  r.memcpy = config.memcpy;
  return new Uint8Array(r.view.buffer);
}
