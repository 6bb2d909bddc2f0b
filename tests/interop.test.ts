/**
 * Interop with the real spead2 (PyPI) in both directions, through memory
 * (BytesStream bytes <-> add_buffer_reader), for 64-40, 64-48 and bug_compat 7.
 * The case list lives in tests/interop/spead2_interop.py.
 */
import { describe, expect, test } from "bun:test";
import { Flavour, ItemGroup, recv, send } from "../mod.ts";
import { type Case, caseItemGroup, plainValue, valuesMatch, loadCases, runInterop } from "./helpers.ts";

const flavours: Array<[number, number]> = [[40, 0], [48, 0], [40, 7]];
const cases: Case[] = loadCases();

/** Our BytesStream holding every case (descriptors and values) plus an end heap. */
function encodeCases(hab: number, bugCompat: number): send.BytesStream {
  const ig = caseItemGroup(cases, new Flavour(4, 64, hab, bugCompat));
  const s = new send.BytesStream();
  s.sendHeap(ig.getHeap({ descriptors: "all", data: "all" }));
  s.sendHeap(ig.getEnd());
  return s;
}

for (const [hab, bugCompat] of flavours) {
  describe(`interop with spead2, SPEAD-64-${hab} bug_compat ${bugCompat}`, () => {
    test("spead2 BytesStream -> our recv.Stream + ItemGroup.update", () => {
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
        const got = plainValue(item!.value);
        if (!valuesMatch(got, c.value)) {
          throw new Error(`${c.name}: got ${JSON.stringify(got)}, want ${JSON.stringify(c.value)}`);
        }
      }
    });

    test("our send.ItemGroup + BytesStream -> spead2 recv + ItemGroup.update", () => {
      const s = encodeCases(hab, bugCompat);
      const out = JSON.parse(
        new TextDecoder().decode(runInterop(["decode", String(hab), String(bugCompat)], s.getValue())),
      ) as Record<string, unknown>;
      expect(out._heaps).toBe(1);
      for (const c of cases) {
        if (!valuesMatch(out[c.name], c.value)) {
          throw new Error(`${c.name}: spead2 decoded ${JSON.stringify(out[c.name])}, want ${JSON.stringify(c.value)}`);
        }
      }
    });

    test("byte-identical heaps: our BytesStream equals spead2's for the same items", () => {
      const theirs = runInterop(["encode", String(hab), String(bugCompat)]);
      const s = encodeCases(hab, bugCompat);
      const ours = s.getValue();
      expect(ours.byteLength).toBe(theirs.byteLength);
      const firstDiff = ours.findIndex((b, i) => b !== theirs[i]);
      expect(firstDiff).toBe(-1);
    });
  });
}
