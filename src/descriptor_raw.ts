/**
 * The pure half of descriptor encoding: building the argument arrays of
 * `spead_descriptor_encode` and reading the output words of
 * `spead_descriptor_decode` (docs/ABI.md, "Descriptors"). No FFI here, so it is
 * testable without the native library; `descriptor.ts` makes the calls.
 */
import { DescriptorDecodedWords } from "../ffi/abi.gen.ts";
import { SpeadError } from "./errors.ts";
import type { FormatField } from "./dtype/mod.ts";

/** A descriptor as it travels on the wire (spead2's `RawDescriptor`). */
export interface RawDescriptor {
  /** SPEAD item ID. */
  readonly id: number;
  /** Short name (ASCII). */
  readonly name: string;
  /** Long description (ASCII). */
  readonly description: string;
  /** Legacy format fields; empty when a numpy header is used. */
  readonly format: readonly FormatField[];
  /** Shape; `null` marks a variable dimension. */
  readonly shape: ReadonlyArray<number | null>;
  /** The numpy header literal, or `null` when ID 0x15 is absent. */
  readonly numpyHeader: string | null;
}

/** The variable parts of a `DescriptorFields` record (`spead_descriptor_encode`; descriptor.ts writes their addresses). */
export interface DescriptorEncodeArgs {
  readonly idIn: BigUint64Array;
  readonly name: Uint8Array;
  readonly nameLen: number;
  readonly description: Uint8Array;
  readonly descriptionLen: number;
  readonly format: BigUint64Array;
  readonly nFormat: number;
  readonly shape: BigUint64Array;
  readonly nShape: number;
  readonly dtype: Uint8Array;
  readonly dtypeLen: number;
}

/** Words of the fixed header of the decode output (a `DescriptorDecoded` record). */
export const DECODE_HEADER_WORDS = DescriptorDecodedWords.size;
const D = DescriptorDecodedWords;
const ABSENT = 0xffff_ffff_ffff_ffffn;

/** ASCII bytes of a string; spead2 raises on anything else. Never returns an empty buffer. */
export function asciiEncode(text: string, what: string): { bytes: Uint8Array; length: number } {
  const bytes = new Uint8Array(Math.max(1, text.length));
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c > 0x7f) {
      throw new SpeadError("invalid_argument", `${what} contains a non-ASCII character (U+${c.toString(16).padStart(4, "0")})`);
    }
    bytes[k] = c;
  }
  return { bytes, length: text.length };
}

/** Decodes ASCII bytes; a byte above 0x7F is `malformed` (spead2 raises UnicodeDecodeError). */
export function asciiDecode(bytes: Uint8Array, what: string): string {
  let s = "";
  for (let k = 0; k < bytes.length; k++) {
    const c = bytes[k];
    if (c > 0x7f) throw new SpeadError("malformed", `${what} contains non-ASCII byte 0x${c.toString(16)}`);
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * Builds the buffers `spead_descriptor_encode` takes. Buffers are never empty
 * (a zero-length typed array may be passed as a null pointer); the lengths say
 * how much is used.
 */
export function packDescriptorArgs(raw: RawDescriptor): DescriptorEncodeArgs {
  if (!Number.isInteger(raw.id) || raw.id < 0) throw new SpeadError("invalid_argument", `invalid item id ${raw.id}`);
  const name = asciiEncode(raw.name, "descriptor name");
  const description = asciiEncode(raw.description, "descriptor description");
  const format = new BigUint64Array(Math.max(2, 2 * raw.format.length));
  raw.format.forEach(([code, bits], k) => {
    if (code.length !== 1 || code.charCodeAt(0) > 0x7f) throw new SpeadError("invalid_argument", `bad format code '${code}'`);
    format[2 * k] = BigInt(code.charCodeAt(0));
    format[2 * k + 1] = BigInt(bits);
  });
  const shape = new BigUint64Array(Math.max(2, 2 * raw.shape.length));
  raw.shape.forEach((size, k) => {
    shape[2 * k] = size === null ? 1n : 0n;
    shape[2 * k + 1] = size === null ? 0n : BigInt(size);
  });
  const dtype = raw.numpyHeader === null ? { bytes: new Uint8Array(1), length: 0 } : asciiEncode(raw.numpyHeader, "numpy header");
  return {
    idIn: new BigUint64Array([BigInt(raw.id)]),
    name: name.bytes,
    nameLen: name.length,
    description: description.bytes,
    descriptionLen: description.length,
    format,
    nFormat: raw.format.length,
    shape,
    nShape: raw.shape.length,
    dtype: dtype.bytes,
    dtypeLen: dtype.length,
  };
}

/** A safe upper bound on the output words `spead_descriptor_decode` needs for `len` input bytes. */
export function decodeCapacityWords(len: number): number {
  // Each format/shape entry takes at least 2 wire bytes and 2 words; strings need len/8 + 3 words.
  return DECODE_HEADER_WORDS + len + 8;
}

function toSafeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new SpeadError("malformed", `${what} ${v} is too large`);
  return Number(v);
}

/** Reads the output of `spead_descriptor_decode` (docs/ABI.md layout). */
export function unpackDescriptorWords(
  out: BigUint64Array,
  outWords: number,
): RawDescriptor & { readonly heapAddressBits: number } {
  if (outWords < DECODE_HEADER_WORDS || outWords > out.length) {
    throw new SpeadError("malformed", `descriptor decode produced ${outWords} words`);
  }
  const id = toSafeNumber(out[D.id], "descriptor id");
  const nFormat = toSafeNumber(out[D.format_count], "format count");
  const nShape = toSafeNumber(out[D.shape_count], "shape count");
  if (DECODE_HEADER_WORDS + 2 * (nFormat + nShape) > outWords) {
    throw new SpeadError("malformed", "descriptor decode output is too short for its fields");
  }
  const bytes = new Uint8Array(out.buffer, out.byteOffset, outWords * 8);
  const str = (offWord: number, lenWord: number, what: string): string | null => {
    if (out[lenWord] === ABSENT) return null;
    const off = toSafeNumber(out[offWord], what);
    const len = toSafeNumber(out[lenWord], what);
    if (off + len > bytes.length) throw new SpeadError("malformed", `${what} lies outside the decode output`);
    return asciiDecode(bytes.subarray(off, off + len), what);
  };
  const format: FormatField[] = [];
  let w = DECODE_HEADER_WORDS;
  for (let k = 0; k < nFormat; k++, w += 2) {
    format.push([String.fromCharCode(Number(out[w] & 0xffn)), toSafeNumber(out[w + 1], "format length")]);
  }
  const shape: Array<number | null> = [];
  for (let k = 0; k < nShape; k++, w += 2) {
    shape.push((out[w] & 1n) !== 0n ? null : toSafeNumber(out[w + 1], "shape size"));
  }
  return {
    id,
    name: str(D.name_offset, D.name_len, "descriptor name") ?? "",
    description: str(D.description_offset, D.description_len, "descriptor description") ?? "",
    format,
    shape,
    numpyHeader: str(D.dtype_offset, D.dtype_len, "numpy header"),
    heapAddressBits: Number(out[D.heap_address_bits]),
  };
}
