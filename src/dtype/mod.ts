/**
 * The value model: numpy-style dtypes, spead2's legacy formats, the numpy
 * header literal, and the codecs that turn item values into wire bytes and back.
 * Pure TypeScript (no FFI). One file per job: types.ts, dtype.ts (dtypes and
 * legacy formats), numpy_header.ts, py_literal.ts, layout.ts, element.ts, bit_field.ts,
 * codec.ts, immediate.ts.
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
export { nativeByteOrder } from "./types.ts";
export type { ByteOrder, Order, DTypeKind, FormatField, Format, Complex, TypedArray, ScalarValue, ItemValue, Descr, DTypeLike } from "./types.ts";
export { DType, formatToDType, formatBits, formatsEqual } from "./dtype.ts";
export type { ArrayCtor, DTypeField } from "./dtype.ts";
export { parseNumpyHeader, formatNumpyHeader } from "./numpy_header.ts";
export type { NumpyHeader } from "./numpy_header.ts";
export { shapeElements } from "./layout.ts";
export { Codec, decode, encode, inferShape, MAX_ARRAY_ELEMENTS } from "./codec.ts";
export type { DecodeOptions, Decoded, Encoded } from "./codec.ts";
export { immediateTail, immediateBytes, immediateInteger } from "./immediate.ts";
