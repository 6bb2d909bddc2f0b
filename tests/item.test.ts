// Descriptor validation and Item encode/decode (no native calls are made here,
// but the modules load the native library).
import { describe, expect, test } from "bun:test";
import { Descriptor } from "../src/descriptor.ts";
import { Item, type ItemOptions, type RawItem } from "../src/item.ts";
import { immediateBytes, type ItemValue, nativeByteOrder } from "../src/dtype/mod.ts";
import { SpeadError } from "../src/errors.ts";

const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const fromHex = (h: string) => new Uint8Array(h.match(/../g)?.map((b) => parseInt(b, 16)) ?? []);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SpeadError ? err.code : `non-spead: ${String(err)}`;
  }
  return undefined;
}

function addressed(id: number, bytes: Uint8Array): RawItem {
  return { id, isImmediate: false, immediateValue: 0n, value: bytes };
}

function immediate(id: number, value: bigint, hab = 48): RawItem {
  return { id, isImmediate: true, immediateValue: value, value: immediateBytes(value, hab / 8) };
}

describe("Descriptor validation (spead2 test_common TestItem)", () => {
  test("format and dtype together", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [1, 2], format: [["c", 8]], dtype: "S1" }))).toBe(
      "invalid_argument",
    );
  });
  test("neither format nor dtype", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [1, 2] }))).toBe("invalid_argument");
  });
  test("invalid order", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [1, 2], dtype: "<i4", order: "K" as "C" }))).toBe(
      "invalid_argument",
    );
  });
  test("Fortran order with a format", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [1, 2], format: [["u", 32]], order: "F" }))).toBe(
      "invalid_argument",
    );
  });
  test("empty format", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [1, 2], format: [] }))).toBe("invalid_argument");
  });
  test("zero-length format field", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [], format: [["u", 0]] }))).toBe("invalid_argument");
  });
  test("assigning null", () => {
    const item = new Item({ id: 0x1000, name: "n", shape: [], dtype: "<i4" });
    expect(codeOf(() => {
      (item as { value: ItemValue | null }).value = null;
    })).toBe("invalid_argument");
  });
  test("multiple unknown dimensions", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [5, null, 3, null], format: [["u", 32]] }))).toBe(
      "invalid_argument",
    );
  });
  test("unknown dimensions with a dtype", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [5, null], dtype: "<i4" }))).toBe("invalid_argument");
  });
  test("zero-sized dtype", () => {
    expect(codeOf(() => new Item({ id: 0x1000, name: "n", shape: [], dtype: "S0" }))).toBe("invalid_argument");
  });
});

describe("Descriptor properties", () => {
  test("itemsizeBits, isVariableSize, allowImmediate", () => {
    const a = new Descriptor({ id: 1, name: "a", shape: [], format: [["u", 40]] });
    expect(a.itemsizeBits).toBe(40);
    expect(a.allowImmediate()).toBe(true);
    const b = new Descriptor({ id: 1, name: "b", shape: [3], format: [["u", 12]] });
    expect(b.allowImmediate()).toBe(false); // not whole bytes
    const c = new Descriptor({ id: 1, name: "c", shape: [null], format: [["u", 8]] });
    expect(c.isVariableSize()).toBe(true);
    expect(c.allowImmediate()).toBe(false);
    const d = new Descriptor({ id: 1, name: "d", shape: [2], dtype: "<u2" });
    expect(d.itemsizeBits).toBe(16);
    expect(d.allowImmediate()).toBe(true);
  });

  test("dynamicShape and compatibleShape", () => {
    const d = new Descriptor({ id: 1, name: "d", shape: [2, null], format: [["u", 8]] });
    expect(d.dynamicShape(11)).toEqual([2, 5]);
    expect(d.compatibleShape([2, 7])).toBe(true);
    expect(d.compatibleShape([3, 7])).toBe(false);
    expect(new Descriptor({ id: 1, name: "z", shape: [0, null], format: [["u", 8]] }).dynamicShape(9)).toEqual([0, 0]);
  });

  test("sameAs compares every descriptor field", () => {
    const base = { id: 1, name: "d", description: "x", shape: [2], dtype: "<u2" };
    const d = new Descriptor(base);
    expect(d.sameAs(new Descriptor({ ...base }))).toBe(true);
    expect(d.sameAs(new Descriptor({ ...base, description: "y" }))).toBe(false);
    expect(d.sameAs(new Descriptor({ ...base, shape: [3] }))).toBe(false);
    expect(d.sameAs(new Descriptor({ ...base, dtype: ">u2" }))).toBe(false);
    expect(d.sameAs(new Descriptor({ ...base, order: "F" }))).toBe(false);
    expect(d.sameAs(new Descriptor({ id: 1, name: "d", description: "x", shape: [2], format: [["u", 16]] }))).toBe(false);
  });
});

// Expected bytes and allow_immediate() computed with spead2 4.5.1 (Item.to_buffer).
const sendVectors: Array<{ options: ItemOptions; hex: string; allow: boolean; bits: number }> = [
  { options: { id: 1, name: "a", shape: [], format: [["u", 40]], value: 0x123456789a }, hex: "123456789a", allow: true, bits: 40 },
  { options: { id: 1, name: "a", shape: [3], format: [["u", 12]], value: [1, 2, 3] }, hex: "0010020030", allow: false, bits: 12 },
  {
    options: {
      id: 1,
      name: "a",
      shape: [2],
      format: [["b", 1], ["i", 7], ["c", 8], ["f", 32]],
      value: [[true, 17, "y", 1.0], [false, -23, "n", -1.0]],
    },
    hex: "91793f800000696ebf800000",
    allow: true,
    bits: 48,
  },
  { options: { id: 1, name: "a", shape: [null], format: [["c", 8]], value: "Hello" }, hex: "48656c6c6f", allow: false, bits: 8 },
  {
    options: { id: 1, name: "a", shape: [2, 3], dtype: "<u2", order: "F", value: [[6, 7, 8], [10, 11, 12000]] },
    hex: "06000a0007000b000800e02e",
    allow: true,
    bits: 16,
  },
  {
    options: { id: 1, name: "a", shape: [2], dtype: [["a", "<u2"], ["b", ">f4"]], value: [[1, 2.5], [0x1234, -1]] },
    hex: "0100402000003412bf800000",
    allow: true,
    bits: 48,
  },
  { options: { id: 1, name: "a", shape: [], dtype: "|S5", value: "abc" }, hex: "6162630000", allow: true, bits: 40 },
  {
    options: { id: 1, name: "a", shape: [2], format: [["f", 32], ["i", 8]], value: [[1.5, 1], [2.5, -2]] },
    hex: "3fc000000140200000fe",
    allow: true,
    bits: 40,
  },
  { options: { id: 1, name: "a", shape: [5], format: [["u", 3]], value: [1, 2, 3, 4, 5] }, hex: "29ca", allow: false, bits: 3 },
  {
    options: { id: 1, name: "a", shape: [], format: [["u", 63]], value: (1n << 62n) + 12345n },
    hex: "8000000000006072",
    allow: false,
    bits: 63,
  },
  { options: { id: 1, name: "a", shape: [2], format: [["b", 8]], value: [true, false] }, hex: "0100", allow: true, bits: 8 },
  { options: { id: 1, name: "a", shape: [], dtype: ">c8", value: { re: 1.5, im: -2 } }, hex: "3fc00000c0000000", allow: true, bits: 64 },
  {
    options: { id: 1, name: "a", shape: [null, 4], format: [["u", 8]], value: new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]) },
    hex: "0001020304050607",
    allow: false,
    bits: 8,
  },
  { options: { id: 1, name: "a", shape: [], format: [["u", 16]], value: 0x7654 }, hex: "7654", allow: true, bits: 16 },
];

describe("Item.toBuffer matches spead2's to_buffer", () => {
  sendVectors.forEach((v, k) => {
    test(`vector ${k}: ${JSON.stringify(v.options.format ?? v.options.dtype)} ${JSON.stringify(v.options.shape)}`, () => {
      const item = new Item(v.options);
      expect(toHex(item.toBuffer())).toBe(v.hex);
      expect(item.allowImmediate()).toBe(v.allow);
      expect(item.itemsizeBits).toBe(v.bits);
    });
  });

  test("non-ASCII strings fail (spead2 UnicodeEncodeError)", () => {
    expect(codeOf(() => new Item({ id: 1, name: "a", shape: [null], format: [["c", 8]], value: "\u0200" }).toBuffer())).toBe(
      "invalid_argument",
    );
    expect(codeOf(() => new Item({ id: 1, name: "a", shape: [], dtype: "S5", value: "\u0201" }).toBuffer())).toBe(
      "invalid_argument",
    );
  });

  test("no value", () => {
    expect(codeOf(() => new Item({ id: 1, name: "a", shape: [], dtype: "<u2" }).toBuffer())).toBe("invalid_argument");
  });

  test("wrong shape", () => {
    expect(codeOf(() => new Item({ id: 1, name: "a", shape: [3], dtype: "<u2", value: [1, 2] }).toBuffer())).toBe(
      "invalid_argument",
    );
  });

  test("negative values of whole-byte legacy ints encode as two's complement", () => {
    expect(toHex(new Item({ id: 1, name: "a", shape: [], format: [["i", 48]], value: -5 }).toBuffer())).toBe("fffffffffffb");
  });
});

describe("Item versions", () => {
  test("constructor value keeps version 1; assignments bump it", () => {
    const item = new Item({ id: 1, name: "a", shape: [], dtype: "<u2", value: 3 });
    expect(item.version).toBe(1);
    item.value = 4;
    expect(item.version).toBe(2);
    expect(item.value).toBe(4);
  });
});

describe("Item.setFromRaw (spead2 set_from_raw and test_recv TestDecode)", () => {
  test("scalar int", () => {
    const item = new Item({ id: 0x1234, name: "a", shape: [], format: [["i", 32]] });
    item.setFromRaw(addressed(0x1234, fromHex("f8a432eb")));
    expect(item.value).toBe(-123456789);
    expect(item.version).toBe(2);
  });

  test("u32 immediate takes the trailing bytes", () => {
    const item = new Item({ id: 0x1234, name: "a", shape: [], format: [["u", 32]] });
    item.setFromRaw(immediate(0x1234, 0x12345678n));
    expect(item.value).toBe(0x12345678);
  });

  test("48-bit immediates: fast path with sign", () => {
    const u = new Item({ id: 1, name: "u", shape: [], format: [["u", 48]] });
    const p = new Item({ id: 2, name: "p", shape: [], format: [["i", 48]] });
    const n = new Item({ id: 3, name: "n", shape: [], format: [["i", 48]] });
    u.setFromRaw(immediate(1, 0x9234567890abn));
    p.setFromRaw(immediate(2, 0x1234567890abn));
    n.setFromRaw(immediate(3, 0x9234567890abn));
    expect(u.value).toBe(0x9234567890ab);
    expect(p.value).toBe(0x1234567890ab);
    expect(n.value).toBe(-0x6dcba9876f55);
  });

  test("u40 immediate under SPEAD-64-48 goes through the bit path on the tail", () => {
    const item = new Item({ id: 1, name: "t", shape: [], format: [["u", 40]] });
    item.setFromRaw(immediate(1, 0x123456789an, 48));
    expect(item.value).toBe(0x123456789a);
  });

  test("fallback scalar u48 (addressed)", () => {
    const item = new Item({ id: 1, name: "t", shape: [], format: [["u", 48]] });
    item.setFromRaw(addressed(1, fromHex("1234567890ab")));
    expect(item.value).toBe(0x1234567890ab);
  });

  test("string with a variable dimension", () => {
    const item = new Item({ id: 1, name: "s", shape: [null], format: [["c", 8]] });
    item.setFromRaw(addressed(1, new TextEncoder().encode("Hello world")));
    expect(item.value).toBe("Hello world");
    expect(item.valueShape).toEqual([11]);
  });

  test("non-ASCII string is malformed", () => {
    const item = new Item({ id: 1, name: "s", shape: [null], format: [["c", 8]] });
    expect(codeOf(() => item.setFromRaw(addressed(1, new TextEncoder().encode("\u0200"))))).toBe("malformed");
  });

  test("arrays, records and bit-packed values", () => {
    const f = new Item({ id: 1, name: "f", shape: [3, 2], format: [["f", 32]] });
    const raw = new Uint8Array(24);
    const dv = new DataView(raw.buffer);
    [1.5, 2.5, 3.5, 4.5, 5.5, 6.5].forEach((v, k) => dv.setFloat32(4 * k, v));
    f.setFromRaw(addressed(1, raw));
    expect(f.value).toEqual(new Float32Array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5]));
    expect(f.valueShape).toEqual([3, 2]);

    const u = new Item({ id: 2, name: "u", shape: [3], format: [["u", 12]] });
    u.setFromRaw(addressed(2, fromHex("abcdef1230")));
    expect(u.value).toEqual(Uint16Array.of(0xabc, 0xdef, 0x123)); // bit-packed numbers: typed arrays

    const m = new Item({ id: 3, name: "m", shape: [2], format: [["b", 1], ["i", 7], ["c", 8], ["f", 32]] });
    m.setFromRaw(addressed(3, fromHex("91793f800000696ebf800000")));
    expect(m.value).toEqual([[true, 17, "y", 1.0], [false, -23, "n", -1.0]]);
  });

  test("numpy Fortran order is transposed to C order", () => {
    const item = new Item({ id: 1, name: "f", shape: [2, 3], dtype: "<u2", order: "F" });
    item.setFromRaw(addressed(1, fromHex("06000a0007000b000800e02e")));
    expect(item.value).toEqual(new Uint16Array([6, 7, 8, 10, 11, 12000]));
    expect(item.valueIsView).toBe(false);
  });

  test("native-order arrays are views on the heap's memory unless copy is asked for", () => {
    const payload = new Uint8Array(new ArrayBuffer(64), 8, 16);
    payload.set([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]);
    const item = new Item({ id: 1, name: "v", shape: [4], dtype: `${nativeByteOrder}u4` });
    item.setFromRaw(addressed(1, payload));
    expect(item.valueIsView).toBe(true);
    expect((item.value as Uint32Array).buffer).toBe(payload.buffer);
    item.setFromRaw(addressed(1, payload), "=", { copy: true });
    expect(item.valueIsView).toBe(false);
    expect((item.value as Uint32Array).buffer === payload.buffer).toBe(false);
    item.value = new Uint32Array(4);
    expect(item.valueIsView).toBe(false);
  });

  test("too few bytes for the shape is malformed", () => {
    const item = new Item({ id: 1, name: "bad", shape: [5, 5], format: [["u", 32]] });
    expect(codeOf(() => item.setFromRaw(addressed(1, new Uint8Array(99))))).toBe("malformed");
    const bits = new Item({ id: 1, name: "bad", shape: [5], format: [["u", 12]] });
    expect(codeOf(() => bits.setFromRaw(addressed(1, new Uint8Array(7))))).toBe("malformed");
  });

  test("extra trailing bytes of an addressed item are ignored", () => {
    const item = new Item({ id: 1, name: "v", shape: [2], dtype: ">u2" });
    item.setFromRaw(addressed(1, fromHex("00010002ffff")));
    expect(item.value).toEqual(new Uint16Array([1, 2]));
  });

  test("a round trip through toBuffer for each send vector", () => {
    for (const v of sendVectors) {
      const sent = new Item(v.options);
      const received = new Item({ ...v.options, value: null });
      received.setFromRaw(addressed(1, sent.toBuffer()));
      const again = new Item({ ...v.options, value: received.value });
      expect(toHex(again.toBuffer())).toBe(v.hex);
    }
  });
});
