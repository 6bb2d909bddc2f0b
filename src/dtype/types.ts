/** Basic types of the value model: byte orders, kinds, formats, values, and the errors the dtype modules throw. */
import { SpeadError } from "../errors.ts";
import type { DType } from "./dtype.ts";

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
  /** Real part. */
  re: number;
  /** Imaginary part. */
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

export function invalid(message: string): SpeadError {
  return new SpeadError("invalid_argument", message);
}

export function malformed(message: string): SpeadError {
  return new SpeadError("malformed", message);
}
