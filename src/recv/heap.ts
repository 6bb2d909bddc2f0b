/**
 * Received heaps. A heap's payload lives in native memory; item values are
 * zero-copy views into it. The heap is a lease: call `release()` (or use
 * `using heap = ...`) when done. After release every method throws
 * `SpeadError("released")`, and views taken earlier are detached (length 0),
 * so stale reads can never touch freed memory.
 */
import { HeapDescriptionWords, ItemDescriptionWords } from "../../ffi/abi.gen.ts";
import { lib, native, protocol, Status } from "../../ffi/mod.ts";
import { fail, SpeadError } from "../errors.ts";
import { Flavour } from "../flavour.ts";
import { Descriptor } from "../descriptor.ts";
import type { RawItem } from "../item.ts";
import type { HeapBatch } from "./heap_wrap.ts";

const DESCRIPTOR_ID = 5;
// HeapDescription and ItemDescription as u64 word indices, generated from zig/abi/records.zig.
const D = HeapDescriptionWords;
const I = ItemDescriptionWords;

/** Frees the native heap when the JS side forgot to release it (safety net only). */
const leakFinalizer = new FinalizationRegistry<number>((handle) => {
  try {
    lib.recvHeapRelease(handle);
  } catch {
    // a finalizer has nobody to report to; the handle was stale
  }
});

// One describe buffer for every heap. A heap reads its header fields out of it
// as numbers when it is made (u32 halves: no BigInt, no typed array per heap,
// which cost 0.1-1.5 us a heap under Bun and Deno) and describes itself again
// when its items are asked for.
const describeScratch = new BigUint64Array(D.size + I.size * 16);
const describeScratch32 = new Uint32Array(describeScratch.buffer);
const describeUsed = new Uint32Array(1);
const TWO_32 = 2 ** 32;

/**
 * Describes a heap handle (docs/ABI.md): the shared scratch buffer, or a fresh
 * one for a heap with more items than it holds. Read it before the next call.
 */
function describe(handle: number): BigUint64Array {
  if (lib.recvHeapDescribe(handle, describeScratch, describeScratch.length, describeUsed, "heap describe") === Status.buffer_too_small) {
    const words = new BigUint64Array(describeUsed[0]);
    const st = lib.recvHeapDescribe(handle, words, words.length, describeUsed, "heap describe");
    if (st !== Status.ok) fail(st, "heap describe");
    return words;
  }
  return describeScratch;
}

// Heaps share one Flavour per (heap address bits, bug_compat): they are immutable.
const flavours = new Map<number, Flavour>();

function flavourOf(heapAddressBits: number, bugCompat: number): Flavour {
  const key = heapAddressBits * 8 + bugCompat;
  let flavour = flavours.get(key);
  if (flavour === undefined) {
    flavour = new Flavour(4, 64, heapAddressBits, bugCompat);
    flavours.set(key, flavour);
  }
  return flavour;
}

function immediateBytes(value: bigint, width: number): Uint8Array {
  const out = new Uint8Array(width);
  let v = value;
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** A complete heap popped from a receive stream (spead2's `recv.Heap`). */
export class Heap implements Disposable {
  #handle: number;
  /** The payload as an ArrayBuffer, made on first use (undefined until then). */
  #payload: ArrayBuffer | null | undefined = undefined;
  /** The description's flags word (bit 0 complete, 1 contiguous, 2 start, 3 end of stream). */
  readonly #flags: number;
  /** Header fields of the description (values below 2^53; heap length -1 when unknown). */
  readonly #cntLow: number;
  readonly #cntHigh: number;
  #cnt: bigint | undefined = undefined;
  readonly #heapLength: number;
  readonly #receivedLength: number;
  readonly #payloadAddress: number;
  readonly #payloadSize: number;
  readonly #itemCount: number;
  /** The flavour the heap was received with. */
  readonly flavour: Flavour;
  /** The batch this heap was popped in (null: registered on its own) and its index there. */
  #batch: HeapBatch | null = null;
  #batchIndex = 0;

  /** @internal Streams construct heaps; users never do. */
  constructor(handle: number, batch?: HeapBatch, batchIndex = 0) {
    this.#handle = handle;
    const w = describe(handle);
    const h = w === describeScratch ? describeScratch32 : new Uint32Array(w.buffer, 0, 2 * D.size);
    this.#cntLow = h[2 * D.cnt];
    this.#cntHigh = h[2 * D.cnt + 1];
    this.#flags = h[2 * D.flags];
    const lengthHigh = h[2 * D.heap_length + 1];
    this.#heapLength = lengthHigh === 0xffff_ffff ? -1 : lengthHigh * TWO_32 + h[2 * D.heap_length];
    this.#receivedLength = h[2 * D.received_length + 1] * TWO_32 + h[2 * D.received_length];
    this.#payloadAddress = h[2 * D.payload_address + 1] * TWO_32 + h[2 * D.payload_address];
    this.#payloadSize = h[2 * D.payload_size + 1] * TWO_32 + h[2 * D.payload_size];
    this.#itemCount = h[2 * D.item_count];
    this.flavour = flavourOf(h[2 * D.heap_address_bits], h[2 * D.bug_compat]);
    // The registry watches the heap (or its batch) until its payload buffer is
    // made, then that buffer (which every item view keeps alive, see
    // #payloadBuffer), so native memory is only freed once no view can reach it.
    // The heap is its own unregister token.
    if (batch === undefined) {
      leakFinalizer.register(this, handle, this);
    } else {
      this.#batch = batch;
      this.#batchIndex = batchIndex;
    }
  }

  /** Takes this heap out of the safety net it is in (its own registration or its batch's). */
  #unwatch(): void {
    if (this.#batch === null) {
      leakFinalizer.unregister(this);
    } else {
      this.#batch.handles[this.#batchIndex] = 0;
      this.#batch = null;
    }
  }

  /** Heap counter (ID) of this heap. */
  get cnt(): bigint {
    return this.#cnt ??= (BigInt(this.#cntHigh) << 32n) | BigInt(this.#cntLow);
  }

  /**
   * The payload buffer, made on first use: a heap released unread never makes
   * one (nor registers it with the finalizer).
   */
  #payloadBuffer(): ArrayBuffer | null {
    if (this.#payload !== undefined) return this.#payload;
    const size = this.#payloadSize;
    const ab = size > 0 ? native.arrayBufferAt(BigInt(this.#payloadAddress), size) : null;
    this.#payload = ab;
    if (ab) {
      this.#unwatch();
      leakFinalizer.register(ab, this.#handle, this);
    }
    return ab;
  }

  #live(): void {
    if (this.#handle === 0) throw new SpeadError("released", `heap ${this.cnt} has been released`);
  }

  /** True until {@link release} is called. */
  get isReleased(): boolean {
    return this.#handle === 0;
  }

  /** HEAP_LENGTH, or -1 when the heap carried none (unsized). */
  get heapLength(): number {
    this.#live();
    return this.#heapLength;
  }

  /** Payload bytes actually received. */
  get receivedLength(): number {
    this.#live();
    return this.#receivedLength;
  }

  /** Whether every payload byte arrived. */
  isComplete(): boolean {
    this.#live();
    return (this.#flags & 1) !== 0;
  }

  /** Whether the payload received is one prefix without holes (spead2's is_contiguous). */
  isContiguous(): boolean {
    this.#live();
    return (this.#flags & 2) !== 0;
  }

  /** Whether the heap carries the STREAM_CTRL start item. */
  isStartOfStream(): boolean {
    this.#live();
    return (this.#flags & 4) !== 0;
  }

  /** Whether the heap carries the STREAM_CTRL stop item. */
  isEndOfStream(): boolean {
    this.#live();
    return (this.#flags & 8) !== 0;
  }

  /** The whole payload as a zero-copy view (spead2's `get_payload`). */
  getPayload(): Uint8Array {
    this.#live();
    const payload = this.#payloadBuffer();
    return payload ? new Uint8Array(payload) : new Uint8Array(0);
  }

  /**
   * The raw items in spead2's order (addressed items by address, then
   * immediates). Addressed values are zero-copy views valid until release.
   */
  getItems(): RawItem[] {
    this.#live();
    const n = this.#itemCount;
    const items: RawItem[] = [];
    if (n === 0) return items;
    const w = describe(this.#handle);
    const width = this.flavour.addressBytes;
    for (let i = 0; i < n; i++) {
      const r = D.size + I.size * i;
      const id = Number(w[r + I.id]);
      const isImmediate = w[r + I.is_immediate] !== 0n;
      const v = w[r + I.value];
      if (isImmediate) {
        items.push({ id, isImmediate, immediateValue: v, value: immediateBytes(v, width) });
      } else {
        const off = Number(v);
        const len = Number(w[r + I.length]);
        const payload = this.#payloadBuffer();
        const value = payload ? new Uint8Array(payload, off, len) : new Uint8Array(0);
        items.push({ id, isImmediate, immediateValue: 0n, value });
      }
    }
    return items;
  }

  /** Decodes the descriptors this heap carries (items with ID 0x05). */
  getDescriptors(): Descriptor[] {
    const out: Descriptor[] = [];
    for (const item of this.getItems()) {
      if (item.id !== DESCRIPTOR_ID) continue;
      try {
        out.push(Descriptor.fromRaw(item.value, this.flavour));
      } catch (err) {
        // spead2's heap skips a descriptor packet it cannot decode (with a log line), but a
        // decodable descriptor with a bad numpy header or format raises from update(): the
        // native decoder's errors carry a status, the TS parsers' do not.
        if (!(err instanceof SpeadError) || err.status === undefined) throw err;
        console.warn(`spead: skipping undecodable descriptor in heap ${this.cnt}: ${err.message}`);
      }
    }
    return out;
  }

  /** The STREAM_CTRL value, if the heap has one. */
  get streamControl(): bigint | undefined {
    for (const item of this.getItems()) if (item.id === protocol.id_stream_ctrl && item.isImmediate) return item.immediateValue;
    return undefined;
  }

  /**
   * Returns the payload to native memory (or its pool). Idempotent. Every view
   * of this heap is detached first, so later reads see length 0, not freed memory.
   */
  release(): void {
    if (this.#handle === 0) return;
    const handle = this.#handle;
    this.#handle = 0;
    this.#unwatch();
    if (this.#payload) {
      const ab = this.#payload as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer };
      this.#payload = null;
      if (typeof ab.transfer === "function") ab.transfer(0);
    }
    lib.recvHeapRelease(handle, "heap release");
  }

  /** Same as `release()` (for `using`). */
  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * A heap that was not fully received, delivered when the ring is configured with
 * `contiguousOnly: false` (spead2's `IncompleteHeap`). It carries only immediates.
 */
export class IncompleteHeap extends Heap {}
