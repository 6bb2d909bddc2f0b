/**
 * Items: descriptors with a value and a version (spead2's `Item`).
 */
import { SpeadError } from "./errors.ts";
import { Descriptor, type DescriptorOptions } from "./descriptor.ts";
import { immediateInteger, immediateTail, inferShape, type ItemValue, nativeByteOrder, shapeElements } from "./dtype/mod.ts";

/**
 * One item of a received heap (spead2's `recv.RawItem`).
 */
export interface RawItem {
  /** Item ID. */
  readonly id: number;
  /** Whether the item was carried in the item pointer itself. */
  readonly isImmediate: boolean;
  /** The immediate's value (the address field); `0n` for addressed items. */
  readonly immediateValue: bigint;
  /**
   * The item's bytes: a view into the heap payload (native memory) for addressed
   * items, or the heap_address_bits/8 bytes of the address field, big-endian, for
   * immediates.
   */
  readonly value: Uint8Array;
}

/**
 * Byte order requested for decoded arrays (spead2's `new_order`): `"="` native
 * (the default), `"|"` as on the wire. JS typed arrays can only be in the
 * machine's byte order, so decoded values are always native: `"|"` gives the
 * same values as `"="`, the machine's own order character (`"<"` on x86 and
 * ARM) is accepted as `"="`, and the other one is refused with
 * `SpeadError("invalid_argument")` rather than silently ignored.
 */
export type NewOrder = "=" | "|" | "<" | ">";

function checkNewOrder(newOrder: unknown): void {
  if (newOrder === "=" || newOrder === "|" || newOrder === nativeByteOrder) return;
  if (newOrder === "<" || newOrder === ">") {
    throw new SpeadError(
      "invalid_argument",
      `newOrder ${JSON.stringify(newOrder)} cannot be honoured: JS typed arrays are in the machine's byte order ` +
        `(${JSON.stringify(nativeByteOrder)}); use "=" (or "|")`,
    );
  }
  throw new SpeadError("invalid_argument", `newOrder must be one of "=", "|", "<", ">", not ${String(newOrder)}`);
}

/** Options of {@link Item.setFromRaw}. */
export interface SetFromRawOptions {
  /** Always copy the bytes instead of returning a view on the heap's memory. */
  readonly copy?: boolean;
}

/** Constructor options of an {@link Item}: a descriptor plus an optional initial value. */
export interface ItemOptions extends DescriptorOptions {
  /** Initial value; does not bump the version. */
  value?: ItemValue | null;
}

/**
 * A SPEAD item: a descriptor with a current value and a version number that
 * increases whenever the value is assigned. The send side uses the version to
 * decide what to resend.
 *
 * Values follow the model in `dtype/mod.ts`: numbers (bigint past 53 bits),
 * booleans, strings, typed arrays (flat, C order) and arrays of tuples.
 */
export class Item extends Descriptor {
  #value: ItemValue | null;
  #valueShape: number[] | null = null;
  #isView = false;
  /** Version number; bumped by every assignment to {@link Item.value}. */
  version = 1;

  /** A descriptor with an (initially absent) value. */
  constructor(options: ItemOptions) {
    super(options);
    this.#value = options.value ?? null;
    if (this.#value !== null) this.#valueShape = inferShape(this.#value, this.shape, this.codec);
  }

  /** A new item (value `null`, version 1) with a descriptor's metadata. */
  static fromDescriptor(descriptor: Descriptor): Item {
    return new Item(descriptor.toOptions());
  }

  /**
   * The current value, or `null` if none has been set or received. Assigning
   * increments {@link Item.version}; assigning `null` throws. In-place changes to
   * an array are not detected: bump `version` yourself or send with `data: 'all'`.
   */
  get value(): ItemValue | null {
    return this.#value;
  }

  set value(newValue: ItemValue) {
    if (newValue === null || newValue === undefined) {
      throw new SpeadError("invalid_argument", "item value cannot be set to null");
    }
    // Checked now, not at the next getHeap(): a value must fit the item's shape and type.
    let shape: number[];
    try {
      // A typed array sent as it is (tutorial 8's samples, set once per heap) needs no flattening.
      const bytes = this.codec.zeroCopyBytes(newValue, this.shape);
      shape = bytes !== null ? [bytes.byteLength / this.codec.dtype!.itemsize] : inferShape(newValue, this.shape, this.codec);
    } catch (err) {
      if (err instanceof SpeadError) throw new SpeadError(err.code, `item ${this.name}: ${err.message.replace(/^[a-z_]+: /, "")}`);
      throw err;
    }
    this.#value = newValue;
    this.#valueShape = shape;
    this.#isView = false;
    this.version++;
  }

  /**
   * True when the value is a typed-array view on a received heap's memory
   * (valid only while that heap is held; copy it to keep it longer).
   */
  get valueIsView(): boolean {
    return this.#isView;
  }

  /** The concrete shape of the value (resolving a variable dimension), or `null` without a value. */
  get valueShape(): number[] | null {
    if (this.#value === null) return null;
    if (this.#valueShape === null) this.#valueShape = inferShape(this.#value, this.shape, this.codec);
    return [...this.#valueShape];
  }

  /**
   * Decodes a received raw item into the value (spead2's `set_from_raw`), and
   * bumps the version. Immediates are read from their trailing bytes. Where the
   * bytes allow it (native byte order, aligned, C order), arrays are views on the
   * heap's memory; see {@link Item.valueIsView}.
   * Throws `SpeadError("malformed")` when the bytes hold too few elements.
   */
  setFromRaw(raw: RawItem, newOrder: NewOrder = "=", options: SetFromRawOptions = {}): void {
    checkNewOrder(newOrder);
    const bytes = raw.value;
    if (this.fastpath === "numpy") {
      const itemsize = this.codec.dtype!.itemsize;
      const maxElements = Math.floor(bytes.length / itemsize);
      const shape = this.dynamicShape(maxElements);
      const elements = shapeElements(shape);
      if (elements > maxElements) {
        throw new SpeadError("malformed", `item ${this.name} has too few elements for shape (${maxElements} < ${elements})`);
      }
      const size = elements * itemsize;
      const data = raw.isImmediate ? immediateTail(bytes, size) : bytes.subarray(0, size);
      const decoded = this.codec.decode(data, shape, this.order, { copy: options.copy });
      // An immediate's bytes are a copy of the item pointer, not the heap's memory.
      this.#assign(raw.isImmediate ? { ...decoded, zeroCopy: false } : decoded);
      return;
    }
    const format = this.format!;
    if (this.fastpath === "immediate" && raw.isImmediate && bytes.length * 8 === format[0][1]) {
      const value = immediateInteger(raw.immediateValue, format[0][1], format[0][0] === "i");
      this.#assign({ value, shape: [], zeroCopy: false });
      return;
    }
    const bitsPer = this.itemsizeBits;
    const maxElements = Math.floor((bytes.length * 8) / bitsPer);
    const shape = this.dynamicShape(maxElements);
    const elements = shapeElements(shape);
    if (elements > maxElements) {
      throw new SpeadError("malformed", `item ${this.name} has too few elements for shape (${maxElements} < ${elements})`);
    }
    const data = raw.isImmediate ? immediateTail(bytes, Math.ceil((elements * bitsPer) / 8)) : bytes;
    this.#assign(this.codec.decode(data, shape, this.order));
  }

  /** A decoded value (already checked against the shape by the decoder). */
  #assign(decoded: { value: ItemValue; shape: number[]; zeroCopy: boolean }): void {
    this.#value = decoded.value;
    this.#valueShape = decoded.shape;
    this.#isView = decoded.zeroCopy;
    this.version++;
  }

  /**
   * The value's wire bytes (spead2's `to_buffer`): in the dtype's byte order and
   * the item's storage order, bit-packed for odd legacy widths, strings as ASCII.
   * A native-order typed array in C order is returned without copying (the bytes
   * alias the value, as spead2 sends numpy arrays by reference).
   */
  toBuffer(): Uint8Array {
    if (this.#value === null) throw new SpeadError("invalid_argument", `item ${this.name} has no value to send`);
    return this.codec.encodeBytes(this.#value, this.shape, this.order);
  }
}
