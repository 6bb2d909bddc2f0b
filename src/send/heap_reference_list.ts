/**
 * spead2's `send.HeapReferenceList`: a group of heap references converted for
 * sending once, so that sending the same group again (tutorial 11's batches)
 * costs one refresh of what changes per send instead of one conversion per
 * heap. The heaps may still be modified: a changed heap is noticed and the
 * group converted again.
 */
import { SpeadError } from "../errors.ts";
import { HeapReference } from "./bytes_stream.ts";
import type { Heap } from "./heap.ts";
import type { PreparedTable } from "./item_table.ts";

/** Heap records of a group, cached with its item table (`HeapRecord`s, ffi/abi.gen.ts). */
interface PreparedGroup {
  table: PreparedTable;
  records: BigUint64Array;
}

/** A pre-converted list of {@link HeapReference}s for `asyncSendHeaps` / `sendHeaps`. */
export class HeapReferenceList {
  /** The references, in order. */
  readonly references: readonly HeapReference[];
  /** The references' heaps, in order. */
  readonly heaps: readonly Heap[];
  /** @internal The converted form, owned by the stream that sends the list. */
  prepared: PreparedGroup | undefined;

  /** @param references heaps or references, in sending order; at least one. */
  /** Converts the heaps once, for repeated sends. */
  constructor(references: ReadonlyArray<HeapReference | Heap>) {
    if (references.length === 0) throw new SpeadError("invalid_argument", "HeapReferenceList needs at least one heap");
    this.references = references.map((r) => (r instanceof HeapReference ? r : new HeapReference(r)));
    this.heaps = this.references.map((r) => r.heap);
  }

  /** Number of references. */
  get length(): number {
    return this.references.length;
  }

  /** The references `start` to `end` (exclusive) as a new list (Python's `heaps[start:end]`). */
  slice(start?: number, end?: number): HeapReferenceList {
    return new HeapReferenceList(this.references.slice(start, end));
  }
}
