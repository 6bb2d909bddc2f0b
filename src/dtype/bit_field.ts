/** Bit-packed values (spead2's slow path for legacy formats that are not whole bytes). */
import { toBigIntChecked, toFloat, toNumberChecked } from "./element.ts";
import { type ItemValue, invalid } from "./types.ts";

export class BitReader {
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

export class BitWriter {
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

export function decodeBitField(code: string, bits: number, raw: number | bigint): ItemValue {
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

export function encodeBitField(code: string, bits: number, v: unknown): number | bigint {
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
