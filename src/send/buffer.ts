/**
 * Stable native send buffers: pre-faulted mmap memory (huge pages on request)
 * exposed to JS as a zero-copy Uint8Array. Heaps may reference any JS typed
 * array, but a NativeBuffer is memory the JS engine never moves, already
 * faulted in — the right home for data that is refilled and resent
 * (spead2's tutorial 8 double buffering).
 */
import { native } from "../../ffi/mod.ts";
import { check, SpeadError } from "../errors.ts";
import { reclaimedByGc } from "../lifetime.ts";
import { owners } from "./buffer_owners.ts";

/** Options of {@link allocateBuffer}. */
export interface BufferOptions {
  /**
   * Huge pages: hugetlb pages where the machine reserves them, else (for
   * buffers of at least one huge page) a huge-page-aligned mapping with
   * transparent huge pages requested; normal pages as the last resort. Both
   * refilling the buffer and the kernel's copy out of it get cheaper.
   */
  preferHuge?: boolean;
}


const finalizer = new FinalizationRegistry<number>((handle) => {
  native.symbols.spead_buffer_free(handle);
  reclaimedByGc("send.NativeBuffer");
});

/**
 * A pre-faulted native buffer. `bytes` is a view of it; `release()` frees it.
 * A send that references it keeps it mapped until that send completes, even
 * if `release()` is called first (the view is detached at once).
 */
export class NativeBuffer implements Disposable {
  #handle: number;
  #bytes: Uint8Array | null;
  #inFlight = 0;
  #releaseWanted = false;
  /** Whether the buffer is on huge pages (hugetlb, or transparent huge pages requested; see {@link BufferOptions}). */
  readonly huge: boolean;
  readonly #token = {};

  /** @internal use {@link allocateBuffer}. */
  constructor(size: number, options: BufferOptions = {}) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new SpeadError("invalid_argument", `buffer size ${size}`);
    const out = new BigUint64Array(4);
    check(
      native.symbols.spead_buffer_alloc(size % 2 ** 32, Math.floor(size / 2 ** 32), options.preferHuge ? 1 : 0, out),
      "allocateBuffer",
    );
    this.#handle = Number(out[1]);
    this.huge = out[3] !== 0n;
    const ab = native.arrayBufferAt(out[0], size);
    this.#bytes = new Uint8Array(ab);
    owners.set(ab, this);
    finalizer.register(ab, this.#handle, this.#token);
  }

  /** The buffer's memory; throws after release. */
  get bytes(): Uint8Array {
    if (this.#bytes === null) throw new SpeadError("released", "native buffer has been released");
    return this.#bytes;
  }

  /** @internal The native handle (for a receive stream's reader); throws after release. */
  get nativeHandle(): number {
    if (this.#handle === 0 || this.#bytes === null) throw new SpeadError("released", "native buffer has been released");
    return this.#handle;
  }

  /** @internal A send starts referencing this buffer. */
  pin(): void {
    this.#inFlight++;
  }

  /** @internal A send that referenced this buffer completed. */
  unpin(): void {
    this.#inFlight--;
    if (this.#inFlight === 0 && this.#releaseWanted) this.#free();
  }

  /** Frees the buffer (deferred while a send still reads it); detaches `bytes` now. Idempotent. */
  release(): void {
    if (this.#bytes === null) return;
    const ab = this.#bytes.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer };
    this.#bytes = null;
    finalizer.unregister(this.#token);
    owners.delete(ab);
    if (typeof ab.transfer === "function") ab.transfer(0);
    this.#releaseWanted = true;
    if (this.#inFlight === 0) this.#free();
  }

  #free(): void {
    if (this.#handle === 0) return;
    const h = this.#handle;
    this.#handle = 0;
    check(native.symbols.spead_buffer_free(h), "NativeBuffer.release");
  }

  /** Same as `release()` (for `using`). */
  [Symbol.dispose](): void {
    this.release();
  }
}

/** Allocates a pre-faulted native buffer of `size` bytes for sending. */
export function allocateBuffer(size: number, options: BufferOptions = {}): NativeBuffer {
  return new NativeBuffer(size, options);
}
