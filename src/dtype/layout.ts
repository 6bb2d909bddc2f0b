/** Shapes and memory layout: element counts, C/Fortran permutation, byte swapping, and flattening nested values. */
import { type Complex, type ItemValue, type TypedArray, invalid } from "./types.ts";

/** Number of elements of a shape. */
export function shapeElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Whether C and Fortran order lay the shape out identically (at most one dimension above 1). */
export function trivialLayout(shape: readonly number[]): boolean {
  let big = 0;
  for (const d of shape) if (d > 1) big++;
  return big <= 1;
}

/**
 * Reorders whole elements between C and Fortran order. `toFortran` true reads
 * C order and writes Fortran order; false does the reverse.
 */
export function permute(src: Uint8Array, shape: readonly number[], elsize: number, toFortran: boolean): Uint8Array {
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
export function swapLanes(bytes: Uint8Array, width: number): void {
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

export function isComplex(v: unknown): v is Complex {
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

export type Leaf = unknown;

/**
 * Flattens an input value to C-order elements and works out its shape.
 * `flatLanes` is how many typed-array entries make one element (2 for complex).
 */
export function flatten(
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
