/**
 * A heap to send: an ordered list of items that refer to the caller's bytes
 * (spead2's `send.Heap`). Nothing is copied until the heap is packetised.
 */
import { Flavour } from "../flavour.ts";
import { checkInstance, SpeadError } from "../errors.ts";
import { CTRL_STREAM_START, CTRL_STREAM_STOP, DESCRIPTOR_ID, STREAM_CTRL_ID } from "../protocol.ts";

/**
 * One entry of a send heap: an immediate value, an immediate read from
 * referenced bytes when the heap is sent (C++ `add_item(id, ptr, len, true)`
 * on a reused heap), or a reference to bytes sent as an addressed item.
 */
export type HeapEntry =
  | { readonly id: number; readonly immediate: true; readonly value: bigint; readonly bytes?: undefined }
  | { readonly id: number; readonly immediate: true; readonly value?: undefined; readonly bytes: Uint8Array }
  | { readonly id: number; readonly immediate: false; readonly bytes: Uint8Array };

/** What {@link Heap.addItem} needs of an item (satisfied by `Item`). */
export interface SendableItem {
  /** SPEAD item ID. */
  readonly id: number;
  /** The value's bytes as sent. */
  toBuffer(): Uint8Array;
  /** Whether a value of at most heapAddressBits/8 bytes may travel as an immediate. */
  allowImmediate(): boolean;
}

/** What {@link Heap.addDescriptor} needs of a descriptor (satisfied by `Descriptor`). */
export interface EncodableDescriptor {
  /** The descriptor encoded as spead2 does for `flavour`. */
  toRaw(flavour: Flavour): Uint8Array;
}

/** Big-endian integer value of up to 7 bytes (how spead2 right-aligns small immediates). */
function bytesToImmediate(bytes: Uint8Array): bigint {
  // Up to 6 bytes fit a number exactly: one BigInt instead of one per byte (a timestamp per heap).
  if (bytes.length <= 6) {
    let n = 0;
    for (let k = 0; k < bytes.length; k++) n = n * 256 + bytes[k];
    return BigInt(n);
  }
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/**
 * A heap of items for sending. Items keep referring to the caller's memory,
 * so updating an array in place and sending the same heap again sends the new
 * values (spead2's heap reuse).
 */
export class Heap {
  /** The flavour the heap is encoded with. */
  readonly flavour: Flavour;
  /** Put every item pointer in every packet (spead2's `repeat_pointers`). */
  repeatPointers = false;
  #entries: HeapEntry[] = [];
  #version = 0;

  /** An empty heap of `flavour` (default SPEAD-64-40). */
  constructor(flavour: Flavour = new Flavour()) {
    this.flavour = checkInstance("flavour", flavour, Flavour, "a Flavour");
  }

  /** The entries in insertion order. */
  get entries(): readonly HeapEntry[] {
    return this.#entries;
  }

  /** @internal Bumped by every change to the entry list (the send path caches per version). */
  get version(): number {
    return this.#version;
  }

  #push(entry: HeapEntry): void {
    this.#entries.push(entry);
    this.#version++;
  }

  #checkId(id: number): void {
    if (!this.flavour.fitsId(id)) {
      throw new SpeadError("invalid_argument", `item id ${id} does not fit ${this.flavour}`);
    }
  }

  /**
   * Adds an item's current value (spead2's Python `Heap.add_item`): the value
   * is converted to bytes now; small fixed-size values become immediates.
   */
  addItem(item: SendableItem): void {
    const bytes = item.toBuffer();
    this.#checkId(item.id);
    if (item.allowImmediate() && bytes.byteLength <= this.flavour.addressBytes) {
      this.#push({ id: item.id, immediate: true, value: bytesToImmediate(bytes) });
    } else {
      this.#push({ id: item.id, immediate: false, bytes });
    }
  }

  /**
   * Adds raw bytes under `id` (C++ `heap::add_item(id, ptr, len, allow_immediate)`).
   * The bytes are referenced, not copied: they are read each time the heap is
   * sent. With `allowImmediate`, values of at most heapAddressBits/8 bytes go
   * inline as immediates (read at send time too, so a reused heap can carry a
   * timestamp updated in place, as spead2's tutorial 10 does).
   */
  addRaw(id: number, bytes: Uint8Array, allowImmediate = false): void {
    this.#checkId(id);
    if (allowImmediate && bytes.byteLength <= this.flavour.addressBytes) {
      this.#push({ id, immediate: true, bytes });
    } else {
      this.#push({ id, immediate: false, bytes });
    }
  }

  /** Adds an immediate integer item (C++ `heap::add_item(id, integer)`). */
  addImmediate(id: number, value: bigint | number): void {
    this.#checkId(id);
    const v = BigInt(value);
    if (v < 0n || v > this.flavour.maxValue) {
      throw new SpeadError("invalid_argument", `immediate ${v} does not fit ${this.flavour}`);
    }
    this.#push({ id, immediate: true, value: v });
  }

  /** Adds a descriptor (an item with ID 0x05 whose value is an encoded packet). */
  addDescriptor(descriptor: EncodableDescriptor): void {
    this.#push({ id: DESCRIPTOR_ID, immediate: false, bytes: descriptor.toRaw(this.flavour) });
  }

  /** Adds the start-of-stream control item. */
  addStart(): void {
    this.addImmediate(STREAM_CTRL_ID, CTRL_STREAM_START);
  }

  /** Adds the end-of-stream control item. */
  addEnd(): void {
    this.addImmediate(STREAM_CTRL_ID, CTRL_STREAM_STOP);
  }
}
