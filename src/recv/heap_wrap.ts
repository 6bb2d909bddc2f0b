/** Popped native heap handles to Heap objects (recv.Stream). */
import { lib } from "../../ffi/mod.ts";
import { Heap, IncompleteHeap } from "./heap.ts";

/**
 * The same safety net for heaps popped together (`getBatch`): one registration
 * for the whole batch instead of one per heap (a register/unregister pair cost
 * about 0.6-1.3 us a heap under Deno). The batch's token is referenced by each
 * of its heaps, so it is collected only once all of them are; the held handles
 * are zeroed as heaps are released or register on their own (when their payload
 * buffer is made, which item views keep alive beyond the heap).
 */
const batchFinalizer = new FinalizationRegistry<Uint32Array>((handles) => {
  for (const handle of handles) {
    if (handle === 0) continue;
    try {
      lib.recvHeapRelease(handle);
    } catch {
      // a finalizer has nobody to report to; the handle was stale
    }
  }
});

/** Heaps popped in one batch: their handles (0 once left) and the batch's finalizer token. */
export interface HeapBatch {
  readonly handles: Uint32Array;
  readonly token: object;
}

/** Registers a batch of popped heap handles (a copy is kept) with the safety net. */
export function heapBatch(handles: Uint32Array): HeapBatch {
  const batch = { handles: handles.slice(), token: {} };
  batchFinalizer.register(batch.token, batch.handles);
  return batch;
}

/** Wraps a popped native heap handle (`batch.handles[batchIndex]` when popped in a batch) in the right class. */
export function wrapHeap(handle: number, batch?: HeapBatch, batchIndex?: number): Heap {
  const probe = new Heap(handle, batch, batchIndex);
  if (probe.isContiguous()) return probe;
  // Re-wrapping the same handle would double-register it; build the subclass view directly.
  Object.setPrototypeOf(probe, IncompleteHeap.prototype);
  return probe;
}
