/**
 * The value model: numpy-style dtypes, spead2's legacy formats, the numpy
 * header literal, and the codecs that turn item values into wire bytes and back.
 * Pure TypeScript (no FFI).
 *
 * **Values** (what `decode` returns and `encode` accepts). Arrays are always flat
 * and in C order; the shape is kept separately (a Fortran-order item is transposed
 * on the way in and out).
 *
 * | element type | scalar (shape `()`) | array |
 * |---|---|---|
 * | `u`/`i` up to 53 bits (numpy 1, 2, 4 bytes; legacy `u1`..`u53`) | `number` | typed array (`Uint8Array`, `Int16Array`, ...), or `number[]` when bit-packed |
 * | `u`/`i` of 54..64 bits (numpy 8 bytes; legacy `u54`..`u63`) | `bigint` | `BigUint64Array` / `BigInt64Array`, or `bigint[]` when bit-packed |
 * | `f` 4 / 8 bytes | `number` | `Float32Array` / `Float64Array` |
 * | `c` (complex64 / complex128) | {@link Complex} | `Float32Array` / `Float64Array` of interleaved (re, im) pairs |
 * | bool (`?`, `b8`) | `boolean` | `Uint8Array` of 0/1 (`boolean[]` when bit-packed) |
 * | `S1` / `c8` | 1-character `string` | 1-D: one `string` (NUL bytes dropped, ASCII only, as spead2 does); otherwise `string[]` |
 * | `S<n>` | `string` (trailing NULs stripped, bytes read as Latin-1) | `string[]` |
 * | `V<n>` | `Uint8Array` (a copy) | `Uint8Array[]` |
 * | struct (several legacy fields, or a numpy record dtype) | a tuple (`ItemValue[]`, one entry per field) | array of tuples |
 *
 * The integer rule is decided by the declared width alone, never by the value:
 * a field that can hold more than 2^53 becomes a `bigint`. So `u40`/`u48`/`i48`
 * values are numbers, and numpy `<u8`/`>i8` values are bigints.
 *
 * `encode` accepts the same shapes, plus nested arrays (one level per
 * dimension), any typed array or plain array of numbers/bigints for numeric
 * types, `boolean`s or numbers for bool, strings or `Uint8Array`s for `S`, and
 * records as arrays (by position) or objects (by field name).
 */
import { SpeadError } from "./errors.ts";

// ---------------------------------------------------------------------------
// Basic types

/** Byte order of a dtype: little, big, or not applicable (single bytes, strings, records). */
export type ByteOrder = "<" | ">" | "|";
/** Storage order of a multi-dimensional value on the wire. */
export type Order = "C" | "F";
/** numpy type kinds we support; `struct` is a record dtype. */
export type DTypeKind = "b" | "i" | "u" | "f" | "c" | "S" | "V" | "struct";
/** One legacy format field: ASCII code (`u`, `i`, `f`, `b`, `c`) and width in bits. */
export type FormatField = readonly [code: string, bits: number];
/** A spead2 legacy format: a list of `[code, bits]` fields. */
export type Format = readonly FormatField[];

/** A complex number (numpy complex64 / complex128 scalar). */
export interface Complex {
  re: number;
  im: number;
}

/** Any of the typed arrays that hold decoded numeric arrays. */
export type TypedArray =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

/** A single element value. */
export type ScalarValue = number | bigint | boolean | string | Complex | Uint8Array;

/** An item value: a scalar, a typed array, a string, or an array of values / tuples. */
export type ItemValue = ScalarValue | TypedArray | readonly ItemValue[] | { readonly [field: string]: ItemValue };

/** A numpy `descr` as found in the `.npy` header: a type string, or a list of `(name, descr)` fields. */
export type Descr = string | ReadonlyArray<readonly [string, Descr]>;

/** Anything {@link DType.from} accepts: a DType, a type string (`'<u2'`, `'uint16'`, `'>f4,i1'`), or a descr list. */
export type DTypeLike = DType | Descr;

/** The byte order of this machine. */
export const nativeByteOrder: "<" | ">" = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? "<" : ">";

function invalid(message: string): SpeadError {
  return new SpeadError("invalid_argument", message);
}

function malformed(message: string): SpeadError {
  return new SpeadError("malformed", message);
}

// ---------------------------------------------------------------------------
// DType

/** A field of a record dtype. */
export interface DTypeField {
  readonly name: string;
  readonly dtype: DType;
  /** Byte offset of the field inside one record. */
  readonly offset: number;
}

type ArrayCtor =
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
    switch (this.kind) {
      case "b":
        return Uint8Array;
      case "u":
        return ({ 1: Uint8Array, 2: Uint16Array, 4: Uint32Array, 8: BigUint64Array } as Record<number, ArrayCtor>)[
          this.itemsize
        ];
      case "i":
        return ({ 1: Int8Array, 2: Int16Array, 4: Int32Array, 8: BigInt64Array } as Record<number, ArrayCtor>)[
          this.itemsize
        ];
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

// ---------------------------------------------------------------------------
// Python literals and the numpy header

/** A Python tuple in a parsed literal (distinct from a list, as numpy's header check needs). */
class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
type PyValue = string | number | boolean | null | PyTuple | PyValue[] | Map<PyValue, PyValue>;

/** Parses the Python literal subset numpy headers use: dicts, tuples, lists, strings, ints, True/False/None. */
function parsePyLiteral(text: string): PyValue {
  let i = 0;
  const n = text.length;
  const fail = (what: string): never => {
    throw malformed(`cannot parse numpy header ${JSON.stringify(text)}: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < n && /\s/.test(text[i])) i++;
  };
  const parseString = (): string => {
    const q = text[i++];
    let out = "";
    while (true) {
      if (i >= n) fail("unterminated string");
      const ch = text[i++];
      if (ch === q) return out;
      if (ch === "\n") fail("newline in string");
      if (ch !== "\\") {
        out += ch;
        continue;
      }
      const e = text[i++];
      const simple: Record<string, string> = {
        "\\": "\\",
        "'": "'",
        '"': '"',
        n: "\n",
        t: "\t",
        r: "\r",
        "0": "\0",
        a: "\x07",
        b: "\b",
        f: "\f",
        v: "\v",
      };
      if (e === "x") {
        const hex = text.slice(i, i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) fail("bad \\x escape");
        out += String.fromCharCode(parseInt(hex, 16));
        i += 2;
      } else if (e !== undefined && simple[e] !== undefined) {
        out += simple[e];
      } else {
        fail("unsupported escape");
      }
    }
  };
  const parseSeq = (close: string): { items: PyValue[]; trailingComma: boolean } => {
    const items: PyValue[] = [];
    let trailingComma = false;
    ws();
    if (text[i] === close) {
      i++;
      return { items, trailingComma };
    }
    while (true) {
      items.push(parseValue());
      ws();
      if (text[i] === ",") {
        i++;
        ws();
        trailingComma = true;
        if (text[i] === close) {
          i++;
          return { items, trailingComma };
        }
        trailingComma = false;
        continue;
      }
      if (text[i] === close) {
        i++;
        return { items, trailingComma };
      }
      fail(`expected ',' or '${close}'`);
    }
  };
  const parseValue = (): PyValue => {
    ws();
    if (i >= n) fail("unexpected end");
    const ch = text[i];
    if (ch === "'" || ch === '"') return parseString();
    if ((ch === "u" || ch === "U") && (text[i + 1] === "'" || text[i + 1] === '"')) {
      i++;
      return parseString();
    }
    if (ch === "{") {
      i++;
      const map = new Map<PyValue, PyValue>();
      ws();
      if (text[i] === "}") {
        i++;
        return map;
      }
      while (true) {
        const key = parseValue();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        const value = parseValue();
        // Dict keys compare by value for the hashable types we produce.
        for (const k of map.keys()) if (k === key) map.delete(k);
        map.set(key, value);
        ws();
        if (text[i] === ",") {
          i++;
          ws();
          if (text[i] === "}") {
            i++;
            return map;
          }
          continue;
        }
        if (text[i] === "}") {
          i++;
          return map;
        }
        fail("expected ',' or '}'");
      }
    }
    if (ch === "(") {
      i++;
      const { items, trailingComma } = parseSeq(")");
      // `(x)` is just x; `(x,)` and `()` are tuples.
      if (items.length === 1 && !trailingComma) return items[0];
      return new PyTuple(items);
    }
    if (ch === "[") {
      i++;
      return parseSeq("]").items;
    }
    const m = /^[+-]?\d+/.exec(text.slice(i));
    if (m) {
      i += m[0].length;
      if (/^[.eEjJxXoObB_]/.test(text.slice(i))) fail("only decimal integers are supported");
      const v = Number(m[0]);
      if (!Number.isSafeInteger(v)) fail("integer too large");
      return v;
    }
    const word = /^[A-Za-z_]\w*/.exec(text.slice(i));
    if (word) {
      i += word[0].length;
      if (word[0] === "True") return true;
      if (word[0] === "False") return false;
      if (word[0] === "None") return null;
      fail(`unexpected name '${word[0]}'`);
    }
    return fail(`unexpected character '${ch}'`);
  };
  const value = parseValue();
  ws();
  if (i !== n) fail("trailing characters");
  return value;
}

function pyToDescr(v: PyValue): Descr {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    return v.map((entry) => {
      const items = entry instanceof PyTuple ? entry.items : Array.isArray(entry) ? entry : null;
      if (items === null || items.length < 2 || typeof items[0] !== "string") {
        throw malformed("descr is not a valid dtype descriptor");
      }
      if (items.length > 2) throw invalid("sub-array dtype fields are not supported");
      return [items[0], pyToDescr(items[1])] as const;
    });
  }
  throw malformed("descr is not a valid dtype descriptor");
}

/** The parts of a numpy header. */
export interface NumpyHeader {
  readonly dtype: DType;
  readonly shape: number[];
  readonly order: Order;
}

/**
 * Parses a numpy header literal (the value of descriptor field 0x15), e.g.
 * `{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}`, keys in any
 * order. As spead2 requires, the keys must be exactly descr, fortran_order and
 * shape; shape a tuple of non-negative ints; fortran_order a bool.
 * Throws `SpeadError("malformed")` otherwise.
 */
export function parseNumpyHeader(text: string): NumpyHeader {
  const d = parsePyLiteral(text);
  if (!(d instanceof Map)) throw malformed(`numpy header is not a dictionary: ${text}`);
  const keys = [...d.keys()].map((k) => (typeof k === "string" ? k : `<${String(k)}>`)).sort();
  if (keys.length !== 3 || keys[0] !== "descr" || keys[1] !== "fortran_order" || keys[2] !== "shape") {
    throw malformed(`numpy header does not contain the correct keys: ${keys.join(", ")}`);
  }
  const shapeV = d.get("shape");
  if (!(shapeV instanceof PyTuple)) throw malformed(`numpy header shape is not a tuple: ${text}`);
  const shape = shapeV.items.map((x) => {
    if (typeof x === "boolean") return x ? 1 : 0; // Python bools are ints
    if (typeof x !== "number" || x < 0) throw malformed(`numpy header shape is not valid: ${text}`);
    return x;
  });
  const fo = d.get("fortran_order");
  if (typeof fo !== "boolean") throw malformed(`numpy header fortran_order is not a bool: ${text}`);
  let dtype: DType;
  try {
    dtype = DType.from(pyToDescr(d.get("descr")!));
  } catch (err) {
    if (err instanceof SpeadError) throw malformed(`numpy header descr is not valid: ${err.message}`);
    throw err;
  }
  if (dtype.itemsize === 0) throw malformed("numpy header descr has zero size");
  return { dtype, shape, order: fo ? "F" : "C" };
}

function reprStr(s: string): string {
  // Python's repr: single quotes unless the text has ' and no ".
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === q) out += "\\" + q;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + q;
}

function reprDescr(d: Descr): string {
  if (typeof d === "string") return reprStr(d);
  return "[" + d.map(([name, sub]) => `(${reprStr(name)}, ${reprDescr(sub)})`).join(", ") + "]";
}

function reprTuple(items: readonly number[]): string {
  if (items.length === 1) return `(${items[0]},)`;
  return `(${items.join(", ")})`;
}

/**
 * Formats the numpy header exactly as spead2's sender does (Python `repr` of
 * the dict): `{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}`.
 */
export function formatNumpyHeader(dtype: DType, shape: readonly number[], order: Order): string {
  return `{'descr': ${reprDescr(dtype.descr)}, 'fortran_order': ${order === "F" ? "True" : "False"}, ` +
    `'shape': ${reprTuple(shape)}}`;
}

// ---------------------------------------------------------------------------
// Shapes and layout helpers

/** Number of elements of a shape. */
export function shapeElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Whether C and Fortran order lay the shape out identically (at most one dimension above 1). */
function trivialLayout(shape: readonly number[]): boolean {
  let big = 0;
  for (const d of shape) if (d > 1) big++;
  return big <= 1;
}

/**
 * Reorders whole elements between C and Fortran order. `toFortran` true reads
 * C order and writes Fortran order; false does the reverse.
 */
function permute(src: Uint8Array, shape: readonly number[], elsize: number, toFortran: boolean): Uint8Array {
  const n = shapeElements(shape);
  const dst = new Uint8Array(n * elsize);
  const ndim = shape.length;
  const fStride: number[] = [];
  let s = 1;
  for (let k = 0; k < ndim; k++) {
    fStride.push(s);
    s *= shape[k];
  }
  const idx = new Array<number>(ndim).fill(0);
  let f = 0;
  for (let c = 0; c < n; c++) {
    const from = (toFortran ? c : f) * elsize;
    const to = (toFortran ? f : c) * elsize;
    for (let b = 0; b < elsize; b++) dst[to + b] = src[from + b];
    for (let k = ndim - 1; k >= 0; k--) {
      idx[k]++;
      f += fStride[k];
      if (idx[k] < shape[k]) break;
      f -= fStride[k] * shape[k];
      idx[k] = 0;
    }
  }
  return dst;
}

/** Reverses the bytes of every `width`-byte lane in place. */
function swapLanes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let p = 0; p + width <= bytes.length; p += width) {
    for (let a = p, b = p + width - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

function isTypedArray(v: unknown): v is TypedArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function isComplex(v: unknown): v is Complex {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) &&
    typeof (v as Complex).re === "number" && typeof (v as Complex).im === "number";
}

/**
 * Resolves a declared shape (with at most one `null`) against an element count,
 * as spead2's `dynamic_shape` and `compatible_shape` do.
 */
function resolveShape(declared: ReadonlyArray<number | null>, n: number): number[] {
  let known = 1;
  let unknown = -1;
  declared.forEach((d, i) => {
    if (d === null) unknown = i;
    else known *= d;
  });
  const out = declared.map((d) => d ?? 0);
  if (unknown < 0) {
    if (known !== n) throw invalid(`value has ${n} elements, expected shape (${declared.join(", ")})`);
    return out;
  }
  if (known === 0) {
    if (n !== 0) throw invalid(`value has ${n} elements, expected shape (${declared.join(", ")})`);
    return out;
  }
  if (n % known !== 0) throw invalid(`value has ${n} elements, not compatible with shape (${declared.map((d) => d ?? "None").join(", ")})`);
  out[unknown] = n / known;
  return out;
}

function compatible(declared: ReadonlyArray<number | null>, shape: readonly number[]): boolean {
  return declared.length === shape.length && declared.every((d, i) => d === null || d === shape[i]);
}

type Leaf = unknown;

/**
 * Flattens an input value to C-order elements and works out its shape.
 * `flatLanes` is how many typed-array entries make one element (2 for complex).
 */
function flatten(
  value: ItemValue,
  declared: ReadonlyArray<number | null>,
  opts: { s1: boolean; lanes: number; bytesLeaf: boolean },
): { elements: ArrayLike<Leaf>; typed: TypedArray | null; shape: number[] } {
  const ndim = declared.length;
  if (value === null || value === undefined) throw invalid("cannot encode a value of null");
  if (ndim === 0) {
    // A 0-d value may be given as a one-element typed array (as spead2 takes 0-d numpy
    // arrays), except for S/V types, whose scalars are themselves bytes.
    if (isTypedArray(value) && !(opts.bytesLeaf && value instanceof Uint8Array) && value.length === opts.lanes) {
      return { elements: [], typed: value, shape: [] };
    }
    return { elements: [value], typed: null, shape: [] };
  }
  if (opts.s1 && ndim === 1) {
    if (typeof value === "string") {
      const chars: string[] = [];
      for (const ch of value) chars.push(ch);
      return { elements: chars, typed: null, shape: resolveShape(declared, chars.length) };
    }
    if (value instanceof Uint8Array) {
      const chars = Array.from(value, (b) => String.fromCharCode(b));
      return { elements: chars, typed: null, shape: resolveShape(declared, chars.length) };
    }
  }
  if (isTypedArray(value)) {
    if (value.length % opts.lanes !== 0) throw invalid("complex typed arrays need interleaved (re, im) pairs");
    return { elements: [], typed: value, shape: resolveShape(declared, value.length / opts.lanes) };
  }
  if (!Array.isArray(value)) throw invalid(`value must be an array for shape (${declared.join(", ")})`);
  if (ndim >= 2) {
    // Nested form: one array level per dimension, if it fits the declared shape.
    const shape: number[] = [];
    let node: unknown = value;
    let nested = true;
    for (let level = 0; level < ndim; level++) {
      if (!(Array.isArray(node) || (level === ndim - 1 && isTypedArray(node) && opts.lanes === 1))) {
        nested = false;
        break;
      }
      const len = (node as ArrayLike<unknown>).length;
      shape.push(len);
      if (len === 0 && level < ndim - 1) {
        nested = false;
        break;
      }
      node = (node as ArrayLike<unknown>)[0];
    }
    if (nested && compatible(declared, shape)) {
      const out: Leaf[] = [];
      const walk = (v: unknown, level: number) => {
        const arr = v as ArrayLike<unknown>;
        if (!(Array.isArray(v) || isTypedArray(v)) || arr.length !== shape[level]) {
          throw invalid("ragged nested array value");
        }
        if (level === ndim - 1) {
          for (let k = 0; k < arr.length; k++) out.push(arr[k]);
        } else {
          for (let k = 0; k < arr.length; k++) walk(arr[k], level + 1);
        }
      };
      walk(value, 0);
      return { elements: out, typed: null, shape };
    }
  }
  return { elements: value, typed: null, shape: resolveShape(declared, value.length) };
}

// ---------------------------------------------------------------------------
// Element conversion

function intRange(signed: boolean, bits: number): [bigint, bigint] {
  if (signed) return [-(1n << BigInt(bits - 1)), (1n << BigInt(bits - 1)) - 1n];
  return [0n, (1n << BigInt(bits)) - 1n];
}

/** Validates an integer input against a width; returns it as a bigint. */
function toBigIntChecked(v: unknown, signed: boolean, bits: number): bigint {
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number" && Number.isInteger(v)) b = BigInt(v);
  else if (typeof v === "boolean") b = v ? 1n : 0n;
  else throw invalid(`expected an integer, got ${String(v)}`);
  const [lo, hi] = intRange(signed, bits);
  if (b < lo || b > hi) throw invalid(`${b} is out of range for ${signed ? "i" : "u"}${bits}`);
  return b;
}

function toNumberChecked(v: unknown, signed: boolean, bits: number): number {
  if (typeof v === "number" && Number.isInteger(v)) {
    const lo = signed ? -(2 ** (bits - 1)) : 0;
    const hi = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
    if (v < lo || v > hi) throw invalid(`${v} is out of range for ${signed ? "i" : "u"}${bits}`);
    return v;
  }
  return Number(toBigIntChecked(v, signed, bits));
}

function toFloat(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  throw invalid(`expected a number, got ${String(v)}`);
}

function asciiBytes(s: string, what: string): number[] {
  const out: number[] = [];
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c > 0x7f) throw invalid(`${what} contains a non-ASCII character (U+${c.toString(16).padStart(4, "0")})`);
    out.push(c);
  }
  return out;
}

/** Writes one element of a numpy dtype at `offset`. */
function writeElement(view: DataView, offset: number, dtype: DType, v: unknown): void {
  const little = dtype.byteOrder === "<";
  switch (dtype.kind) {
    case "b":
      view.setUint8(offset, v ? 1 : 0);
      return;
    case "u":
    case "i": {
      const signed = dtype.kind === "i";
      const bits = dtype.itemsize * 8;
      if (dtype.itemsize === 8) {
        const b = toBigIntChecked(v, signed, 64);
        if (signed) view.setBigInt64(offset, b, little);
        else view.setBigUint64(offset, b, little);
        return;
      }
      const x = toNumberChecked(v, signed, bits);
      if (dtype.itemsize === 1) signed ? view.setInt8(offset, x) : view.setUint8(offset, x);
      else if (dtype.itemsize === 2) signed ? view.setInt16(offset, x, little) : view.setUint16(offset, x, little);
      else signed ? view.setInt32(offset, x, little) : view.setUint32(offset, x, little);
      return;
    }
    case "f":
      if (dtype.itemsize === 4) view.setFloat32(offset, toFloat(v), little);
      else view.setFloat64(offset, toFloat(v), little);
      return;
    case "c": {
      const c = isComplex(v) ? v : { re: toFloat(v), im: 0 };
      if (dtype.itemsize === 8) {
        view.setFloat32(offset, c.re, little);
        view.setFloat32(offset + 4, c.im, little);
      } else {
        view.setFloat64(offset, c.re, little);
        view.setFloat64(offset + 8, c.im, little);
      }
      return;
    }
    case "S": {
      let bytes: ArrayLike<number>;
      if (typeof v === "string") bytes = asciiBytes(v, "string value");
      else if (v instanceof Uint8Array) bytes = v;
      else throw invalid(`expected a string for ${dtype.str}, got ${String(v)}`);
      const n = Math.min(bytes.length, dtype.itemsize); // numpy truncates silently
      for (let k = 0; k < dtype.itemsize; k++) view.setUint8(offset + k, k < n ? bytes[k] : 0);
      return;
    }
    case "V": {
      if (!(v instanceof Uint8Array)) throw invalid(`expected a Uint8Array for ${dtype.str}`);
      if (v.length > dtype.itemsize) throw invalid(`${v.length} bytes do not fit ${dtype.str}`);
      for (let k = 0; k < dtype.itemsize; k++) view.setUint8(offset + k, k < v.length ? v[k] : 0);
      return;
    }
    case "struct": {
      const fields = dtype.fields!;
      let values: readonly unknown[];
      if (Array.isArray(v)) values = v;
      else if (typeof v === "object" && v !== null && !ArrayBuffer.isView(v)) {
        values = fields.map((f) => {
          if (!(f.name in (v as object))) throw invalid(`record value lacks field '${f.name}'`);
          return (v as Record<string, unknown>)[f.name];
        });
      } else throw invalid(`expected a tuple for a record dtype, got ${String(v)}`);
      if (values.length !== fields.length) {
        throw invalid(`record value has ${values.length} fields, expected ${fields.length}`);
      }
      fields.forEach((f, k) => writeElement(view, offset + f.offset, f.dtype, values[k]));
      return;
    }
  }
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let s = "";
  for (let k = start; k < end; k++) s += String.fromCharCode(bytes[k]);
  return s;
}

/** Reads one element of a numpy dtype at `offset`. */
function readElement(view: DataView, bytes: Uint8Array, offset: number, dtype: DType): ItemValue {
  const little = dtype.byteOrder === "<";
  switch (dtype.kind) {
    case "b":
      return view.getUint8(offset) !== 0;
    case "u":
      switch (dtype.itemsize) {
        case 1:
          return view.getUint8(offset);
        case 2:
          return view.getUint16(offset, little);
        case 4:
          return view.getUint32(offset, little);
        default:
          return view.getBigUint64(offset, little);
      }
    case "i":
      switch (dtype.itemsize) {
        case 1:
          return view.getInt8(offset);
        case 2:
          return view.getInt16(offset, little);
        case 4:
          return view.getInt32(offset, little);
        default:
          return view.getBigInt64(offset, little);
      }
    case "f":
      return dtype.itemsize === 4 ? view.getFloat32(offset, little) : view.getFloat64(offset, little);
    case "c":
      return dtype.itemsize === 8
        ? { re: view.getFloat32(offset, little), im: view.getFloat32(offset + 4, little) }
        : { re: view.getFloat64(offset, little), im: view.getFloat64(offset + 8, little) };
    case "S": {
      let end = offset + dtype.itemsize;
      while (end > offset && bytes[end - 1] === 0) end--; // numpy strips trailing NULs
      return latin1(bytes, offset, end);
    }
    case "V":
      return bytes.slice(offset, offset + dtype.itemsize);
    case "struct":
      return dtype.fields!.map((f) => readElement(view, bytes, offset + f.offset, f.dtype));
  }
}

/** Joins S1 characters into one string as spead2 does for 1-D `c8`: NULs vanish, non-ASCII is an error. */
function joinChars(bytes: Uint8Array): string {
  let s = "";
  for (let k = 0; k < bytes.length; k++) {
    const c = bytes[k];
    if (c === 0) continue;
    if (c > 0x7f) throw malformed(`string value contains non-ASCII byte 0x${c.toString(16)}`);
    s += String.fromCharCode(c);
  }
  return s;
}

// ---------------------------------------------------------------------------
// Bit-packed values (spead2's slow path)

class BitReader {
  private pos = 0; // bit position
  constructor(private readonly bytes: Uint8Array) {}

  /** Reads `bits` (≤ 53) bits MSB-first as a number. */
  private readSmall(bits: number): number {
    let v = 0;
    let left = bits;
    while (left > 0) {
      const byte = this.bytes[this.pos >> 3] ?? 0;
      const used = this.pos & 7;
      const take = Math.min(8 - used, left);
      const chunk = (byte >> (8 - used - take)) & ((1 << take) - 1);
      v = v * (1 << take) + chunk;
      left -= take;
      this.pos += take;
    }
    return v;
  }

  /** Reads `bits` (≤ 64) bits as a number when ≤ 53 bits, else a bigint. */
  read(bits: number): number | bigint {
    if (bits <= 53) return this.readSmall(bits);
    const hi = this.readSmall(bits - 32);
    const lo = this.readSmall(32);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
}

class BitWriter {
  private pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  private writeSmall(v: number, bits: number): void {
    let left = bits;
    let rest = v;
    while (left > 0) {
      const used = this.pos & 7;
      const take = Math.min(8 - used, left);
      const scale = 2 ** (left - take);
      const chunk = Math.floor(rest / scale);
      rest -= chunk * scale;
      this.bytes[this.pos >> 3] |= chunk << (8 - used - take);
      left -= take;
      this.pos += take;
    }
  }

  /** Writes an unsigned value of `bits` (≤ 64) bits MSB-first. */
  write(v: number | bigint, bits: number): void {
    if (bits <= 53) {
      this.writeSmall(Number(v), bits);
      return;
    }
    const b = BigInt(v);
    this.writeSmall(Number(b >> 32n), bits - 32);
    this.writeSmall(Number(b & 0xffff_ffffn), 32);
  }
}

function decodeBitField(code: string, bits: number, raw: number | bigint): ItemValue {
  switch (code) {
    case "u":
      return raw;
    case "i": {
      if (typeof raw === "bigint") {
        return raw >= 1n << BigInt(bits - 1) ? raw - (1n << BigInt(bits)) : raw;
      }
      return raw >= 2 ** (bits - 1) ? raw - 2 ** bits : raw;
    }
    case "b":
      return raw !== 0 && raw !== 0n;
    case "c":
      return String.fromCharCode(Number(raw));
    case "f": {
      const dv = new DataView(new ArrayBuffer(8));
      if (bits === 32) {
        dv.setUint32(0, Number(raw));
        return dv.getFloat32(0);
      }
      dv.setBigUint64(0, BigInt(raw));
      return dv.getFloat64(0);
    }
    default:
      throw invalid(`unhandled format (${code}, ${bits})`);
  }
}

function encodeBitField(code: string, bits: number, v: unknown): number | bigint {
  switch (code) {
    case "u":
    case "i": {
      const signed = code === "i";
      if (bits <= 53) {
        const x = toNumberChecked(v, signed, bits);
        return x < 0 ? x + 2 ** bits : x;
      }
      const b = toBigIntChecked(v, signed, bits);
      return b < 0n ? b + (1n << BigInt(bits)) : b;
    }
    case "b":
      return v ? 1 : 0;
    case "c": {
      let c: number;
      if (typeof v === "string" && v.length === 1) c = v.charCodeAt(0);
      else if (v instanceof Uint8Array && v.length === 1) c = v[0];
      else throw invalid(`expected a 1-character string for c8, got ${String(v)}`);
      if (c > 0x7f) throw invalid(`character U+${c.toString(16).padStart(4, "0")} is not ASCII`);
      return c;
    }
    case "f": {
      const dv = new DataView(new ArrayBuffer(8));
      if (bits === 32) {
        dv.setFloat32(0, toFloat(v));
        return dv.getUint32(0);
      }
      dv.setFloat64(0, toFloat(v));
      return dv.getBigUint64(0);
    }
    default:
      throw invalid(`unhandled format (${code}, ${bits})`);
  }
}

// ---------------------------------------------------------------------------
// Codec

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

// ---------------------------------------------------------------------------
// Immediates

/**
 * The bytes of a value of `size` bytes carried as an immediate: spead2 gives
 * immediates head padding, so the value is the trailing `size` bytes of the
 * big-endian address field.
 */
export function immediateTail(field: Uint8Array, size: number): Uint8Array {
  if (size > field.length) throw malformed(`immediate of ${field.length} bytes cannot hold ${size} bytes`);
  return field.subarray(field.length - size);
}

/** The address field of an immediate item pointer as big-endian bytes (`width` = heap_address_bits / 8). */
export function immediateBytes(value: bigint, width: number): Uint8Array {
  const out = new Uint8Array(width);
  let v = value;
  for (let k = width - 1; k >= 0; k--) {
    out[k] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * Interprets the low `bits` bits of an immediate as an integer of that width
 * (two's complement when `signed`), following the integer rule: a number up
 * to 53 bits, else a bigint.
 */
export function immediateInteger(value: bigint, bits: number, signed: boolean): number | bigint {
  let v = value & ((1n << BigInt(bits)) - 1n);
  if (signed && v >= 1n << BigInt(bits - 1)) v -= 1n << BigInt(bits);
  return bits <= 53 ? Number(v) : v;
}

