import { checkOptions } from "./errors.ts";

/**
 * spead2's `MmapAllocator(flags, prefer_huge)`: heap payloads (or pool
 * buffers) from anonymous mmap, pre-faulted, optionally on huge pages with a
 * clean fallback to normal pages.
 */
export class MmapAllocator {
  /** Try huge pages first (falling back to normal pages). */
  readonly preferHuge: boolean;

  /** An allocator; `preferHuge` defaults to false. */
  constructor(options: { preferHuge?: boolean } = {}) {
    checkOptions("options", options, "{ preferHuge }");
    this.preferHuge = options.preferHuge ?? false;
  }

  /** @internal Allocator flags of the native config words (docs/ABI.md). */
  get nativeFlags(): number {
    return this.preferHuge ? 1 : 2;
  }
}
