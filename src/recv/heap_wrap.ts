/** Popped native heap handles to Heap objects (recv.Stream). */
import { Heap, IncompleteHeap } from "./heap.ts";

/** Wraps a popped native heap handle in the right class. */
export function wrapHeap(handle: number): Heap {
  const probe = new Heap(handle);
  if (probe.isContiguous()) return probe;
  // Re-wrapping the same handle would double-register it; build the subclass view directly.
  Object.setPrototypeOf(probe, IncompleteHeap.prototype);
  return probe;
}
