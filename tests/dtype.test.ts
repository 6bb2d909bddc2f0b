import { describe, expect, test } from "bun:test";
import {
  Codec,
  decode,
  DType,
  encode,
  formatNumpyHeader,
  formatToDType,
  immediateBytes,
  immediateInteger,
  immediateTail,
  inferShape,
  MAX_ARRAY_ELEMENTS,
  type ItemValue,
  nativeByteOrder,
  parseNumpyHeader,
} from "../src/dtype/mod.ts";
import { SpeadError } from "../src/errors.ts";

const hex = (s: string) => new Uint8Array(s.split(/\s+/).filter(Boolean).map((h) => parseInt(h, 16)));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SpeadError ? err.code : `non-spead: ${String(err)}`;
  }
  return undefined;
}

describe("legacy formats (spead2 _parse_format)", () => {
  test("whole numpy types map to big-endian dtypes", () => {
    expect(formatToDType([["u", 8]])!.str).toBe("|u1");
    expect(formatToDType([["i", 16]])!.str).toBe(">i2");
    expect(formatToDType([["u", 32]])!.str).toBe(">u4");
    expect(formatToDType([["i", 64]])!.str).toBe(">i8");
    expect(formatToDType([["f", 32]])!.str).toBe(">f4");
    expect(formatToDType([["f", 64]])!.str).toBe(">f8");
    expect(formatToDType([["b", 8]])!.str).toBe("|b1");
    expect(formatToDType([["c", 8]])!.str).toBe("|S1");
  });

  test("several fields become a record with fields f0, f1, ...", () => {
    const d = formatToDType([["f", 32], ["i", 8]])!;
    expect(d.kind).toBe("struct");
    expect(d.itemsize).toBe(5);
    expect(d.descr).toEqual([["f0", ">f4"], ["f1", "|i1"]]);
  });

  test("odd widths take the bit-packed path", () => {
    expect(formatToDType([["u", 12]])).toBeNull();
    expect(formatToDType([["i", 48]])).toBeNull();
    expect(formatToDType([["b", 1], ["i", 7], ["c", 8], ["f", 32]])).toBeNull();
    expect(Codec.forFormat([["u", 12]]).bitPacked).toBe(true);
    expect(Codec.forFormat([["u", 12]]).itemsizeBits).toBe(12);
  });

  test("illegal formats are rejected", () => {
    expect(codeOf(() => formatToDType([]))).toBe("invalid_argument");
    expect(codeOf(() => formatToDType([["u", 0]]))).toBe("invalid_argument");
    expect(codeOf(() => formatToDType([["u", -8]]))).toBe("invalid_argument");
    expect(codeOf(() => formatToDType([["f", 16]]))).toBe("invalid_argument");
    expect(codeOf(() => formatToDType([["c", 16]]))).toBe("invalid_argument");
    expect(codeOf(() => formatToDType([["0", 8]]))).toBe("invalid_argument");
    expect(codeOf(() => formatToDType([["x", 8]]))).toBe("invalid_argument");
  });
});

describe("DType", () => {
  test("numpy type strings", () => {
    expect(DType.from("<u2").str).toBe("<u2");
    expect(DType.from(">f8").str).toBe(">f8");
    expect(DType.from("|i1").str).toBe("|i1");
    expect(DType.from("i1").str).toBe("|i1");
    expect(DType.from("<u1").str).toBe("|u1");
    expect(DType.from("?").str).toBe("|b1");
    expect(DType.from("|b1").str).toBe("|b1");
    expect(DType.from("<c8").str).toBe("<c8");
    expect(DType.from(">c16").str).toBe(">c16");
    expect(DType.from("S1").str).toBe("|S1");
    expect(DType.from("|S5").str).toBe("|S5");
    expect(DType.from("<i8").str).toBe("<i8");
    expect(DType.from("!u4").str).toBe(">u4");
    expect(DType.from("uint16").str).toBe(`${nativeByteOrder}u2`);
    expect(DType.from("=f4").str).toBe(`${nativeByteOrder}f4`);
    expect(DType.from("d").str).toBe(`${nativeByteOrder}f8`);
    expect(DType.from("B").str).toBe("|u1");
    expect(DType.from("float32").itemsize).toBe(4);
    expect(DType.from("complex64").kind).toBe("c");
  });

  test("record dtypes from descr lists and comma strings", () => {
    const d = DType.from([["a", "<u2"], ["b", ">f4"]]);
    expect(d.itemsize).toBe(6);
    expect(d.fields!.map((f) => [f.name, f.offset, f.dtype.str])).toEqual([["a", 0, "<u2"], ["b", 2, ">f4"]]);
    expect(d.descr).toEqual([["a", "<u2"], ["b", ">f4"]]);
    expect(d.str).toBe("|V6");
    const padded = DType.from([["a", "|u1"], ["", "|V3"], ["b", "<u4"]]);
    expect(padded.itemsize).toBe(8);
    expect(padded.fields!.length).toBe(2);
    expect(padded.descr).toEqual([["a", "|u1"], ["", "|V3"], ["b", "<u4"]]);
    expect(DType.from(">f4,i1").descr).toEqual([["f0", ">f4"], ["f1", "|i1"]]);
  });

  test("bad dtypes", () => {
    expect(codeOf(() => DType.from("+-"))).toBe("invalid_argument");
    expect(codeOf(() => DType.from("<f2"))).toBe("invalid_argument");
    expect(codeOf(() => DType.from("<u3"))).toBe("invalid_argument");
    expect(codeOf(() => DType.from("U5"))).toBe("invalid_argument");
    expect(codeOf(() => DType.from([["a", "<u2", [3]]] as never))).toBe("invalid_argument");
  });

  test("equality, byte order and alignment", () => {
    expect(DType.from("<u2").equals(DType.from(nativeByteOrder === "<" ? "=u2" : "<u2"))).toBe(true);
    expect(DType.from("<u2").equals(DType.from(">u2"))).toBe(false);
    expect(DType.from(">u1").equals(DType.from("|u1"))).toBe(true);
    expect(DType.from("<u2").newByteOrder().str).toBe(">u2");
    expect(DType.from(">f8").newByteOrder().str).toBe("<f8");
    expect(DType.from("|i1").newByteOrder().str).toBe("|i1");
    expect(DType.from([["a", "<u2"], ["b", ">f4"]]).newByteOrder().descr).toEqual([["a", ">u2"], ["b", "<f4"]]);
    expect(DType.from("<c16").alignment).toBe(8);
    expect(DType.from("<c8").alignment).toBe(4);
    expect(DType.from("<u2").alignment).toBe(2);
    expect(DType.from("S3").alignment).toBe(1);
  });
});

describe("numpy header", () => {
  test("formats exactly like Python repr of the dict", () => {
    expect(formatNumpyHeader(DType.from("<u2"), [2, 3], "C")).toBe(
      "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}",
    );
    expect(formatNumpyHeader(DType.from("|i1"), [1048576], "C")).toBe(
      "{'descr': '|i1', 'fortran_order': False, 'shape': (1048576,)}",
    );
    expect(formatNumpyHeader(DType.from(">f8"), [], "C")).toBe(
      "{'descr': '>f8', 'fortran_order': False, 'shape': ()}",
    );
    expect(formatNumpyHeader(DType.from("<f8"), [2, 2], "F")).toBe(
      "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2)}",
    );
    expect(formatNumpyHeader(DType.from([["a", "<u2"], ["b", ">f4"]]), [2], "C")).toBe(
      "{'descr': [('a', '<u2'), ('b', '>f4')], 'fortran_order': False, 'shape': (2,)}",
    );
    expect(formatNumpyHeader(DType.from([["it's", "<u2"]]), [1], "C")).toBe(
      `{'descr': [("it's", '<u2')], 'fortran_order': False, 'shape': (1,)}`,
    );
  });

  test("the V5 header is 57 bytes", () => {
    expect(formatNumpyHeader(DType.from("<u2"), [2, 3], "C").length).toBe(57);
  });

  test("parses spead2's and the C++ tutorial's key orders", () => {
    const a = parseNumpyHeader("{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}");
    expect(a.dtype.str).toBe("<u2");
    expect(a.shape).toEqual([2, 3]);
    expect(a.order).toBe("C");
    const b = parseNumpyHeader("{'shape': (1048576,), 'fortran_order': False, 'descr': 'i1'}");
    expect(b.dtype.str).toBe("|i1");
    expect(b.shape).toEqual([1048576]);
    const c = parseNumpyHeader(`{"descr": ">f8", "fortran_order": True, "shape": (),}`);
    expect(c.dtype.str).toBe(">f8");
    expect(c.shape).toEqual([]);
    expect(c.order).toBe("F");
    const d = parseNumpyHeader("{'descr': [('a', '<u2'), ('b', '>f4')], 'fortran_order': False, 'shape': (2,)}  ");
    expect(d.dtype.descr).toEqual([["a", "<u2"], ["b", ">f4"]]);
  });

  test("round trips its own output", () => {
    for (const descr of ["<u2", ">i8", "|b1", "<c8", "|S5", "<f4"]) {
      const text = formatNumpyHeader(DType.from(descr), [3, 1], "F");
      const h = parseNumpyHeader(text);
      expect(h.dtype.str).toBe(descr);
      expect(h.shape).toEqual([3, 1]);
      expect(h.order).toBe("F");
    }
  });

  test("rejects malformed headers as spead2 does", () => {
    const bad = [
      "{'descr': 'S1'",
      "123",
      "import os",
      "{'descr': 'S1'}",
      "{'descr': 'S1', 'fortran_order': False, 'shape': (), 'foo': 'bar'}",
      "{'descr': 'S1', 'fortran_order': False, 'shape': (-1,)}",
      "{'descr': 1, 'fortran_order': False, 'shape': ()}",
      "{'descr': '+-', 'fortran_order': False, 'shape': ()}",
      "{'descr': 'S1', 'fortran_order': 0, 'shape': ()}",
      "{'descr': 'S1', 'fortran_order': False, 'shape': (None,)}",
      "{'descr': 'S1', 'fortran_order': False, 'shape': [1]}",
      "{'descr': 'S1', 'fortran_order': False, 'shape': (1)}",
      "{'descr': 'S0', 'fortran_order': False, 'shape': ()}",
    ];
    for (const text of bad) expect(codeOf(() => parseNumpyHeader(text))).toBe("malformed");
  });

  test("deep nesting is malformed, not a stack overflow (found by tests/fuzz/fuzz.ts)", () => {
    for (const [open, close] of [["(", ")"], ["[", "]"], ["{", "}"]]) {
      for (const depth of [250, 100_000]) {
        const text = `{'descr': '<u2', 'fortran_order': False, 'shape': ${open.repeat(depth)}${close.repeat(depth)}}`;
        expect(codeOf(() => parseNumpyHeader(text))).toBe("malformed");
      }
    }
    // Nesting that Python accepts still parses (to a bad shape here, but no depth error).
    const fine = `{'descr': '<u2', 'fortran_order': False, 'shape': ${"(".repeat(150)}2,${")".repeat(150)}}`;
    expect(() => parseNumpyHeader(fine)).not.toThrow();
  });
});

describe("spead2 receive vectors (V8)", () => {
  const bytes = hex("ab cd ef 12 30");

  test("u12", () => {
    expect(decode(bytes, [3], [["u", 12]]).value).toEqual(Uint16Array.of(0xabc, 0xdef, 0x123));
  });

  test("i12", () => {
    expect(decode(bytes, [3], [["i", 12]]).value).toEqual(Int16Array.of(-1348, -529, 291));
  });

  test("mixed bit-packed record", () => {
    const raw = hex("91 79 3f 80 00 00 69 6e bf 80 00 00");
    const format = [["b", 1], ["i", 7], ["c", 8], ["f", 32]] as const;
    expect(decode(raw, [2], format).value).toEqual([[true, 17, "y", 1.0], [false, -23, "n", -1.0]]);
    expect(encode([[true, 17, "y", 1.0], [false, -23, "n", -1.0]], [2], format)).toEqual(raw);
  });

  test("i48 immediate", () => {
    expect(immediateInteger(0x9234567890abn, 48, true)).toBe(-0x6dcba9876f55);
    expect(immediateInteger(0x9234567890abn, 48, false)).toBe(0x9234567890ab);
    expect(immediateInteger(0x1234567890abn, 48, true)).toBe(0x1234567890ab);
    expect(immediateInteger(0xffffffffffffffn, 56, true)).toBe(-1n);
    // The bit-packed path agrees with the immediate path.
    expect(decode(hex("92 34 56 78 90 ab"), [], [["i", 48]]).value).toBe(-0x6dcba9876f55);
    expect(decode(hex("12 34 56 78 90 ab"), [], [["u", 48]]).value).toBe(0x1234567890ab);
  });

  test("u12 encodes MSB-first with zero padding at the end", () => {
    expect(encode([0xabc, 0xdef, 0x123], [3], [["u", 12]])).toEqual(bytes);
    expect(encode([-1348, -529, 291], [3], [["i", 12]])).toEqual(bytes);
  });
});

describe("spead2 scalar decodes (test_recv TestDecode)", () => {
  test("scalar int", () => {
    expect(decode(hex("f8 a4 32 eb"), [], [["i", 32]]).value).toBe(-123456789);
  });

  test("array of floats", () => {
    const raw = new Uint8Array(24);
    const dv = new DataView(raw.buffer);
    [1.5, 2.5, 3.5, 4.5, 5.5, 6.5].forEach((v, k) => dv.setFloat32(4 * k, v));
    const d = decode(raw, [3, 2], [["f", 32]]);
    expect(d.value).toEqual(new Float32Array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5]));
    expect(d.shape).toEqual([3, 2]);
  });

  test("array of records", () => {
    const raw = new Uint8Array(15);
    const dv = new DataView(raw.buffer);
    [[1.5, 1], [2.5, 2], [4.5, -4]].forEach(([f, i], k) => {
      dv.setFloat32(5 * k, f);
      dv.setInt8(5 * k + 4, i);
    });
    expect(decode(raw, [3], [["f", 32], ["i", 8]]).value).toEqual([[1.5, 1], [2.5, 2], [4.5, -4]]);
  });

  test("string", () => {
    expect(decode(new TextEncoder().encode("Hello world"), [11], [["c", 8]]).value).toBe("Hello world");
  });

  test("fallback scalar u48", () => {
    expect(decode(hex("12 34 56 78 90 ab"), [], [["u", 48]]).value).toBe(0x1234567890ab);
  });
});

// Independent reference writer for the round-trip matrix.
function refBytes(descr: string, values: number[], shape: number[], order: "C" | "F"): Uint8Array {
  const d = DType.from(descr);
  const little = d.byteOrder === "<";
  const n = values.length / d.lanes;
  const perm: number[] = [];
  if (order === "C") for (let k = 0; k < n; k++) perm.push(k);
  else {
    const [r, c] = shape;
    for (let j = 0; j < c; j++) for (let i = 0; i < r; i++) perm.push(i * c + j);
  }
  const out = new Uint8Array(n * d.itemsize);
  const dv = new DataView(out.buffer);
  const lane = d.itemsize / d.lanes;
  perm.forEach((src, pos) => {
    for (let l = 0; l < d.lanes; l++) {
      const v = values[src * d.lanes + l];
      const off = pos * d.itemsize + l * lane;
      const key = `${d.kind}${lane}`;
      switch (key) {
        case "u1":
        case "b1":
          dv.setUint8(off, v);
          break;
        case "i1":
          dv.setInt8(off, v);
          break;
        case "u2":
          dv.setUint16(off, v, little);
          break;
        case "i2":
          dv.setInt16(off, v, little);
          break;
        case "u4":
          dv.setUint32(off, v, little);
          break;
        case "i4":
          dv.setInt32(off, v, little);
          break;
        case "u8":
          dv.setBigUint64(off, BigInt(v), little);
          break;
        case "i8":
          dv.setBigInt64(off, BigInt(v), little);
          break;
        case "f4":
        case "c4":
          dv.setFloat32(off, v, little);
          break;
        default:
          dv.setFloat64(off, v, little);
      }
    }
  });
  return out;
}

describe("round trips for every numeric dtype, both byte orders, C and Fortran order", () => {
  const samples: Record<string, number[]> = {
    u1: [0, 1, 2, 127, 200, 255],
    i1: [0, -1, 2, 127, -128, 5],
    b1: [1, 0, 1, 1, 0, 0],
    u2: [0, 1, 0x1234, 0x7fff, 0x8000, 0xffff],
    i2: [0, -1, 0x1234, 0x7fff, -0x8000, -2],
    u4: [0, 1, 0x12345678, 0x7fffffff, 0x80000000, 0xffffffff],
    i4: [0, -1, 0x12345678, 0x7fffffff, -0x80000000, -2],
    u8: [0, 1, 0x123456789, 2 ** 40, 2 ** 52, 7],
    i8: [0, -1, -0x123456789, 2 ** 40, -(2 ** 52), 7],
    f4: [0, 1.5, -2.25, 1e10, -3.5, 0.125],
    f8: [0, 1.5, -2.25, 1e100, Math.PI, -0.125],
    c8: [0, 1, 1.5, -2.5, 3, 4, -5, 6, 7.5, 8, 9, -10],
    c16: [0, 1, 1.5, -2.5, Math.PI, 4, -5, 6, 7.5, 8, 9, -10],
  };
  for (const [type, values] of Object.entries(samples)) {
    for (const bo of type.endsWith("1") && type !== "c16" ? ["|"] : ["<", ">"]) {
      for (const order of ["C", "F"] as const) {
        const descr = `${bo}${type}`;
        test(`${descr} ${order}`, () => {
          const d = DType.from(descr);
          const shape = [2, 3];
          const Ctor = d.arrayConstructor!;
          const big = d.itemsize === 8 && (d.kind === "u" || d.kind === "i");
          const input = big
            ? new (Ctor as BigInt64ArrayConstructor)(values.map((v) => BigInt(v)))
            : new (Ctor as Float64ArrayConstructor)(values);
          const wire = encode(input as ItemValue, shape, d, order);
          expect(wire).toEqual(refBytes(descr, values, shape, order));
          const back = decode(wire, shape, d, order);
          expect(back.value).toEqual(input);
          expect(back.shape).toEqual(shape);
          // Plain arrays and nested arrays encode to the same bytes.
          const plain = big ? values.map((v) => BigInt(v)) : values;
          if (d.lanes === 1) {
            expect(encode(plain, shape, d, order)).toEqual(wire);
            const nested = [plain.slice(0, 3), plain.slice(3)];
            expect(encode(nested, shape, d, order)).toEqual(wire);
          }
        });
      }
    }
  }

  test("scalars", () => {
    expect(decode(encode(0x1234, [], "<u2"), [], "<u2").value).toBe(0x1234);
    expect(decode(encode(-5n, [], ">i8"), [], ">i8").value).toBe(-5n);
    expect(decode(encode(7, [], "<u8"), [], "<u8").value).toBe(7n);
    expect(decode(encode(true, [], "?"), [], "?").value).toBe(true);
    expect(decode(encode(2.5, [], ">f8"), [], ">f8").value).toBe(2.5);
    expect(decode(encode({ re: 1.5, im: -2 }, [], "<c8"), [], "<c8").value).toEqual({ re: 1.5, im: -2 });
    expect(encode(0x1234, [], ">u2")).toEqual(hex("12 34"));
    expect(encode(0x7654, [], [["u", 16]])).toEqual(hex("76 54"));
  });

  test("out-of-range and non-integer values are rejected", () => {
    expect(codeOf(() => encode(256, [], "|u1"))).toBe("invalid_argument");
    expect(codeOf(() => encode(-1, [], "<u4"))).toBe("invalid_argument");
    expect(codeOf(() => encode(1.5, [], "<i4"))).toBe("invalid_argument");
    expect(codeOf(() => encode(2n ** 64n, [], "<u8"))).toBe("invalid_argument");
    expect(codeOf(() => encode([1, 2, 3], [2], "<u2"))).toBe("invalid_argument");
    expect(codeOf(() => encode(8, [], [["u", 3]]))).toBe("invalid_argument");
    expect(codeOf(() => encode(-65, [], [["i", 7]]))).toBe("invalid_argument");
  });
});

describe("zero-copy decode", () => {
  test("native order, aligned, C order gives a view", () => {
    const buf = new ArrayBuffer(16);
    const bytes = new Uint8Array(buf, 4, 12);
    const wire = encode(new Uint16Array([1, 2, 3, 4, 5, 6]), [6], `${nativeByteOrder}u2`);
    bytes.set(wire);
    const d = decode(bytes, [6], `${nativeByteOrder}u2`);
    expect(d.zeroCopy).toBe(true);
    const view = d.value as Uint16Array;
    expect(view.buffer).toBe(buf);
    expect(view.byteOffset).toBe(4);
    bytes[0] = 9;
    bytes[1] = 0;
    expect(view[0]).toBe(9);
  });

  test("complex and 8-byte types view too", () => {
    const d = decode(new Uint8Array(32), [2], `${nativeByteOrder}c16`);
    expect(d.zeroCopy).toBe(true);
    expect(d.value).toBeInstanceOf(Float64Array);
    expect((d.value as Float64Array).length).toBe(4);
    expect(decode(new Uint8Array(16), [2], `${nativeByteOrder}i8`).zeroCopy).toBe(true);
    expect(decode(new Uint8Array(16), [16], "|u1").zeroCopy).toBe(true);
  });

  test("misaligned, foreign order, Fortran order or copy:true make a copy", () => {
    const buf = new Uint8Array(20);
    const foreign = nativeByteOrder === "<" ? ">" : "<";
    expect(decode(buf.subarray(1), [4], `${nativeByteOrder}u2`).zeroCopy).toBe(false);
    expect(decode(buf, [4], `${foreign}u2`).zeroCopy).toBe(false);
    expect(decode(buf, [2, 2], `${nativeByteOrder}u2`, "F").zeroCopy).toBe(false);
    expect(decode(buf, [4], `${nativeByteOrder}u2`, "C", { copy: true }).zeroCopy).toBe(false);
    const odd = decode(hex("ff 01 00 02 00").subarray(1), [2], `${nativeByteOrder}u2`);
    expect(odd.zeroCopy).toBe(false);
    expect(odd.value).toEqual(nativeByteOrder === "<" ? new Uint16Array([1, 2]) : new Uint16Array([0x100, 0x200]));
  });

  test("Fortran order with one non-unit dimension is still a view", () => {
    expect(decode(new Uint8Array(10), [1, 5], `${nativeByteOrder}u2`, "F").zeroCopy).toBe(true);
  });

  test("scalars are never views", () => {
    expect(decode(new Uint8Array(4), [], `${nativeByteOrder}u4`).zeroCopy).toBe(false);
  });

  test("encode of a matching native typed array aliases its memory", () => {
    const value = new Float32Array([1, 2, 3]);
    const c = Codec.forDType(`${nativeByteOrder}f4`).encode(value, [3]);
    expect(c.zeroCopy).toBe(true);
    expect(c.bytes.buffer).toBe(value.buffer);
    const foreign = nativeByteOrder === "<" ? ">f4" : "<f4";
    expect(Codec.forDType(foreign).encode(value, [3]).zeroCopy).toBe(false);
  });
});

describe("bug_compat SWAP_ENDIAN", () => {
  test("decoding with the swapped dtype reads the opposite endianness", () => {
    const expected = new Float64Array([1.25, 1.75, 2.25, 2.5]);
    const declared = DType.from("<f8"); // what the header says
    const wire = encode(expected, [2, 2], declared.newByteOrder()); // the sender byte-swaps
    expect(wire).toEqual(refBytes(">f8", Array.from(expected), [2, 2], "C"));
    expect(decode(wire, [2, 2], declared.newByteOrder()).value).toEqual(expected);
  });
});

describe("strings", () => {
  test("1-D c8 and S1 are strings; NULs vanish", () => {
    expect(encode("Hello", [null], [["c", 8]])).toEqual(new TextEncoder().encode("Hello"));
    expect(decode(hex("41 00 42"), [3], [["c", 8]]).value).toBe("AB");
    expect(decode(hex("41 42"), [2], "S1").value).toBe("AB");
    expect(encode(new Uint8Array([1, 2]), [2], "S1")).toEqual(hex("01 02"));
  });

  test("non-ASCII is an error both ways", () => {
    expect(codeOf(() => encode("\u0200", [null], [["c", 8]]))).toBe("invalid_argument");
    expect(codeOf(() => encode("\u0201", [], "S5"))).toBe("invalid_argument");
    expect(codeOf(() => decode(hex("c8 80"), [2], [["c", 8]]))).toBe("malformed");
  });

  test("S5 scalars pad, truncate and strip like numpy", () => {
    expect(encode("abc", [], "S5")).toEqual(hex("61 62 63 00 00"));
    expect(encode("abcdefg", [], "S5")).toEqual(hex("61 62 63 64 65"));
    expect(decode(hex("61 62 63 00 00"), [], "S5").value).toBe("abc");
    expect(decode(hex("61 00 62 63 64 00"), [2], "|S3")).toEqual({ value: ["a\0b", "cd"], shape: [2], zeroCopy: false });
  });

  test("2-D S1 is a string array", () => {
    expect(decode(hex("61 62 63 64"), [2, 2], "S1").value).toEqual(["a", "b", "c", "d"]);
  });

  test("fixed-length strings must match the shape", () => {
    expect(codeOf(() => encode("abc", [2], [["c", 8]]))).toBe("invalid_argument");
    expect(inferShape("abc", [null], [["c", 8]])).toEqual([3]);
  });
});

describe("numpy records", () => {
  const rec = DType.from([["a", "<u2"], ["b", ">f4"]]);

  test("encode and decode tuples", () => {
    const wire = encode([[1, 2.5], [0x1234, -1]], [2], rec);
    expect(wire).toEqual(hex("01 00 40 20 00 00 34 12 bf 80 00 00"));
    expect(decode(wire, [2], rec).value).toEqual([[1, 2.5], [0x1234, -1]]);
  });

  test("records may be given as objects", () => {
    expect(encode([{ a: 1, b: 2.5 }, { a: 0x1234, b: -1 }], [2], rec)).toEqual(
      encode([[1, 2.5], [0x1234, -1]], [2], rec),
    );
  });

  test("scalar record and Fortran order", () => {
    expect(decode(encode([7, 0.5], [], rec), [], rec).value).toEqual([7, 0.5]);
    const values = [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6]];
    const wire = encode(values, [2, 3], rec, "F");
    expect(decode(wire, [2, 3], rec, "F").value).toEqual(values);
    expect(decode(wire, [6], rec).value).toEqual([[1, 1], [4, 4], [2, 2], [5, 5], [3, 3], [6, 6]]);
  });
});

describe("bit-packed formats", () => {
  test("u3", () => {
    const wire = encode([1, 2, 3, 4, 5], [5], [["u", 3]]);
    expect(wire).toEqual(hex("29 ca")); // 001 010 011 100 101, then one 0 bit of padding
    expect(decode(wire, [5], [["u", 3]]).value).toEqual(Uint8Array.of(1, 2, 3, 4, 5));
  });

  test("b1 arrays decode to a Uint8Array of 0/1 (scalars are booleans); both encode", () => {
    const wire = encode([true, false, true, true, false, false, false, true, true], [9], [["b", 1]]);
    expect(wire).toEqual(hex("b1 80"));
    const bits = Uint8Array.of(1, 0, 1, 1, 0, 0, 0, 1, 1);
    expect(decode(wire, [9], [["b", 1]]).value).toEqual(bits);
    expect(encode(bits, [9], [["b", 1]])).toEqual(wire);
    expect(decode(hex("80"), [], [["b", 1]]).value).toBe(true);
  });

  test("wide fields use bigint past 53 bits", () => {
    const big = (1n << 62n) + 12345n;
    const wire = encode([big, -1n], [], [["u", 63], ["i", 60]]);
    expect(wire.length).toBe(16);
    expect(decode(wire, [], [["u", 63], ["i", 60]]).value).toEqual([big, -1n]);
    expect(decode(encode([big, 5n], [2], [["u", 63]]), [2], [["u", 63]]).value).toEqual(BigUint64Array.of(big, 5n));
    expect(decode(encode(2 ** 53 - 1, [], [["u", 53]]), [], [["u", 53]]).value).toBe(2 ** 53 - 1);
  });

  test("multi-dimensional and variable shapes", () => {
    const values = [1, 2, 3, 4, 5, 6];
    const wire = encode(values, [2, null], [["u", 4]]);
    expect(wire).toEqual(hex("12 34 56"));
    expect(encode([[1, 2, 3], [4, 5, 6]], [2, 3], [["u", 4]])).toEqual(wire);
    expect(decode(wire, [2, 3], [["u", 4]]).value).toEqual(Uint8Array.from(values));
  });

  test("single-field formats decode to the narrowest typed array that holds them, and round-trip", () => {
    const cases: Array<[[string, number], ArrayLike<number | bigint>, string]> = [
      [["u", 5], [0, 31, 7], "Uint8Array"],
      [["u", 9], [0, 511, 256], "Uint16Array"],
      [["u", 31], [0, 2 ** 31 - 1, 5], "Uint32Array"],
      [["u", 40], [0, 2 ** 40 - 1, 5], "Float64Array"],
      [["i", 7], [-64, 63, -1], "Int8Array"],
      [["i", 13], [-4096, 4095, -1], "Int16Array"],
      [["i", 30], [-(2 ** 29), 2 ** 29 - 1, -1], "Int32Array"],
      [["i", 53], [-(2 ** 52), 2 ** 52 - 1, -1], "Float64Array"],
      [["i", 60], [-(1n << 59n), (1n << 59n) - 1n, -1n], "BigInt64Array"],
    ];
    for (const [field, values, kind] of cases) {
      const format = [field] as const;
      const wire = encode(Array.from(values) as never, [values.length], format);
      const value = decode(wire, [values.length], format).value as ArrayLike<number | bigint>;
      expect(value.constructor.name).toBe(kind);
      expect(Array.from(value)).toEqual(Array.from(values));
      expect(encode(value as never, [values.length], format)).toEqual(wire);
    }
  });

  test("decoded values are bounded by the bytes: a 1 MB u1 payload is an 8 M-element Uint8Array", () => {
    const bytes = new Uint8Array(1 << 20).fill(0xa5);
    for (const code of ["u", "b"]) {
      const value = decode(bytes, [bytes.length * 8], [[code, 1]]).value as Uint8Array;
      expect(value).toBeInstanceOf(Uint8Array);
      expect(value.length).toBe(8 << 20);
      expect(Array.from(value.subarray(0, 8))).toEqual([1, 0, 1, 0, 0, 1, 0, 1]);
    }
    const nibbles = decode(hex("a5 3c"), [3], [["u", 4]]).value; // also the byte-unpacking path
    expect(nibbles).toEqual(Uint8Array.of(0xa, 0x5, 0x3));
    expect(decode(hex("e4"), [4], [["u", 2]]).value).toEqual(Uint8Array.of(3, 2, 1, 0));
  });

  test(`values that would be JS arrays of more than MAX_ARRAY_ELEMENTS (${MAX_ARRAY_ELEMENTS}) are refused`, () => {
    const n = MAX_ARRAY_ELEMENTS + 1;
    const record = [["u", 4], ["u", 4]] as const; // one byte per element, decoded as [a, b] pairs
    expect(codeOf(() => decode(new Uint8Array(n), [n], record))).toBe("capacity_exceeded");
    expect(codeOf(() => decode(new Uint8Array(2 * n), [n], "S2"))).toBe("capacity_exceeded");
    expect((decode(new Uint8Array(16), [16], record).value as unknown[]).length).toBe(16);
  });
});

describe("shapes", () => {
  test("a variable dimension is inferred", () => {
    expect(inferShape(new Uint8Array(12), [null, 4], "|u1")).toEqual([3, 4]);
    expect(inferShape([1, 2, 3, 4], [2, null], "<u2")).toEqual([2, 2]);
    expect(inferShape([[1, 2], [3, 4], [5, 6]], [null, 2], "<u2")).toEqual([3, 2]);
    expect(codeOf(() => inferShape([1, 2, 3], [2, null], "<u2"))).toBe("invalid_argument");
  });

  test("too few bytes is malformed", () => {
    expect(codeOf(() => decode(new Uint8Array(3), [2], "<u2"))).toBe("malformed");
    expect(codeOf(() => decode(new Uint8Array(1), [3], [["u", 4]]))).toBe("malformed");
  });

  test("extra bytes are ignored", () => {
    expect(decode(hex("01 00 02 00 ff"), [2], "<u2").value).toEqual(new Uint16Array([1, 2]));
  });
});

describe("immediates", () => {
  test("values are taken from the trailing bytes", () => {
    const field = immediateBytes(0x7654n, 6);
    expect(field).toEqual(hex("00 00 00 00 76 54"));
    expect(immediateTail(field, 2)).toEqual(hex("76 54"));
    expect(decode(immediateTail(field, 2), [], ">u2").value).toBe(0x7654);
    expect(codeOf(() => immediateTail(field, 7))).toBe("malformed");
  });
});

describe("Codec fast paths of encodeBytes (the send path's per-heap encode)", () => {
  test("a typed array of the dtype's own kind is its own bytes: one view per array, the general path's bytes", () => {
    const cases: Array<[string, Int8Array | Uint16Array | Float64Array | Float32Array, Array<number | null>]> = [
      ["i1", new Int8Array([1, -2, 3]), [3]],
      ["u2", new Uint16Array([1, 500, 65535]), [null]],
      ["<f8", new Float64Array([0.5, -1]), [2]],
      ["c8", new Float32Array([1, 2, 3, 4]), [2]], // complex: (re, im) lanes
    ];
    for (const [dt, value, shape] of cases) {
      const codec = Codec.for(dt);
      const fast = codec.zeroCopyBytes(value, shape);
      expect(fast).not.toBeNull();
      expect(fast!.buffer).toBe(value.buffer); // no copy
      expect(codec.zeroCopyBytes(value, shape)).toBe(fast); // the same view again
      expect(Array.from(codec.encodeBytes(value, shape))).toEqual(Array.from(codec.encode(value, shape).bytes));
    }
    // Not the fast path: another typed array kind, a shape that does not fit, 2-D, a plain array.
    const i1 = Codec.for("i1");
    expect(i1.zeroCopyBytes(new Uint8Array(3), [3])).toBeNull();
    expect(i1.zeroCopyBytes(new Int8Array(3), [4])).toBeNull();
    expect(() => i1.encodeBytes(new Int8Array(3), [4])).toThrow();
    expect(i1.zeroCopyBytes(new Int8Array(4), [2, 2])).toBeNull();
    expect(i1.zeroCopyBytes([1, 2], [2])).toBeNull();
    expect(Array.from(i1.encodeBytes(new Uint8Array([5, 1]), [2]))).toEqual([5, 1]);
    expect(Codec.for(">u2").zeroCopyBytes(new Uint16Array(2), [2])).toBeNull(); // not native order
  });

  test("a whole-byte u/i scalar of a format is written big-endian, as the bit-packed path writes it", () => {
    const u40 = Codec.for([["u", 40]]);
    for (const v of [0, 1, 255, 2 ** 32 + 5, 2 ** 40 - 1]) {
      const fast = u40.scalarIntegerBytes(v, []);
      expect(fast).not.toBeNull();
      expect(Array.from(fast!)).toEqual(Array.from(u40.encode(v, []).bytes));
    }
    const i24 = Codec.for([["i", 24]]);
    for (const v of [-1, -(2 ** 23), 2 ** 23 - 1, 0]) {
      expect(Array.from(i24.scalarIntegerBytes(v, [])!)).toEqual(Array.from(i24.encode(v, []).bytes));
    }
    expect(i24.scalarIntegerBytes(2 ** 23, [])).toBeNull();
    expect(Codec.for([["i", 16]]).scalarIntegerBytes(5, [])).toBeNull(); // a numpy type: the dtype path
    // Out of range, not an integer, too wide, not a scalar, not a whole byte: the general path decides.
    expect(u40.scalarIntegerBytes(2 ** 40, [])).toBeNull();
    expect(() => u40.encodeBytes(2 ** 40, [])).toThrow();
    expect(u40.scalarIntegerBytes(-1, [])).toBeNull();
    expect(u40.scalarIntegerBytes(1.5, [])).toBeNull();
    expect(Codec.for([["u", 64]]).scalarIntegerBytes(5, [])).toBeNull();
    expect(u40.scalarIntegerBytes(5, [1])).toBeNull();
    expect(Codec.for([["u", 12]]).scalarIntegerBytes(5, [])).toBeNull();
  });
});
