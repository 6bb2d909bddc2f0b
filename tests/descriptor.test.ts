// Descriptor encoding through the native core, checked against bytes produced by
// spead2 4.5.1 (send.Heap.add_descriptor + PacketGenerator, descriptor value sliced out).
import { describe, expect, test } from "bun:test";
import { Descriptor, type DescriptorOptions } from "../src/descriptor.ts";
import { Flavour } from "../src/flavour.ts";
import { SpeadError } from "../src/errors.ts";

const fromHex = (h: string) => new Uint8Array(h.match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

const vectors: Array<{ name: string; options: DescriptorOptions; flavour: Flavour; hex: string }> = [
  {
    name: "V5: numpy u16 (2, 3), SPEAD-64-48",
    options: { id: 0x2345, name: "name", description: "description", shape: [2, 3], dtype: "<u2" },
    flavour: new Flavour(4, 64, 48, 0),
    hex: "530402060000000a8001000000000001800200000000005680030000000000008004000000000056801400000000234500100000000000000011000000000004001300000000000f001200000000000f001500000000001d6e616d656465736372697074696f6e00000000000002000000000000037b276465736372273a20273c7532272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033297d",
  },
  {
    name: "V9: u40 timestamp, SPEAD-64-40",
    options: { id: 0x1600, name: "timestamp", description: "Index of the first sample", shape: [], format: [["u", 40]] },
    flavour: new Flavour(4, 64, 40, 0),
    hex: "530403050000000980000100000000018000020000000026800003000000000080000400000000268000140000001600000010000000000000001100000000090000130000000022000012000000002674696d657374616d70496e646578206f66207468652066697273742073616d706c6575000028",
  },
  {
    name: "variable-length c8 string, SPEAD-64-40",
    options: { id: 0x1234, name: "str", description: "a string", shape: [null], format: [["c", 8]] },
    flavour: new Flavour(4, 64, 40, 0),
    hex: "53040305000000098000010000000001800002000000001580000300000000008000040000000015800014000000123400001000000000000000110000000003000013000000000b000012000000000f7374726120737472696e6763000008010000000000",
  },
  {
    name: "mixed bit-packed format, variable dimension, SPEAD-64-48",
    options: { id: 0x1234, name: "mix", description: "", shape: [3, null], format: [["b", 1], ["i", 7], ["f", 32]] },
    flavour: new Flavour(4, 64, 48, 0),
    hex: "53040206000000098001000000000001800200000000001a8003000000000000800400000000001a8014000000001234001000000000000000110000000000030013000000000003001200000000000c6d69786200016900076600200000000000000301000000000000",
  },
  {
    name: "PySPEAD 0.5.2 bug compatibility (widths and shape bit)",
    options: { id: 0x1234, name: "var", description: "bug compat", shape: [null, 2], format: [["u", 16]] },
    flavour: new Flavour(4, 64, 40, 7),
    hex: "53040305000000098000010000000001800002000000002180000300000000008000040000000021800014000000123400001000000000000000110000000003000013000000000d000012000000001176617262756720636f6d7061747500001002000000000000000000000000000002",
  },
  {
    name: "SWAP_ENDIAN writes the opposite byte order in the header",
    options: { id: 0x1235, name: "swapped", description: "", shape: [2], dtype: "<f8" },
    flavour: new Flavour(4, 64, 40, 4),
    hex: "530403050000000a800001000000000180000200000000448000030000000000800004000000004480001400000012350000100000000000000011000000000700001300000000070000120000000007000015000000000d737761707065640000000000027b276465736372273a20273e6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c297d",
  },
  {
    name: "Fortran order, SPEAD-64-56",
    options: { id: 0x12, name: "f", description: "", shape: [2, 2], dtype: ">i4", order: "F" },
    flavour: new Flavour(4, 64, 56, 0),
    hex: "530401070000000a810000000000000182000000000000498300000000000000840000000000004994000000000000121000000000000000110000000000000113000000000000011200000000000001150000000000001166000000000000000200000000000000027b276465736372273a20273e6934272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028322c2032297d",
  },
];

describe("Descriptor.toRaw matches spead2 byte for byte", () => {
  for (const v of vectors) {
    test(v.name, () => {
      expect(toHex(new Descriptor(v.options).toRaw(v.flavour))).toBe(v.hex);
    });
  }

  test("V5 is the 174-byte embedded packet of docs/PROTOCOL.md §11", () => {
    expect(new Descriptor(vectors[0].options).toRaw(vectors[0].flavour).length).toBe(174);
  });

  test("V9 is 118 bytes", () => {
    expect(new Descriptor(vectors[1].options).toRaw(vectors[1].flavour).length).toBe(118);
  });

  test("non-ASCII names fail", () => {
    const d = new Descriptor({ id: 0x1000, name: "\u0200", shape: [], dtype: "<i4" });
    let code: string | undefined;
    try {
      d.toRaw();
    } catch (err) {
      code = (err as SpeadError).code;
    }
    expect(code).toBe("invalid_argument");
  });
});

describe("Descriptor.fromRaw", () => {
  for (const v of vectors) {
    test(`round trip: ${v.name}`, () => {
      const original = new Descriptor(v.options);
      const back = Descriptor.fromRaw(fromHex(v.hex), v.flavour);
      expect(back.sameAs(original)).toBe(true);
      expect(back.id).toBe(original.id);
      expect(back.name).toBe(original.name);
      expect(back.description).toBe(original.description);
      expect([...back.shape]).toEqual([...original.shape]);
      expect(back.order).toBe(original.order);
    });
  }

  test("SWAP_ENDIAN: the header says >f8, the descriptor is <f8 again", () => {
    const v = vectors[5];
    expect(Descriptor.fromRaw(fromHex(v.hex), v.flavour).dtype!.str).toBe("<f8");
    // Without the flag the header is taken as written.
    expect(Descriptor.fromRaw(fromHex(v.hex), new Flavour(4, 64, 40, 0)).dtype!.str).toBe(">f8");
  });

  test("garbage is malformed", () => {
    let err: unknown;
    try {
      Descriptor.fromRaw(new Uint8Array([1, 2, 3]), new Flavour());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpeadError);
    expect((err as SpeadError).code).toBe("malformed");
  });
});

describe("Descriptor.fromRawFields (spead2 from_raw rules)", () => {
  test("a numpy header overrides format and shape", () => {
    const d = Descriptor.fromRawFields({
      id: 0x1234,
      name: "n",
      description: "d",
      format: [["u", 8]],
      shape: [7],
      numpyHeader: "{'shape': (2, 3), 'fortran_order': True, 'descr': '>i2'}",
    });
    expect(d.dtype!.str).toBe(">i2");
    expect(d.format).toBeNull();
    expect([...d.shape]).toEqual([2, 3]);
    expect(d.order).toBe("F");
  });

  test("an empty numpy header is ignored", () => {
    const d = Descriptor.fromRawFields({ id: 1, name: "n", description: "", format: [["u", 8]], shape: [null], numpyHeader: "" });
    expect(d.dtype).toBeNull();
    expect(d.format).toEqual([["u", 8]]);
    expect([...d.shape]).toEqual([null]);
  });

  test("bad headers are malformed", () => {
    let code: string | undefined;
    try {
      Descriptor.fromRawFields({ id: 1, name: "n", description: "", format: [], shape: [], numpyHeader: "import os" });
    } catch (err) {
      code = (err as SpeadError).code;
    }
    expect(code).toBe("malformed");
  });

  test("toRawFields: numpy descriptors send the shape and an empty format", () => {
    const raw = new Descriptor({ id: 1, name: "n", shape: [4], dtype: "|u1" }).toRawFields(new Flavour());
    expect(raw.format).toEqual([]);
    expect([...raw.shape]).toEqual([4]);
    expect(raw.numpyHeader).toBe("{'descr': '|u1', 'fortran_order': False, 'shape': (4,)}");
  });
});
