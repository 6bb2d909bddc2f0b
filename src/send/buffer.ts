/**
 * Stable native send buffers: pre-faulted mmap memory (huge pages on request)
 * exposed to JS as a zero-copy Uint8Array. Heaps may reference any JS typed
 * array, but a NativeBuffer is memory the JS engine never moves, already
 * faulted in — the right home for data that is refilled and resent
 * (spead2's tutorial 8 double buffering).
 */
import { BufferInfoView } from "../../ffi/abi.gen.ts";
import { lib, native } from "../../ffi/mod.ts";
import { SpeadError } from "../errors.ts";
import { type NativeKind, NativeObject } from "../lifetime.ts";
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


const kind: NativeKind = {
  what: "send.NativeBuffer",
  destroy: lib.bufferFree,
  closedCode: "released",
  closedMessage: "native buffer has been released",
  reportReclaimed: true,
};

/** Scratch for the result of `spead_buffer_alloc`, read right after each call (a record per call would cost an ArrayBuffer). */
const allocInfo = new BufferInfoView();
const allocInfoBytes = allocInfo.bytes;

/**
 * A pre-faulted native buffer. `bytes` is a view of it; `release()` frees it.
 * A send that references it keeps it mapped until that send completes, even
 * if `release()` is called first (the view is detached at once).
 */
export class NativeBuffer extends NativeObject implements Disposable {
  #bytes: Uint8Array | null;
  /** Whether the buffer is on huge pages (hugetlb, or transparent huge pages requested; see {@link BufferOptions}). */
  readonly huge: boolean;
  /** @internal The native address of byte 0 (below 2^53): a view's address is this plus its byteOffset. */
  readonly address: number;

  /** @internal use {@link allocateBuffer}. */
  constructor(size: number, options: BufferOptions = {}) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new SpeadError("invalid_argument", `buffer size ${size}`);
    lib.bufferAlloc(size % 2 ** 32, Math.floor(size / 2 ** 32), options.preferHuge ? 1 : 0, allocInfoBytes, "allocateBuffer");
    const huge = allocInfo.huge !== 0;
    const ab = native.arrayBufferAt(allocInfo.address, size);
    // The finalizer watches the memory, not this object: views of it keep the buffer alive.
    super(allocInfo.handle, kind, ab);
    this.huge = huge;
    this.address = Number(allocInfo.address);
    this.#bytes = new Uint8Array(ab);
    owners.set(ab, this);
  }

  /** The buffer's memory; throws after release. */
  get bytes(): Uint8Array {
    if (this.#bytes === null) throw new SpeadError("released", "native buffer has been released");
    return this.#bytes;
  }

  /** @internal A send starts referencing this buffer. */
  pin(): void {
    this.hold();
  }

  /** @internal A send that referenced this buffer completed. */
  unpin(): void {
    this.unhold();
  }

  /** Frees the buffer (deferred while a send still reads it); detaches `bytes` now. Idempotent. */
  release(): void {
    this.close();
  }

  /** Same as `release()`. */
  override close(): void {
    super.close();
  }

  /** Detaches `bytes` now; the memory is freed once no send reads it. */
  protected override beforeClose(): void {
    const ab = this.#bytes!.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer };
    this.#bytes = null;
    // The detached memory object may be collected before a send in flight lets go: no finalizer now.
    this.disown();
    owners.delete(ab);
    if (typeof ab.transfer === "function") ab.transfer(0);
  }
}

/** Allocates a pre-faulted native buffer of `size` bytes for sending. */
export function allocateBuffer(size: number, options: BufferOptions = {}): NativeBuffer {
  return new NativeBuffer(size, options);
}
