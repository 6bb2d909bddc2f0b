/** Element conversion: one numpy element to and from bytes, with range checks. */
import type { DType } from "./dtype.ts";
import { isComplex } from "./layout.ts";
import { type ItemValue, invalid, malformed } from "./types.ts";

function intRange(signed: boolean, bits: number): [bigint, bigint] {
  if (signed) return [-(1n << BigInt(bits - 1)), (1n << BigInt(bits - 1)) - 1n];
  return [0n, (1n << BigInt(bits)) - 1n];
}

/** Validates an integer input against a width; returns it as a bigint. */
export function toBigIntChecked(v: unknown, signed: boolean, bits: number): bigint {
  let b: bigint;
  if (typeof v === "bigint") b = v;
  else if (typeof v === "number" && Number.isInteger(v)) b = BigInt(v);
  else if (typeof v === "boolean") b = v ? 1n : 0n;
  else throw invalid(`expected an integer, got ${String(v)}`);
  const [lo, hi] = intRange(signed, bits);
  if (b < lo || b > hi) throw invalid(`${b} is out of range for ${signed ? "i" : "u"}${bits}`);
  return b;
}

export function toNumberChecked(v: unknown, signed: boolean, bits: number): number {
  if (typeof v === "number" && Number.isInteger(v)) {
    const lo = signed ? -(2 ** (bits - 1)) : 0;
    const hi = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
    if (v < lo || v > hi) throw invalid(`${v} is out of range for ${signed ? "i" : "u"}${bits}`);
    return v;
  }
  return Number(toBigIntChecked(v, signed, bits));
}

export function toFloat(v: unknown): number {
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
export function writeElement(view: DataView, offset: number, dtype: DType, v: unknown): void {
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
export function readElement(view: DataView, bytes: Uint8Array, offset: number, dtype: DType): ItemValue {
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
export function joinChars(bytes: Uint8Array): string {
  let s = "";
  for (let k = 0; k < bytes.length; k++) {
    const c = bytes[k];
    if (c === 0) continue;
    if (c > 0x7f) throw malformed(`string value contains non-ASCII byte 0x${c.toString(16)}`);
    s += String.fromCharCode(c);
  }
  return s;
}
