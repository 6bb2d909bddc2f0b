/** The codec: values of one element type to and from wire bytes (fast numpy path, bit-packed path), and the free functions over it. */
import { BitReader, BitWriter, decodeBitField, encodeBitField } from "./bit_field.ts";
import { DType, formatBits, formatToDType } from "./dtype.ts";
import { joinChars, readElement, toBigIntChecked, toFloat, toNumberChecked, writeElement } from "./element.ts";
import { type Leaf, flatten, permute, shapeElements, swapLanes, trivialLayout } from "./layout.ts";
import { type DTypeLike, type Descr, type Format, type ItemValue, type Order, type TypedArray, invalid, malformed } from "./types.ts";
import { SpeadError } from "../errors.ts";

/**
 * The most elements a decoded value may have when it is a JS array rather than
 * a typed array (records, strings of several bytes, multi-dimensional
 * characters, bit-packed characters): 1 Mi. Larger ones are refused with
 * `SpeadError("capacity_exceeded")`, so a heap can never expand into an
 * unbounded number of JS objects (issue #8); give such items a numpy dtype
 * that maps to a typed array instead. Numeric items, bit-packed ones included,
 * always decode to typed arrays, at most 8 bytes per bit received.
 */
export const MAX_ARRAY_ELEMENTS = 1 << 20;

function checkArrayElements(n: number, what: string): void {
  if (n > MAX_ARRAY_ELEMENTS) {
    throw new SpeadError(
      "capacity_exceeded",
      `${n} elements of ${what} would decode to a JS array of more than MAX_ARRAY_ELEMENTS = ${MAX_ARRAY_ELEMENTS}; ` +
        "describe the item with a numeric dtype or format to get a typed array",
    );
  }
}

/**
 * The typed array a bit-packed single-field format decodes to, or null (characters):
 * u/i of up to 8, 16, 32 bits in (U)Int8/16/32Array, up to 53 bits in Float64Array
 * (exact), up to 64 in Big(U)Int64Array; f32/f64 in Float32/64Array; b in Uint8Array (0/1).
 */
function bitFieldArray(code: string, bits: number, n: number): TypedArray | null {
  switch (code) {
    case "u":
    case "i": {
      const signed = code === "i";
      if (bits <= 8) return signed ? new Int8Array(n) : new Uint8Array(n);
      if (bits <= 16) return signed ? new Int16Array(n) : new Uint16Array(n);
      if (bits <= 32) return signed ? new Int32Array(n) : new Uint32Array(n);
      if (bits <= 53) return new Float64Array(n);
      return signed ? new BigInt64Array(n) : new BigUint64Array(n);
    }
    case "f":
      return bits === 32 ? new Float32Array(n) : new Float64Array(n);
    case "b":
      return new Uint8Array(n);
    default:
      return null;
  }
}

/** Options for {@link Codec.decode}. */
export interface DecodeOptions {
  /** Never return a view on the input bytes; always copy. */
  readonly copy?: boolean;
}

/** Result of {@link Codec.decode}. */
export interface Decoded {
  readonly value: ItemValue;
  /** The concrete shape of the value (the value itself is flat, in C order). */
  readonly shape: number[];
  /** True when `value` is a typed-array view on the input's memory (no copy was made). */
  readonly zeroCopy: boolean;
}

/** Result of {@link Codec.encode}. */
export interface Encoded {
  /** Wire bytes; may alias the value's own memory when no conversion was needed. */
  readonly bytes: Uint8Array;
  readonly shape: number[];
  /** True when `bytes` is a view on the value's memory. */
  readonly zeroCopy: boolean;
}

/**
 * Converts values of one element type (a numpy dtype, or a legacy format) to
 * and from wire bytes. Built once per descriptor.
 */
/** The byte view of each typed array sent without a copy (see {@link Codec.zeroCopyBytes}). */
const byteViews = new WeakMap<ArrayBufferView, Uint8Array>();

export class Codec {
  /** The numpy dtype used on the fast path, or `null` for bit-packed formats. */
  readonly dtype: DType | null;
  /** The legacy format, if the codec was built from one. */
  readonly format: Format | null;
  /** Bits per element. */
  readonly itemsizeBits: number;

  private constructor(dtype: DType | null, format: Format | null) {
    this.dtype = dtype;
    this.format = format;
    this.itemsizeBits = dtype !== null ? dtype.itemsize * 8 : formatBits(format!);
  }

  /** A codec for a numpy dtype. */
  static forDType(dtype: DTypeLike): Codec {
    const d = DType.from(dtype);
    if (d.itemsize === 0) throw invalid("cannot use a zero-sized dtype");
    return new Codec(d, null);
  }

  /** A codec for a legacy format (numpy fast path when every field is a whole numpy type). */
  static forFormat(format: Format): Codec {
    const copy: Format = format.map((f) => [f[0], f[1]] as const);
    return new Codec(formatToDType(copy), copy);
  }

  /** A codec for either kind of type description. */
  static for(type: DTypeLike | Format | Codec): Codec {
    if (type instanceof Codec) return type;
    if (type instanceof DType || typeof type === "string") return Codec.forDType(type);
    if (Array.isArray(type) && type.length > 0 && typeof type[0][1] === "number") {
      return Codec.forFormat(type as Format);
    }
    return Codec.forDType(type as Descr);
  }

  /**
   * The zero-copy case of {@link Codec.encode} for a 1-D declared shape: a
   * typed array of the dtype's own kind in native byte order, whose length
   * fits the shape, is its own wire bytes. Returns the byte view (one per
   * typed array, kept while the array lives: sending the same buffer heap
   * after heap makes no new view) or `null` when the general path applies.
   */
  zeroCopyBytes(value: ItemValue, declared: ReadonlyArray<number | null>): Uint8Array | null {
    const dtype = this.dtype;
    if (dtype === null || declared.length !== 1 || !ArrayBuffer.isView(value)) return null;
    const ctor = dtype.arrayConstructor;
    if (ctor === null || !(value instanceof ctor) || !dtype.isNative) return null;
    const lanes = dtype.lanes;
    const length = (value as { length: number }).length;
    if (length % lanes !== 0 || (declared[0] !== null && declared[0] !== length / lanes)) return null;
    let bytes = byteViews.get(value);
    if (bytes === undefined || bytes.byteLength !== value.byteLength) {
      bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      byteViews.set(value, bytes);
    }
    return bytes;
  }

  /**
   * The bytes of a scalar integer of a one-field `u`/`i` format of whole
   * bytes up to 48 bits (a timestamp as wide as the heap address), big-endian,
   * as the bit-packed path writes them; `null` when the general path applies
   * (other values, including out-of-range ones, which it rejects).
   */
  scalarIntegerBytes(value: ItemValue, declared: ReadonlyArray<number | null>): Uint8Array | null {
    const format = this.format;
    if (this.dtype !== null || format === null || format.length !== 1 || declared.length !== 0) return null;
    const [code, bits] = format[0];
    if ((code !== "u" && code !== "i") || bits % 8 !== 0 || bits > 48 || typeof value !== "number") return null;
    if (!Number.isInteger(value)) return null;
    const signed = code === "i";
    const low = signed ? -(2 ** (bits - 1)) : 0;
    const high = signed ? 2 ** (bits - 1) : 2 ** bits;
    if (value < low || value >= high) return null;
    let v = value < 0 ? value + 2 ** bits : value;
    const out = new Uint8Array(bits / 8);
    for (let k = out.length - 1; k >= 0; k--) {
      out[k] = v % 256;
      v = Math.floor(v / 256);
    }
    return out;
  }

  /** The wire bytes of {@link Codec.encode}, with the common zero-copy and scalar cases first. */
  encodeBytes(value: ItemValue, declared: ReadonlyArray<number | null>, order: Order = "C"): Uint8Array {
    return this.zeroCopyBytes(value, declared) ?? this.scalarIntegerBytes(value, declared) ??
      this.encode(value, declared, order).bytes;
  }

  /** True for formats that need the bit-packed slow path (spead2's object dtype). */
  get bitPacked(): boolean {
    return this.dtype === null;
  }

  /** True when 1-D values are strings (element type S1, i.e. `c8` or numpy `S1`). */
  get isChars(): boolean {
    return this.dtype !== null && this.dtype.kind === "S" && this.dtype.itemsize === 1;
  }

  /**
   * Decodes exactly `shapeElements(shape)` elements from the start of `bytes`
   * (extra bytes are ignored; too few is an error). See the module comment for
   * the value types. With a native-order typed-array dtype, an element-aligned
   * offset and a C-order layout, the result is a view on `bytes`' memory.
   */
  decode(bytes: Uint8Array, shape: readonly number[], order: Order = "C", options: DecodeOptions = {}): Decoded {
    const n = shapeElements(shape);
    const needBits = n * this.itemsizeBits;
    if (bytes.length * 8 < needBits) {
      throw malformed(`${bytes.length} bytes are too few for ${n} elements of ${this.itemsizeBits} bits`);
    }
    const outShape = [...shape];
    if (this.dtype === null) return { value: this.decodeBits(bytes, shape), shape: outShape, zeroCopy: false };
    const dtype = this.dtype;
    let src = bytes.subarray(0, n * dtype.itemsize);
    const layoutC = order === "C" || trivialLayout(shape);
    const ctor = dtype.arrayConstructor;
    if (ctor !== null) {
      const lanes = dtype.lanes;
      if (
        !options.copy && layoutC && dtype.isNative && shape.length > 0 &&
        src.byteOffset % ctor.BYTES_PER_ELEMENT === 0
      ) {
        const view = new ctor(src.buffer as ArrayBuffer, src.byteOffset, n * lanes);
        return { value: view, shape: outShape, zeroCopy: true };
      }
      const out = new ctor(n * lanes);
      const outBytes = new Uint8Array(out.buffer);
      outBytes.set(layoutC ? src : permute(src, shape, dtype.itemsize, false));
      if (!dtype.isNative) swapLanes(outBytes, dtype.itemsize / lanes);
      if (shape.length === 0) return { value: scalarFromTyped(out, dtype), shape: outShape, zeroCopy: false };
      return { value: out, shape: outShape, zeroCopy: false };
    }
    if (!layoutC) src = permute(src, shape, dtype.itemsize, false);
    if (this.isChars && shape.length === 1) return { value: joinChars(src), shape: outShape, zeroCopy: false };
    const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
    if (shape.length === 0) return { value: readElement(view, src, 0, dtype), shape: outShape, zeroCopy: false };
    checkArrayElements(n, `dtype ${dtype.str}`);
    const out: ItemValue[] = new Array(n);
    for (let k = 0; k < n; k++) out[k] = readElement(view, src, k * dtype.itemsize, dtype);
    return { value: out, shape: outShape, zeroCopy: false };
  }

  private decodeBits(bytes: Uint8Array, shape: readonly number[]): ItemValue {
    const format = this.format!;
    const reader = new BitReader(bytes);
    const n = shapeElements(shape);
    const readOne = (): ItemValue => {
      if (format.length === 1) return decodeBitField(format[0][0], format[0][1], reader.read(format[0][1]));
      return format.map(([code, bits]) => decodeBitField(code, bits, reader.read(bits)));
    };
    if (shape.length === 0) return readOne();
    if (format.length === 1) {
      const [code, bits] = format[0];
      const typed = bitFieldArray(code, bits, n);
      if (typed !== null) {
        const store = typed as unknown as { [k: number]: number | bigint };
        if ((code === "u" || code === "b") && 8 % bits === 0) {
          // Whole bytes of 1, 2, 4 or 8 fields: unpacked a byte at a time.
          const mask = (1 << bits) - 1;
          const out = typed as Uint8Array;
          let k = 0;
          for (let i = 0; k < n; i++) {
            const byte = bytes[i];
            for (let shift = 8 - bits; shift >= 0 && k < n; shift -= bits) out[k++] = (byte >> shift) & mask;
          }
          if (code === "b" && bits > 1) for (let j = 0; j < n; j++) out[j] = out[j] !== 0 ? 1 : 0;
        } else if (code === "u" && bits <= 32) {
          for (let k = 0; k < n; k++) store[k] = reader.read(bits);
        } else {
          for (let k = 0; k < n; k++) {
            const v = decodeBitField(code, bits, reader.read(bits));
            store[k] = typeof v === "boolean" ? (v ? 1 : 0) : (v as number | bigint);
          }
        }
        return typed;
      }
    }
    checkArrayElements(n, `format ${JSON.stringify(format)}`);
    const out: ItemValue[] = new Array(n);
    for (let k = 0; k < n; k++) out[k] = readOne();
    return out;
  }

  /**
   * Encodes a value into wire bytes for a declared shape (which may have one
   * `null` dimension, resolved from the value). May return a view on the value's
   * own memory (spead2 likewise sends numpy arrays without copying them).
   */
  encode(value: ItemValue, declared: ReadonlyArray<number | null>, order: Order = "C"): Encoded {
    const dtype = this.dtype;
    const flat = flatten(value, declared, {
      s1: dtype === null ? false : dtype.kind === "S" && dtype.itemsize === 1,
      lanes: dtype?.lanes ?? 1,
      bytesLeaf: dtype !== null && (dtype.kind === "V" || dtype.kind === "S"),
    });
    const shape = flat.shape;
    const n = shapeElements(shape);
    if (dtype === null) return { bytes: this.encodeBits(flat, n), shape, zeroCopy: false };
    const layoutC = order === "C" || trivialLayout(shape);
    const ctor = dtype.arrayConstructor;
    let cBytes: Uint8Array;
    if (flat.typed !== null && ctor !== null) {
      const t = flat.typed;
      if (t instanceof ctor && dtype.isNative && layoutC) {
        return { bytes: new Uint8Array(t.buffer, t.byteOffset, t.byteLength), shape, zeroCopy: true };
      }
      const out = new ctor(n * dtype.lanes);
      if (t instanceof ctor) {
        out.set(t as never);
      } else {
        const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
        const store = out as unknown as { [k: number]: number | bigint };
        for (let k = 0; k < t.length; k++) {
          const x = t[k];
          if (dtype.kind === "f" || dtype.kind === "c") store[k] = toFloat(x);
          else if (dtype.kind === "b") store[k] = x ? 1 : 0;
          else if (big) store[k] = toBigIntChecked(x, dtype.kind === "i", 64);
          else store[k] = toNumberChecked(x, dtype.kind === "i", dtype.itemsize * 8);
        }
      }
      cBytes = new Uint8Array(out.buffer);
      if (!dtype.isNative) swapLanes(cBytes, dtype.itemsize / dtype.lanes);
    } else {
      cBytes = new Uint8Array(n * dtype.itemsize);
      const view = new DataView(cBytes.buffer);
      if (flat.typed !== null) {
        // A typed array for a dtype without one (e.g. a Uint8Array of S1 bytes handled above,
        // or a 1-element typed array standing for a scalar).
        for (let k = 0; k < n; k++) writeElement(view, k * dtype.itemsize, dtype, flat.typed[k]);
      } else {
        for (let k = 0; k < n; k++) writeElement(view, k * dtype.itemsize, dtype, flat.elements[k]);
      }
    }
    const bytes = layoutC ? cBytes : permute(cBytes, shape, dtype.itemsize, true);
    return { bytes, shape, zeroCopy: false };
  }

  private encodeBits(flat: { elements: ArrayLike<Leaf>; typed: TypedArray | null }, n: number): Uint8Array {
    const format = this.format!;
    const out = new Uint8Array(Math.ceil((n * this.itemsizeBits) / 8));
    const writer = new BitWriter(out);
    const get = (k: number): unknown => (flat.typed !== null ? flat.typed[k] : flat.elements[k]);
    for (let k = 0; k < n; k++) {
      const v = get(k);
      if (format.length === 1) {
        writer.write(encodeBitField(format[0][0], format[0][1], v), format[0][1]);
        continue;
      }
      if (!Array.isArray(v) || v.length !== format.length) {
        throw invalid(`expected a tuple of ${format.length} fields, got ${String(v)}`);
      }
      format.forEach(([code, bits], f) => writer.write(encodeBitField(code, bits, v[f]), bits));
    }
    return out;
  }
}

function scalarFromTyped(out: TypedArray, dtype: DType): ItemValue {
  if (dtype.kind === "b") return out[0] !== 0;
  if (dtype.kind === "c") return { re: out[0] as number, im: out[1] as number };
  return out[0];
}

// ---------------------------------------------------------------------------
// Free functions

/**
 * Decodes wire bytes into a value of the given shape and type (numpy dtype,
 * type string, or legacy format). See {@link Codec.decode}.
 */
export function decode(
  bytes: Uint8Array,
  shape: readonly number[],
  type: DTypeLike | Format | Codec,
  order: Order = "C",
  options: DecodeOptions = {},
): Decoded {
  return Codec.for(type).decode(bytes, shape, order, options);
}

/**
 * Encodes a value into wire bytes (in the dtype's byte order; Fortran order is
 * written from the C-order value). The result may alias the value's memory.
 */
export function encode(
  value: ItemValue,
  shape: ReadonlyArray<number | null>,
  type: DTypeLike | Format | Codec,
  order: Order = "C",
): Uint8Array {
  return Codec.for(type).encode(value, shape, order).bytes;
}

/** The concrete shape a value has for a declared shape (resolving a `null` dimension). */
export function inferShape(
  value: ItemValue,
  shape: ReadonlyArray<number | null>,
  type: DTypeLike | Format | Codec,
): number[] {
  const codec = Codec.for(type);
  const dtype = codec.dtype;
  return flatten(value, shape, {
    s1: dtype !== null && dtype.kind === "S" && dtype.itemsize === 1,
    lanes: dtype?.lanes ?? 1,
    bytesLeaf: dtype !== null && (dtype.kind === "V" || dtype.kind === "S"),
  }).shape;
}
