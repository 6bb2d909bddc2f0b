/**
 * Item descriptors (spead2's `Descriptor`): the metadata that tells a receiver
 * how to decode an item's bytes.
 */
import { DescriptorFieldsLayout, DescriptorFieldsView } from "../ffi/abi.gen.ts";
import { lib, native, Status } from "../ffi/mod.ts";
import { fail, SpeadError } from "./errors.ts";
import { BUG_COMPAT_SWAP_ENDIAN, Flavour } from "./flavour.ts";
import {
  Codec,
  DType,
  type DTypeLike,
  type Format,
  type FormatField,
  formatNumpyHeader,
  formatsEqual,
  type Order,
  parseNumpyHeader,
} from "./dtype/mod.ts";
import {
  decodeCapacityWords,
  descriptorPartsSize,
  type RawDescriptor,
  unpackDescriptorWords,
  writeDescriptorParts,
} from "./descriptor_raw.ts";

export type { RawDescriptor } from "./descriptor_raw.ts";

/** Constructor options of a {@link Descriptor}. Exactly one of `dtype` and `format` must be given. */
export interface DescriptorOptions {
  /** SPEAD item ID. */
  id: number;
  /** Short name, used as the key in an ItemGroup. ASCII. */
  name: string;
  /** Long description. ASCII. Default `""`. */
  description?: string;
  /** Dimensions; `null` marks a variable-size dimension (at most one, and not with `dtype`). Default `[]` (a scalar). */
  shape?: ReadonlyArray<number | null>;
  /** numpy data type (`'<u2'`, `'float32'`, a descr list, or a {@link DType}). */
  dtype?: DTypeLike | null;
  /** spead2 legacy format: `[code, bits]` fields such as `[['u', 40]]`. */
  format?: Format | null;
  /** `'C'` or `'F'` storage order; must be `'C'` with `format`. Default `'C'`. */
  order?: Order;
}

/** Scratch for `spead_descriptor_encode`'s record, written before each call (every field is set). */
const encodeFields = new DescriptorFieldsView();
const encodeFieldsBytes = encodeFields.bytes;
/** The record as u32 halves, for its u64 fields (numbers, no BigInt per field). */
const encodeHalves = new Uint32Array(encodeFields.view.buffer, encodeFields.view.byteOffset, DescriptorFieldsLayout.size / 4);
/** Scratch for the encoded length. */
const encodeLen = new Uint32Array(1);

/**
 * Scratch native-visible memory for the parts the record points at (format and
 * shape pairs, then the strings), written in place by `writeDescriptorParts`
 * and grown as needed; its address is taken once per growth. Separate arrays
 * per call would each need an ArrayBuffer and an address (~0.3 µs apiece under Bun).
 */
let stageHalves = new Uint32Array(0);
let stageBytes = new Uint8Array(0);
/** A user-space address (< 2^53), kept as a number so that offsets need no BigInt. */
let stageAddress = 0;

/** Writes a u64 field of the record (byte `offset`) as two u32 halves. */
function setWord(offset: number, value: number): void {
  encodeHalves[offset / 4] = value % 2 ** 32;
  encodeHalves[offset / 4 + 1] = Math.floor(value / 2 ** 32);
}

/** Writes `raw`'s parts into the stage and the whole record (but the flavour) into `encodeFields`. */
function stageDescriptor(raw: RawDescriptor): number {
  const size = descriptorPartsSize(raw);
  if (size > stageBytes.length || stageAddress === 0) {
    const buffer = new ArrayBuffer(8 * Math.max(64, Math.ceil((2 * size) / 8)));
    stageHalves = new Uint32Array(buffer);
    stageBytes = new Uint8Array(buffer);
    stageAddress = Number(native.addressOf(stageBytes));
  }
  const p = writeDescriptorParts(raw, stageHalves, stageBytes);
  setWord(DescriptorFieldsLayout.id, raw.id);
  setWord(DescriptorFieldsLayout.format_address, stageAddress);
  setWord(DescriptorFieldsLayout.shape_address, stageAddress + 16 * p.formatCount);
  setWord(DescriptorFieldsLayout.name_address, stageAddress + p.nameAt);
  setWord(DescriptorFieldsLayout.description_address, stageAddress + p.descriptionAt);
  setWord(DescriptorFieldsLayout.dtype_address, stageAddress + p.dtypeAt);
  encodeFields.name_len = p.nameLen;
  encodeFields.description_len = p.descriptionLen;
  encodeFields.format_count = p.formatCount;
  encodeFields.shape_count = p.shapeCount;
  encodeFields.dtype_len = p.dtypeLen;
  return size;
}

/** @internal How values are decoded (spead2's `_fastpath`). */
export type Fastpath = "numpy" | "immediate" | "none";

/**
 * Metadata for a SPEAD item: ID, name, description, shape and type (numpy
 * dtype or legacy format). Validation follows spead2: at most one variable
 * dimension; exactly one of dtype and format; no variable dimensions with a
 * dtype; `order` `'C'` with a format; no zero-sized dtype.
 */
export class Descriptor {
  /** SPEAD item ID. */
  readonly id: number;
  /** Short name, the key in an ItemGroup. */
  readonly name: string;
  /** Long description. */
  readonly description: string;
  /** Dimensions; `null` is a variable-size dimension. */
  readonly shape: ReadonlyArray<number | null>;
  /** The numpy dtype, or `null` when the descriptor uses a legacy format. */
  readonly dtype: DType | null;
  /** The legacy format, or `null` when the descriptor uses a dtype. */
  readonly format: Format | null;
  /** Storage order of multi-dimensional values: `'C'` (row-major) or `'F'`. */
  readonly order: Order;
  /** @internal The value codec (numpy fast path or bit-packed). */
  protected readonly codec: Codec;
  /** @internal spead2's `_fastpath`. */
  protected readonly fastpath: Fastpath;

  /** Checks and stores the options; throws `invalid_argument` for inconsistent ones. */
  constructor(options: DescriptorOptions) {
    const { id, name } = options;
    const description = options.description ?? "";
    const order = options.order ?? "C";
    const shape = [...(options.shape ?? [])];
    if (!Number.isInteger(id) || id < 0) throw new SpeadError("invalid_argument", `invalid item id ${id}`);
    if (typeof name !== "string") throw new SpeadError("invalid_argument", "item name must be a string");
    for (const d of shape) {
      if (d !== null && (!Number.isInteger(d) || d < 0)) {
        throw new SpeadError("invalid_argument", `invalid shape dimension ${String(d)}`);
      }
    }
    const unknowns = shape.filter((d) => d === null).length;
    if (unknowns > 1) throw new SpeadError("invalid_argument", "cannot have multiple unknown dimensions");
    const dtypeIn = options.dtype ?? null;
    const formatIn = options.format ?? null;
    let codec: Codec;
    let dtype: DType | null = null;
    let format: Format | null = null;
    if (dtypeIn !== null) {
      dtype = DType.from(dtypeIn);
      if (formatIn !== null) throw new SpeadError("invalid_argument", "only one of dtype and format can be specified");
      if (dtype.itemsize === 0) throw new SpeadError("invalid_argument", "cannot use a zero-sized dtype");
      if (unknowns > 0) {
        throw new SpeadError("invalid_argument", "cannot have unknown dimensions when using a numpy descriptor");
      }
      codec = Codec.forDType(dtype);
    } else {
      if (formatIn === null) throw new SpeadError("invalid_argument", "one of dtype and format must be specified");
      if (order !== "C") throw new SpeadError("invalid_argument", "when specifying format, order must be 'C'");
      codec = Codec.forFormat(formatIn);
      format = codec.format;
    }
    if (order !== "C" && order !== "F") throw new SpeadError("invalid_argument", "order must be 'C' or 'F'");
    this.id = id;
    this.name = name;
    this.description = description;
    this.shape = Object.freeze(shape);
    this.dtype = dtype;
    this.format = format === null ? null : Object.freeze(format.map((f) => Object.freeze([f[0], f[1]]) as FormatField));
    this.order = order;
    this.codec = codec;
    if (!codec.bitPacked) {
      this.fastpath = "numpy";
    } else if (
      shape.length === 0 && format !== null && format.length === 1 &&
      (format[0][0] === "u" || format[0][0] === "i") && format[0][1] < 64
    ) {
      this.fastpath = "immediate";
    } else {
      this.fastpath = "none";
    }
  }

  /** The options that rebuild this descriptor (with a different ID, for example). */
  toOptions(): DescriptorOptions {
    return {
      id: this.id,
      name: this.name,
      description: this.description,
      shape: this.shape,
      dtype: this.dtype,
      format: this.format,
      order: this.order,
    };
  }

  /** Bits per element (spead2's `itemsize_bits`). */
  get itemsizeBits(): number {
    return this.codec.itemsizeBits;
  }

  /** Whether any dimension is variable (spead2's `is_variable_size`). */
  isVariableSize(): boolean {
    return this.shape.some((d) => d === null);
  }

  /**
   * Whether a small enough value may be sent as an immediate (spead2's
   * `allow_immediate`): never for variable-size items, nor for legacy formats
   * that are not a whole number of bytes per element.
   */
  allowImmediate(): boolean {
    return !this.isVariableSize() && (this.dtype !== null || this.itemsizeBits % 8 === 0);
  }

  /**
   * The concrete shape for data that can hold `maxElements` elements: the
   * variable dimension (if any) takes what is left (spead2's `dynamic_shape`).
   */
  dynamicShape(maxElements: number): number[] {
    let known = 1;
    let unknownPos = -1;
    this.shape.forEach((d, i) => {
      if (d === null) unknownPos = i;
      else known *= d;
    });
    const out = this.shape.map((d) => d ?? 0);
    if (unknownPos >= 0) out[unknownPos] = known === 0 ? 0 : Math.floor(maxElements / known);
    return out;
  }

  /** Whether a concrete shape fits this descriptor's (possibly variable) shape. */
  compatibleShape(shape: readonly number[]): boolean {
    return shape.length === this.shape.length && this.shape.every((d, i) => d === null || d === shape[i]);
  }

  /**
   * The identity test of spead2's `ItemGroup` (a re-sent descriptor equal to the
   * known one changes nothing): same ID, name, description, shape, dtype, order and format.
   */
  sameAs(other: Descriptor): boolean {
    const dtypesEqual = this.dtype === null || other.dtype === null
      ? this.dtype === other.dtype
      : this.dtype.equals(other.dtype);
    return this.id === other.id && this.name === other.name && this.description === other.description &&
      this.shape.length === other.shape.length && this.shape.every((d, i) => d === other.shape[i]) &&
      dtypesEqual && this.order === other.order && formatsEqual(this.format, other.format);
  }

  /**
   * The wire fields of this descriptor for a flavour (spead2's `to_raw`). With a
   * dtype, the numpy header carries type and shape (byte-swapped under
   * `BUG_COMPAT_SWAP_ENDIAN`) and the format is empty; the shape is sent as well.
   */
  toRawFields(flavour: Flavour = new Flavour()): RawDescriptor {
    let numpyHeader: string | null = null;
    if (this.dtype !== null) {
      const dtype = flavour.bugCompat & BUG_COMPAT_SWAP_ENDIAN ? this.dtype.newByteOrder() : this.dtype;
      numpyHeader = formatNumpyHeader(dtype, this.shape as number[], this.order);
    }
    return {
      id: this.id,
      name: this.name,
      description: this.description,
      format: this.format ?? [],
      shape: this.shape,
      numpyHeader,
    };
  }

  /**
   * Builds a descriptor from its wire fields (spead2's `from_raw`): a numpy
   * header, when present and non-empty, overrides format and shape (and is
   * byte-swapped back under `BUG_COMPAT_SWAP_ENDIAN`).
   */
  static fromRawFields(raw: RawDescriptor, flavour: Flavour = new Flavour()): Descriptor {
    if (raw.numpyHeader) {
      const header = parseNumpyHeader(raw.numpyHeader);
      const dtype = flavour.bugCompat & BUG_COMPAT_SWAP_ENDIAN ? header.dtype.newByteOrder() : header.dtype;
      return new Descriptor({
        id: raw.id,
        name: raw.name,
        description: raw.description,
        shape: header.shape,
        dtype,
        order: header.order,
      });
    }
    return new Descriptor({
      id: raw.id,
      name: raw.name,
      description: raw.description,
      shape: raw.shape,
      format: raw.format,
      order: "C",
    });
  }

  /**
   * Encodes the descriptor as spead2 does: one complete SPEAD packet, the value
   * of an item with ID 0x05 (docs/PROTOCOL.md §8). Needs the native library.
   */
  toRaw(flavour: Flavour = new Flavour()): Uint8Array {
    let cap = 256 + stageDescriptor(this.toRawFields(flavour));
    const outLen = encodeLen;
    encodeFields.heap_address_bits = flavour.heapAddressBits;
    encodeFields.bug_compat = flavour.bugCompat;
    for (let attempt = 0; attempt < 2; attempt++) {
      const out = new Uint8Array(cap);
      const status = lib.descriptorEncode(encodeFieldsBytes, out, cap, outLen, "descriptor encode");
      if (status === Status.buffer_too_small && attempt === 0 && outLen[0] > cap) {
        cap = outLen[0];
        continue;
      }
      if (status !== Status.ok) fail(status, "descriptor encode");
      return out.subarray(0, outLen[0]);
    }
    throw new SpeadError("buffer_too_small", "descriptor encode kept asking for more space");
  }

  /**
   * Decodes a descriptor item value (the bytes of an item with ID 0x05) with the
   * receiving stream's flavour. Throws `SpeadError` (`malformed`, or
   * `invalid_argument` for an invalid combination of fields). Needs the native library.
   */
  static fromRaw(bytes: Uint8Array, flavour: Flavour = new Flavour()): Descriptor {
    let cap = decodeCapacityWords(bytes.length);
    const outWords = new Uint32Array(1);
    const input = bytes.length > 0 ? bytes : new Uint8Array(1);
    for (let attempt = 0; attempt < 2; attempt++) {
      const out = new BigUint64Array(cap);
      const status = lib.descriptorDecode(flavour.bugCompat, input, bytes.length, out, cap, outWords, "descriptor decode");
      if (status === Status.buffer_too_small && attempt === 0 && outWords[0] > cap) {
        cap = outWords[0];
        continue;
      }
      if (status !== Status.ok) fail(status, "descriptor decode");
      return Descriptor.fromRawFields(unpackDescriptorWords(out, outWords[0]), flavour);
    }
    throw new SpeadError("buffer_too_small", "descriptor decode kept asking for more space");
  }

  /** A short human-readable summary. */
  toString(): string {
    const type = this.dtype !== null ? `dtype=${this.dtype.toString()}` : `format=${JSON.stringify(this.format)}`;
    const shape = `(${this.shape.map((d) => d ?? "None").join(", ")}${this.shape.length === 1 ? "," : ""})`;
    return `Descriptor(id=0x${this.id.toString(16)}, name=${JSON.stringify(this.name)}, shape=${shape}, ${type}, order=${this.order})`;
  }
}
