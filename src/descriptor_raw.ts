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

/** The variable parts of a `DescriptorFields` record as separate arrays ({@link packDescriptorArgs}). */
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
  asciiInto(text, bytes, 0, what);
  return { bytes, length: text.length };
}

/** Writes `text` as ASCII into `bytes` at `at`; returns the end. Non-ASCII is `invalid_argument`. */
function asciiInto(text: string, bytes: Uint8Array, at: number, what: string): number {
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c > 0x7f) {
      throw new SpeadError("invalid_argument", `${what} contains a non-ASCII character (U+${c.toString(16).padStart(4, "0")})`);
    }
    bytes[at + k] = c;
  }
  return at + text.length;
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
 * Where {@link writeDescriptorParts} put a descriptor's parts: the pair counts
 * (format pairs from byte 0, shape pairs after them) and the byte offsets and
 * lengths of the strings.
 */
export interface DescriptorParts {
  readonly formatCount: number;
  readonly shapeCount: number;
  readonly nameAt: number;
  readonly nameLen: number;
  readonly descriptionAt: number;
  readonly descriptionLen: number;
  readonly dtypeAt: number;
  readonly dtypeLen: number;
}

/** The bytes {@link writeDescriptorParts} writes for `raw`. */
export function descriptorPartsSize(raw: RawDescriptor): number {
  const dtypeLen = raw.numpyHeader === null ? 0 : raw.numpyHeader.length;
  return 16 * (raw.format.length + raw.shape.length) + raw.name.length + raw.description.length + dtypeLen;
}

/** Writes a u64 at u64 index `word` of `halves` as two u32 halves (little-endian; no BigInt). */
function putWord(halves: Uint32Array, word: number, value: number): void {
  halves[2 * word] = value % 2 ** 32;
  halves[2 * word + 1] = Math.floor(value / 2 ** 32);
}

/**
 * Writes the variable parts of a `DescriptorFields` record (`spead_descriptor_encode`)
 * into one buffer: the (code, bits) format pairs and (flags, size) shape pairs
 * as u64 words from byte 0, then the name, description and numpy header as
 * ASCII. `bytes` and `halves` view the same 8-byte-aligned memory, at least
 * {@link descriptorPartsSize} bytes. Throws `invalid_argument` for a bad id,
 * non-ASCII text or a bad format code (checked in this order).
 */
export function writeDescriptorParts(raw: RawDescriptor, halves: Uint32Array, bytes: Uint8Array): DescriptorParts {
  if (!Number.isInteger(raw.id) || raw.id < 0) throw new SpeadError("invalid_argument", `invalid item id ${raw.id}`);
  const formatCount = raw.format.length;
  const shapeCount = raw.shape.length;
  const nameAt = 16 * (formatCount + shapeCount);
  const descriptionAt = asciiInto(raw.name, bytes, nameAt, "descriptor name");
  const dtypeAt = asciiInto(raw.description, bytes, descriptionAt, "descriptor description");
  for (let k = 0; k < formatCount; k++) {
    const [code, bits] = raw.format[k];
    if (code.length !== 1 || code.charCodeAt(0) > 0x7f) throw new SpeadError("invalid_argument", `bad format code '${code}'`);
    putWord(halves, 2 * k, code.charCodeAt(0));
    putWord(halves, 2 * k + 1, bits);
  }
  for (let k = 0; k < shapeCount; k++) {
    const size = raw.shape[k];
    putWord(halves, 2 * (formatCount + k), size === null ? 1 : 0);
    putWord(halves, 2 * (formatCount + k) + 1, size === null ? 0 : size);
  }
  const end = raw.numpyHeader === null ? dtypeAt : asciiInto(raw.numpyHeader, bytes, dtypeAt, "numpy header");
  return {
    formatCount,
    shapeCount,
    nameAt,
    nameLen: descriptionAt - nameAt,
    descriptionAt,
    descriptionLen: dtypeAt - descriptionAt,
    dtypeAt,
    dtypeLen: end - dtypeAt,
  };
}

/**
 * The parts of `raw` as separate arrays (views of one buffer written by
 * {@link writeDescriptorParts}, as `spead_descriptor_encode`'s record points
 * at them). No array is empty (a zero-length typed array may be passed as a
 * null pointer); the lengths say how much is used.
 */
export function packDescriptorArgs(raw: RawDescriptor): DescriptorEncodeArgs {
  // Slack past the parts so that the never-empty views of empty parts fit.
  const buffer = new ArrayBuffer(8 * Math.ceil(descriptorPartsSize(raw) / 8) + 32);
  const p = writeDescriptorParts(raw, new Uint32Array(buffer), new Uint8Array(buffer));
  return {
    idIn: BigUint64Array.of(BigInt(raw.id)),
    name: new Uint8Array(buffer, p.nameAt, Math.max(1, p.nameLen)),
    nameLen: p.nameLen,
    description: new Uint8Array(buffer, p.descriptionAt, Math.max(1, p.descriptionLen)),
    descriptionLen: p.descriptionLen,
    format: new BigUint64Array(buffer, 0, Math.max(2, 2 * p.formatCount)),
    nFormat: p.formatCount,
    shape: new BigUint64Array(buffer, 16 * p.formatCount, Math.max(2, 2 * p.shapeCount)),
    nShape: p.shapeCount,
    dtype: new Uint8Array(buffer, p.dtypeAt, Math.max(1, p.dtypeLen)),
    dtypeLen: p.dtypeLen,
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
