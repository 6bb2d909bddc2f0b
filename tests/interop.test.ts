/**
 * Interop with the real spead2 (PyPI) in both directions, through memory
 * (BytesStream bytes <-> add_buffer_reader), for 64-40, 64-48 and bug_compat 7.
 * The case list lives in tests/interop/spead2_interop.py.
 */
import { describe, expect, test } from "bun:test";
import { Flavour, ItemGroup, recv, send } from "../mod.ts";
import { hasPython, runInterop } from "./helpers.ts";

interface Case {
  id: number;
  name: string;
  description: string;
  shape: Array<number | null>;
  dtype?: string;
  order?: "C" | "F";
  format?: Array<[string, number]>;
  value: unknown;
}

const flavours: Array<[number, number]> = [[40, 0], [48, 0], [40, 7]];
const cases: Case[] = hasPython ? JSON.parse(new TextDecoder().decode(runInterop(["cases"]))) : [];

/** Plain JSON-comparable form of a decoded value. */
function plain(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, (x) => Number(x));
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

function close(actual: unknown, expected: unknown): boolean {
  if (typeof expected === "number" && typeof actual === "number") {
    return Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected));
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    return expected.length === actual.length && expected.every((e, i) => close(actual[i], e));
  }
  return actual === expected;
}

/** The value to assign on our side for a case (C-order flat arrays in the dtype's typed array). */
function ourValue(c: Case): unknown {
  if (c.format && c.format.length > 1) return (c.value as unknown[][]).map((r) => [...r]);
  if (c.dtype && Array.isArray(c.value)) {
    const v = c.value as number[];
    switch (c.dtype.slice(1)) {
      case "f8":
        return Float64Array.from(v);
      case "f4":
        return Float32Array.from(v);
      case "i2":
        return Int16Array.from(v);
      case "u1":
        return Uint8Array.from(v);
      case "i4":
        return Int32Array.from(v);
      case "u8":
        return BigUint64Array.from(v.map((x) => BigInt(x)));
    }
  }
  if (c.format && c.shape.length > 0 && Array.isArray(c.value)) return c.value;
  return c.value;
}



/** Our BytesStream holding every case (descriptors and values) plus an end heap. */
function encodeCases(hab: number, bugCompat: number): send.BytesStream {
  const ig = new send.ItemGroup(null, new Flavour(4, 64, hab, bugCompat));
  for (const c of cases) {
    ig.addItem({
      id: c.id,
      name: c.name,
      description: c.description,
      shape: c.shape,
      ...(c.dtype ? { dtype: c.dtype, order: c.order ?? "C" } : { format: c.format as never }),
      value: ourValue(c) as never,
    });
  }
  const s = new send.BytesStream();
  s.sendHeap(ig.getHeap({ descriptors: "all", data: "all" }));
  s.sendHeap(ig.getEnd());
  return s;
}

for (const [hab, bugCompat] of flavours) {
  describe(`interop with spead2, SPEAD-64-${hab} bug_compat ${bugCompat}`, () => {
    test("spead2 BytesStream -> our recv.Stream + ItemGroup.update", () => {
      if (!hasPython) return;
      const bytes = runInterop(["encode", String(hab), String(bugCompat)]);
      const stream = new recv.Stream(new recv.StreamConfig({ bugCompat }));
      stream.addBufferReader(bytes);
      const ig = new ItemGroup();
      let heaps = 0;
      for (const heap of stream) {
        heaps++;
        expect(heap.flavour.heapAddressBits).toBe(hab);
        ig.update(heap, "=", { copy: true });
        heap.release();
      }
      stream.close();
      expect(heaps).toBe(1);
      for (const c of cases) {
        const item = ig.get(c.name);
        expect(item).toBeDefined();
        const got = plain(item!.value);
        if (!close(got, c.value)) {
          throw new Error(`${c.name}: got ${JSON.stringify(got)}, want ${JSON.stringify(c.value)}`);
        }
      }
    });

    test("our send.ItemGroup + BytesStream -> spead2 recv + ItemGroup.update", () => {
      if (!hasPython) return;
      const s = encodeCases(hab, bugCompat);
      const out = JSON.parse(
        new TextDecoder().decode(runInterop(["decode", String(hab), String(bugCompat)], s.getValue())),
      ) as Record<string, unknown>;
      expect(out._heaps).toBe(1);
      for (const c of cases) {
        if (!close(out[c.name], c.value)) {
          throw new Error(`${c.name}: spead2 decoded ${JSON.stringify(out[c.name])}, want ${JSON.stringify(c.value)}`);
        }
      }
    });

    test("byte-identical heaps: our BytesStream equals spead2's for the same items", () => {
      if (!hasPython) return;
      const theirs = runInterop(["encode", String(hab), String(bugCompat)]);
      const s = encodeCases(hab, bugCompat);
      const ours = s.getValue();
      expect(ours.byteLength).toBe(theirs.byteLength);
      const firstDiff = ours.findIndex((b, i) => b !== theirs[i]);
      expect(firstDiff).toBe(-1);
    });
  });
}
