/** numpy dtypes (`DType`: type strings, descr lists, records) and spead2's legacy formats. */
import { reprDescr } from "./py_literal.ts";
import { type ByteOrder, type DTypeKind, type DTypeLike, type Descr, type Format, invalid, nativeByteOrder } from "./types.ts";

/** A field of a record dtype. */
export interface DTypeField {
  /** Field name. */
  readonly name: string;
  /** Field type. */
  readonly dtype: DType;
  /** Byte offset of the field inside one record. */
  readonly offset: number;
}

/** A typed-array constructor (the class of a value decoded with this dtype). */
export type ArrayCtor =
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor;

const TYPE_NAMES: Record<string, string> = {
  bool: "|b1",
  bool_: "|b1",
  int8: "|i1",
  byte: "|i1",
  uint8: "|u1",
  ubyte: "|u1",
  int16: "=i2",
  short: "=i2",
  uint16: "=u2",
  ushort: "=u2",
  int32: "=i4",
  intc: "=i4",
  uint32: "=u4",
  uintc: "=u4",
  int64: "=i8",
  int: "=i8",
  longlong: "=i8",
  uint64: "=u8",
  uint: "=u8",
  ulonglong: "=u8",
  float32: "=f4",
  single: "=f4",
  float64: "=f8",
  float: "=f8",
  double: "=f8",
  complex64: "=c8",
  csingle: "=c8",
  complex128: "=c16",
  complex: "=c16",
  cdouble: "=c16",
};

/** numpy single-character type codes (Linux/LP64 sizes). */
const CHAR_CODES: Record<string, string> = {
  "?": "b1",
  b: "i1",
  B: "u1",
  h: "i2",
  H: "u2",
  i: "i4",
  I: "u4",
  l: "i8",
  L: "u8",
  q: "i8",
  Q: "u8",
  p: "i8",
  P: "u8",
  f: "f4",
  d: "f8",
  F: "c8",
  D: "c16",
};

/** Typed arrays of the integer dtypes by itemsize. */
const UNSIGNED_ARRAYS: Readonly<Record<number, ArrayCtor>> = { 1: Uint8Array, 2: Uint16Array, 4: Uint32Array, 8: BigUint64Array };
const SIGNED_ARRAYS: Readonly<Record<number, ArrayCtor>> = { 1: Int8Array, 2: Int16Array, 4: Int32Array, 8: BigInt64Array };

/**
 * A numpy-style data type: a scalar kind with an item size and byte order, or a
 * record of named fields. Immutable; compare with {@link DType.equals}.
 */
export class DType {
  /** Type kind (`b` bool, `i`/`u` integers, `f` float, `c` complex, `S` bytes, `V` void, `struct`). */
  readonly kind: DTypeKind;
  /** Bytes per element. */
  readonly itemsize: number;
  /** Byte order; `|` where it does not apply. Never `=`: native order is resolved on construction. */
  readonly byteOrder: ByteOrder;
  /** Fields of a record dtype (excluding padding), else `null`. */
  readonly fields: readonly DTypeField[] | null;

  private constructor(kind: DTypeKind, itemsize: number, byteOrder: ByteOrder, fields: readonly DTypeField[] | null) {
    this.kind = kind;
    this.itemsize = itemsize;
    this.byteOrder = byteOrder;
    this.fields = fields;
  }

  /** Builds a scalar dtype; `order` `=` or `|` on a multi-byte numeric type means native. */
  static scalar(kind: Exclude<DTypeKind, "struct">, itemsize: number, order: "<" | ">" | "=" | "|" = "="): DType {
    const sizes: Record<string, readonly number[]> = {
      b: [1],
      i: [1, 2, 4, 8],
      u: [1, 2, 4, 8],
      f: [4, 8],
      c: [8, 16],
    };
    const allowed = sizes[kind];
    if (allowed !== undefined && !allowed.includes(itemsize)) {
      throw invalid(`unsupported dtype: kind '${kind}' with ${itemsize} bytes`);
    }
    if (!Number.isInteger(itemsize) || itemsize < 0) throw invalid(`invalid dtype item size ${itemsize}`);
    let bo: ByteOrder;
    if (kind === "S" || kind === "V" || itemsize === 1) bo = "|";
    else if (order === "=" || order === "|") bo = nativeByteOrder;
    else bo = order;
    return new DType(kind, itemsize, bo, null);
  }

  /**
   * Builds a record dtype. Fields without an offset are packed one after another;
   * `itemsize` defaults to the end of the last field.
   */
  static struct(
    fields: ReadonlyArray<{ name: string; dtype: DTypeLike; offset?: number }>,
    itemsize?: number,
  ): DType {
    const out: DTypeField[] = [];
    const names = new Set<string>();
    let pos = 0;
    let end = 0;
    for (const f of fields) {
      const dtype = DType.from(f.dtype);
      const offset = f.offset ?? pos;
      if (names.has(f.name)) throw invalid(`duplicate field name '${f.name}' in dtype`);
      names.add(f.name);
      out.push({ name: f.name, dtype, offset });
      pos = offset + dtype.itemsize;
      end = Math.max(end, pos);
    }
    const size = itemsize ?? end;
    if (size < end) throw invalid(`record itemsize ${size} is smaller than its fields (${end})`);
    return new DType("struct", size, "|", out);
  }

  /** Parses a dtype from a DType, a type string, a comma list (`'>f4,i1'`) or a numpy descr list. */
  static from(like: DTypeLike): DType {
    if (like instanceof DType) return like;
    if (typeof like === "string") return parseTypeString(like);
    if (Array.isArray(like)) return parseDescrList(like);
    throw invalid(`not a valid dtype descriptor: ${String(like)}`);
  }

  /** numpy's `dtype.str` (`'<u2'`, `'|S5'`); a record gives `'|V<itemsize>'`. */
  get str(): string {
    if (this.kind === "struct") return `|V${this.itemsize}`;
    return `${this.byteOrder}${this.kind}${this.itemsize}`;
  }

  /**
   * numpy's `dtype_to_descr`: the type string for scalars, else a list of
   * `(name, descr)` pairs with `('', '|V<n>')` entries for gaps.
   */
  get descr(): Descr {
    if (this.fields === null) return this.str;
    const out: Array<readonly [string, Descr]> = [];
    let pos = 0;
    const sorted = [...this.fields].sort((a, b) => a.offset - b.offset);
    for (const f of sorted) {
      if (f.offset > pos) out.push(["", `|V${f.offset - pos}`]);
      out.push([f.name, f.dtype.descr]);
      pos = Math.max(pos, f.offset + f.dtype.itemsize);
    }
    if (this.itemsize > pos) out.push(["", `|V${this.itemsize - pos}`]);
    return out;
  }

  /** Whether the dtype (and every field of a record) is in this machine's byte order. */
  get isNative(): boolean {
    if (this.fields !== null) return this.fields.every((f) => f.dtype.isNative);
    return this.byteOrder === "|" || this.byteOrder === nativeByteOrder;
  }

  /** Bytes of alignment a zero-copy typed-array view needs (the typed array's element size), or 1. */
  get alignment(): number {
    const ctor = this.arrayConstructor;
    return ctor ? ctor.BYTES_PER_ELEMENT : 1;
  }

  /** The typed array that holds arrays of this dtype, or `null` (strings, void, records). */
  get arrayConstructor(): ArrayCtor | null {
    // No object per call (the send path asks once per item per heap).
    switch (this.kind) {
      case "b":
        return Uint8Array;
      case "u":
        return UNSIGNED_ARRAYS[this.itemsize] ?? null;
      case "i":
        return SIGNED_ARRAYS[this.itemsize] ?? null;
      case "f":
        return this.itemsize === 4 ? Float32Array : Float64Array;
      case "c":
        return this.itemsize === 8 ? Float32Array : Float64Array;
      default:
        return null;
    }
  }

  /** Typed-array entries per element (2 for complex, else 1). */
  get lanes(): number {
    return this.kind === "c" ? 2 : 1;
  }

  /**
   * numpy's `newbyteorder`: with no argument, swaps `<` and `>` everywhere
   * (records included); otherwise sets the given order (`=` means native).
   */
  newByteOrder(order?: "<" | ">" | "="): DType {
    if (this.fields !== null) {
      return new DType(
        "struct",
        this.itemsize,
        "|",
        this.fields.map((f) => ({ name: f.name, dtype: f.dtype.newByteOrder(order), offset: f.offset })),
      );
    }
    if (this.byteOrder === "|") return this;
    let bo: "<" | ">";
    if (order === undefined) bo = this.byteOrder === "<" ? ">" : "<";
    else if (order === "=") bo = nativeByteOrder;
    else bo = order;
    return new DType(this.kind, this.itemsize, bo, null);
  }

  /** numpy dtype equality: same kind, size, byte order and (for records) fields and offsets. */
  equals(other: DType): boolean {
    if (this === other) return true;
    if (this.kind !== other.kind || this.itemsize !== other.itemsize || this.byteOrder !== other.byteOrder) {
      return false;
    }
    if (this.fields === null || other.fields === null) return this.fields === other.fields;
    if (this.fields.length !== other.fields.length) return false;
    return this.fields.every((f, i) => {
      const g = other.fields![i];
      return f.name === g.name && f.offset === g.offset && f.dtype.equals(g.dtype);
    });
  }

  /** Python repr of the descr, e.g. `'<u2'` or `[('a', '<u2'), ('b', '>f4')]`. */
  toString(): string {
    return reprDescr(this.descr);
  }
}

function parseTypeString(text: string): DType {
  const s = text.trim();
  if (s.includes(",")) {
    // numpy's comma form: fields f0, f1, ... packed without padding.
    const parts = s.split(",").map((p) => p.trim()).filter((p) => p.length > 0);
    if (parts.length === 0) throw invalid(`not a valid dtype string: '${text}'`);
    return DType.struct(parts.map((p, i) => ({ name: `f${i}`, dtype: parseTypeString(p) })));
  }
  const named = TYPE_NAMES[s];
  if (named !== undefined) return parseTypeString(named);
  const m = /^([<>=|!]?)([A-Za-z?])(\d*)$/.exec(s);
  if (!m) throw invalid(`not a valid dtype string: '${text}'`);
  const orderChar = m[1] === "!" ? ">" : (m[1] || "=") as "<" | ">" | "=" | "|";
  let code = m[2];
  let size = m[3] === "" ? -1 : Number(m[3]);
  if (size < 0) {
    if (code === "S" || code === "a" || code === "V") {
      size = 0;
    } else {
      const full = CHAR_CODES[code];
      if (full === undefined) throw invalid(`unsupported dtype: '${text}'`);
      code = full[0];
      size = Number(full.slice(1));
    }
  }
  switch (code) {
    case "b":
      if (size !== 1) throw invalid(`unsupported dtype: '${text}'`);
      return DType.scalar("b", 1, orderChar);
    case "i":
    case "u":
    case "f":
    case "c":
      return DType.scalar(code, size, orderChar);
    case "S":
    case "a":
      return DType.scalar("S", size, "|");
    case "V":
      return DType.scalar("V", size, "|");
    default:
      throw invalid(`unsupported dtype: '${text}'`);
  }
}

function parseDescrList(list: readonly unknown[]): DType {
  const fields: Array<{ name: string; dtype: DType; offset: number }> = [];
  let pos = 0;
  for (const entry of list) {
    if (!Array.isArray(entry) || entry.length < 2 || typeof entry[0] !== "string") {
      throw invalid(`not a valid dtype field: ${String(entry)}`);
    }
    if (entry.length > 2) throw invalid(`sub-array dtype fields are not supported (field '${entry[0]}')`);
    const dtype = DType.from(entry[1] as DTypeLike);
    if (entry[0] === "" && dtype.kind === "V") {
      pos += dtype.itemsize; // padding, as numpy's descr_to_dtype treats it
      continue;
    }
    fields.push({ name: entry[0] === "" ? `f${fields.length}` : entry[0], dtype, offset: pos });
    pos += dtype.itemsize;
  }
  if (fields.length === 0) throw invalid("a record dtype needs at least one field");
  return DType.struct(fields, pos);
}

// ---------------------------------------------------------------------------
// Legacy formats

/**
 * Validates a legacy format and maps it to a numpy dtype as spead2's
 * `Descriptor._parse_format` does. Returns `null` where spead2 would use an
 * object dtype (some field is not a whole numpy type, e.g. `u12`, `b1`): those
 * values take the bit-packed slow path.
 */
export function formatToDType(format: Format): DType | null {
  if (format.length === 0) throw invalid("empty format");
  const parts: DType[] = [];
  let packed = false;
  for (const field of format) {
    if (!Array.isArray(field) || field.length !== 2) throw invalid(`format field must be [code, bits]: ${String(field)}`);
    const [code, bits] = field;
    if (typeof code !== "string" || code.length !== 1) throw invalid(`format code must be one character: ${String(code)}`);
    if (!Number.isInteger(bits)) throw invalid(`format length must be an integer: ${String(bits)}`);
    if (bits <= 0) {
      throw invalid(bits === 0 ? "zero-length field (bug_compat mismatch?)" : "negative-length field");
    }
    if ((code === "u" || code === "i") && (bits === 8 || bits === 16 || bits === 32 || bits === 64)) {
      parts.push(DType.scalar(code, bits / 8, ">"));
    } else if (code === "f" && (bits === 32 || bits === 64)) {
      parts.push(DType.scalar("f", bits / 8, ">"));
    } else if (code === "b" && bits === 8) {
      parts.push(DType.scalar("b", 1));
    } else if (code === "c" && bits === 8) {
      parts.push(DType.scalar("S", 1));
    } else if (code === "u" || code === "i" || code === "b") {
      if (bits > 64) throw invalid(`unsupported format (${code}, ${bits}): wider than 64 bits`);
      packed = true;
    } else {
      throw invalid(`illegal format (${code}, ${bits})`);
    }
  }
  if (packed) return null;
  if (parts.length === 1) return parts[0];
  return DType.struct(parts.map((dtype, i) => ({ name: `f${i}`, dtype })));
}

/** Bits per element of a legacy format (the sum of the field widths). */
export function formatBits(format: Format): number {
  let bits = 0;
  for (const [, b] of format) bits += b;
  return bits;
}

/** Structural equality of two formats. */
export function formatsEqual(a: Format | null, b: Format | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((f, i) => f[0] === b[i][0] && f[1] === b[i][1]);
}
