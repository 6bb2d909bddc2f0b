/** Immediate items: the address field of an immediate item pointer as bytes and integers. */
import { malformed } from "./types.ts";

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
