// The pure half of descriptor encoding (no native library needed).
import { describe, expect, test } from "bun:test";
import {
  asciiDecode,
  asciiEncode,
  DECODE_HEADER_WORDS,
  decodeCapacityWords,
  packDescriptorArgs,
  unpackDescriptorWords,
} from "../src/descriptor_raw.ts";
import { SpeadError } from "../src/errors.ts";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SpeadError ? err.code : `non-spead: ${String(err)}`;
  }
  return undefined;
}

/** Builds decode output words as docs/ABI.md lays them out. */
function words(opts: {
  id: number;
  format: Array<[string, number]>;
  shape: Array<[number, number]>;
  name: string;
  description: string;
  dtype: string | null;
  hab: number;
}): { out: BigUint64Array; used: number } {
  const fixed = DECODE_HEADER_WORDS + 2 * (opts.format.length + opts.shape.length);
  const strings = opts.name + opts.description + (opts.dtype ?? "");
  const used = fixed + Math.ceil(strings.length / 8);
  const out = new BigUint64Array(used + 3);
  const bytes = new Uint8Array(out.buffer);
  let off = fixed * 8;
  const put = (s: string): [bigint, bigint] => {
    const at = off;
    for (let k = 0; k < s.length; k++) bytes[off++] = s.charCodeAt(k);
    return [BigInt(at), BigInt(s.length)];
  };
  out[0] = BigInt(opts.id);
  out[1] = BigInt(opts.format.length);
  out[2] = BigInt(opts.shape.length);
  [out[3], out[4]] = put(opts.name);
  [out[5], out[6]] = put(opts.description);
  if (opts.dtype === null) {
    out[7] = 0n;
    out[8] = 0xffff_ffff_ffff_ffffn;
  } else {
    [out[7], out[8]] = put(opts.dtype);
  }
  out[9] = BigInt(opts.hab);
  let w = DECODE_HEADER_WORDS;
  for (const [c, b] of opts.format) {
    out[w++] = BigInt(c.charCodeAt(0));
    out[w++] = BigInt(b);
  }
  for (const [f, s] of opts.shape) {
    out[w++] = BigInt(f);
    out[w++] = BigInt(s);
  }
  return { out, used };
}

describe("packDescriptorArgs", () => {
  test("format, shape and header arrays", () => {
    const a = packDescriptorArgs({
      id: 0x1234,
      name: "mix",
      description: "",
      format: [["b", 1], ["i", 7], ["f", 32]],
      shape: [3, null],
      numpyHeader: null,
    });
    expect(a.idIn).toEqual(new BigUint64Array([0x1234n]));
    expect(Array.from(a.name.subarray(0, a.nameLen))).toEqual([0x6d, 0x69, 0x78]);
    expect(a.descriptionLen).toBe(0);
    expect(a.description.length).toBeGreaterThan(0); // never an empty (possibly null) pointer
    expect(a.nFormat).toBe(3);
    expect(Array.from(a.format)).toEqual([0x62n, 1n, 0x69n, 7n, 0x66n, 32n]);
    expect(a.nShape).toBe(2);
    expect(Array.from(a.shape)).toEqual([0n, 3n, 1n, 0n]);
    expect(a.dtypeLen).toBe(0);
  });

  test("numpy header and empty lists", () => {
    const header = "{'descr': '<u2', 'fortran_order': False, 'shape': ()}";
    const a = packDescriptorArgs({ id: 1, name: "x", description: "d", format: [], shape: [], numpyHeader: header });
    expect(a.nFormat).toBe(0);
    expect(a.nShape).toBe(0);
    expect(a.format.length).toBeGreaterThan(0);
    expect(a.dtypeLen).toBe(header.length);
    expect(new TextDecoder().decode(a.dtype.subarray(0, a.dtypeLen))).toBe(header);
  });

  test("non-ASCII names are rejected, as spead2 raises UnicodeEncodeError", () => {
    expect(codeOf(() => packDescriptorArgs({ id: 1, name: "\u0200", description: "", format: [["u", 8]], shape: [], numpyHeader: null })))
      .toBe("invalid_argument");
    expect(codeOf(() => packDescriptorArgs({ id: 1, name: "n", description: "\u0200", format: [["u", 8]], shape: [], numpyHeader: null })))
      .toBe("invalid_argument");
  });
});

describe("unpackDescriptorWords", () => {
  test("a format descriptor with a variable dimension", () => {
    const { out, used } = words({
      id: 0x1600,
      format: [["u", 40]],
      shape: [[0, 3], [1, 0]],
      name: "timestamp",
      description: "Index of the first sample",
      dtype: null,
      hab: 40,
    });
    const raw = unpackDescriptorWords(out, used);
    expect(raw.id).toBe(0x1600);
    expect(raw.name).toBe("timestamp");
    expect(raw.description).toBe("Index of the first sample");
    expect(raw.format).toEqual([["u", 40]]);
    expect(raw.shape).toEqual([3, null]);
    expect(raw.numpyHeader).toBeNull();
    expect(raw.heapAddressBits).toBe(40);
  });

  test("a numpy descriptor; the shape flag is tested by bit 0 only", () => {
    const header = "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}";
    const { out, used } = words({
      id: 0x2345,
      format: [],
      shape: [[0, 2], [2, 3]],
      name: "name",
      description: "description",
      dtype: header,
      hab: 48,
    });
    const raw = unpackDescriptorWords(out, used);
    expect(raw.format).toEqual([]);
    expect(raw.shape).toEqual([2, 3]);
    expect(raw.numpyHeader).toBe(header);
  });

  test("an empty numpy header is kept as empty (not absent)", () => {
    const { out, used } = words({ id: 1, format: [["u", 8]], shape: [], name: "a", description: "", dtype: "", hab: 40 });
    expect(unpackDescriptorWords(out, used).numpyHeader).toBe("");
  });

  test("inconsistent output is malformed", () => {
    const { out, used } = words({ id: 1, format: [["u", 8]], shape: [], name: "a", description: "", dtype: null, hab: 40 });
    expect(codeOf(() => unpackDescriptorWords(out, 3))).toBe("malformed");
    out[1] = 1000n;
    expect(codeOf(() => unpackDescriptorWords(out, used))).toBe("malformed");
  });

  test("non-ASCII names are malformed", () => {
    const { out, used } = words({ id: 1, format: [["u", 8]], shape: [], name: "\xef", description: "", dtype: null, hab: 40 });
    expect(codeOf(() => unpackDescriptorWords(out, used))).toBe("malformed");
  });
});

describe("helpers", () => {
  test("ascii", () => {
    expect(asciiDecode(new Uint8Array([0x41, 0x42]), "x")).toBe("AB");
    expect(asciiEncode("", "x").bytes.length).toBe(1);
    expect(asciiEncode("", "x").length).toBe(0);
  });

  test("decode capacity covers a descriptor of any size", () => {
    expect(decodeCapacityWords(118)).toBeGreaterThanOrEqual(DECODE_HEADER_WORDS + 118 / 2);
  });
});
