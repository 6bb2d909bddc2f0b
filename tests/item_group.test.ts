import { describe, expect, test } from "bun:test";
import { Descriptor } from "../src/descriptor.ts";
import { immediateBytes } from "../src/dtype/mod.ts";
import { Flavour } from "../src/flavour.ts";
import type { Item, RawItem } from "../src/item.ts";
import { type HeapLike, ItemGroup } from "../src/item_group.ts";
import { HeapGenerator, type HeapSink, ItemGroup as SendItemGroup } from "../src/send/heap_generator.ts";
import { Heap } from "../src/send/heap.ts";
import { SpeadError } from "../src/errors.ts";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SpeadError ? err.code : `non-spead: ${String(err)}`;
  }
  return undefined;
}

/** A heap sink that records what a generator adds, in order. */
class RecordingSink implements HeapSink {
  readonly log: string[] = [];
  readonly descriptors: Descriptor[] = [];
  readonly items: Item[] = [];
  addItem(item: Item): void {
    this.log.push(`item:${item.name}`);
    this.items.push(item);
  }
  addDescriptor(descriptor: Descriptor): void {
    this.log.push(`desc:${descriptor.name}`);
    this.descriptors.push(descriptor);
  }
}

/**
 * A received heap made from what a sender put in: descriptors as objects (the
 * native decode is tested elsewhere) and values as spead2's sender lays them
 * out (small fixed-size values as immediates).
 */
class LoopbackHeap implements HeapLike, HeapSink {
  readonly descriptors: Descriptor[] = [];
  readonly raw: RawItem[] = [];
  constructor(readonly flavour: Flavour) {}
  addDescriptor(descriptor: Descriptor): void {
    this.descriptors.push(new Descriptor(descriptor.toOptions()));
  }
  addItem(item: Item): void {
    const bytes = item.toBuffer().slice();
    const width = this.flavour.heapAddressBits / 8;
    if (item.allowImmediate() && bytes.length <= width) {
      let v = 0n;
      for (const b of bytes) v = (v << 8n) | BigInt(b);
      this.raw.push({ id: item.id, isImmediate: true, immediateValue: v, value: immediateBytes(v, width) });
    } else {
      this.raw.push({ id: item.id, isImmediate: false, immediateValue: 0n, value: bytes });
    }
  }
  addRaw(raw: RawItem): this {
    this.raw.push(raw);
    return this;
  }
  getItems(): RawItem[] {
    return this.raw;
  }
  getDescriptors(): Descriptor[] {
    return this.descriptors;
  }
}

describe("ItemGroup.addItem (spead2 test_common TestItemGroup)", () => {
  test("automatic IDs skip allocated ones", () => {
    const ig = new ItemGroup();
    ig.addItem({ id: 0x1000, name: "item 1", description: "item 1", shape: [], dtype: "<i4" });
    ig.addItem({ id: 0x1003, name: "item 2", description: "item 2", shape: [], dtype: "<i4" });
    ig.addItem({ name: "item 3", description: "item 3", shape: [], dtype: "<i4" });
    ig.addItem({ id: null, name: "item 4", description: "item 4", shape: [], dtype: "<i4" });
    ig.addItem({ name: "item 5", description: "item 5", shape: [], dtype: "<i4" });
    expect(ig.get(0x1001)!.name).toBe("item 3");
    expect(ig.get(0x1002)!.name).toBe("item 4");
    expect(ig.getById(0x1004)!.name).toBe("item 5");
    expect(ig.size).toBe(5);
  });

  test("a known ID with a new name replaces the old item", () => {
    const ig = new ItemGroup();
    ig.addItem({ id: 0x1000, name: "item 1", description: "item 1", shape: [], dtype: "<i4" });
    ig.addItem({ id: 0x1000, name: "renamed", description: "renamed", shape: [], dtype: "<i4" });
    expect([...ig.ids()]).toEqual([0x1000]);
    expect([...ig.keys()]).toEqual(["renamed"]);
  });

  test("a known name with a new ID clobbers the old item", () => {
    const ig = new ItemGroup();
    ig.addItem({ id: 0x1000, name: "item 1", description: "item 1", shape: [], dtype: "<i4" });
    ig.addItem({ id: 0x1001, name: "item 1", description: "clobbered", shape: [], dtype: "<i4" });
    expect([...ig.ids()]).toEqual([0x1001]);
    expect([...ig.keys()]).toEqual(["item 1"]);
    expect(ig.get("item 1")!.description).toBe("clobbered");
    expect(ig.get("item 1")).toBe(ig.get(0x1001));
  });

  test("an identical descriptor keeps the item and takes a new value", () => {
    const ig = new ItemGroup();
    ig.addItem({ id: 0x1000, name: "item 1", description: "item 1", shape: [], dtype: "<i4", value: 4 });
    ig.addItem({ id: 0x1001, name: "item 2", description: "item 2", shape: [], dtype: "<i4", value: 5 });
    const item1 = ig.get(0x1000)!;
    const item2 = ig.get(0x1001)!;
    const v1 = item1.version;
    const v2 = item2.version;
    const back = ig.addItem({ id: 0x1000, name: "item 1", description: "item 1", shape: [], dtype: "<i4", value: 6 });
    ig.addItem({ id: 0x1001, name: "item 2", description: "item 2", shape: [], dtype: "<i4" });
    expect(back).toBe(item1);
    expect(ig.get(0x1000)).toBe(item1);
    expect(ig.get(0x1001)).toBe(item2);
    expect(item1.value).toBe(6);
    expect(item1.version).toBeGreaterThan(v1);
    expect(item2.value).toBe(5);
    expect(item2.version).toBe(v2);
  });

  test("a changed shape replaces the item with a null value and a higher version", () => {
    const ig = new ItemGroup();
    ig.addItem({ id: 0x1000, name: "item 1", description: "item 1", shape: [], dtype: "<i4", value: 4 });
    const item1 = ig.get(0x1000)!;
    item1.value = 5;
    const v1 = item1.version;
    ig.addItem({ id: 0x1000, name: "item 1", description: "bigger", shape: [3, 4], dtype: "<i4" });
    expect(ig.get(0x1000) === item1).toBe(false);
    expect(ig.get(0x1000)!.value).toBeNull();
    expect(ig.get(0x1000)!.version).toBeGreaterThan(v1);
  });

  test("colliding with one item by name and another by ID drops both", () => {
    const ig = new ItemGroup();
    ig.addItem({ id: 0x1000, name: "item 1", description: "item 1", shape: [], dtype: "<i4" });
    ig.addItem({ id: 0x1001, name: "item 2", description: "item 2", shape: [], dtype: "<i4" });
    ig.addItem({ id: 0x1000, name: "item 2", description: "clobber", shape: [], dtype: "<i4" });
    expect([...ig.ids()]).toEqual([0x1000]);
    expect([...ig.keys()]).toEqual(["item 2"]);
    expect(ig.get(0x1000)).toBe(ig.get("item 2"));
    expect(ig.get(0x1000)!.description).toBe("clobber");
  });

  test("lookups, membership and iteration", () => {
    const ig = new ItemGroup();
    const a = ig.addItem({ name: "a", shape: [], dtype: "<u2", value: 1 });
    ig.addItem({ name: "b", shape: [], dtype: "<u2" });
    expect(ig.has("a")).toBe(true);
    expect(ig.has(0x1000)).toBe(true);
    expect(ig.has("c")).toBe(false);
    expect(ig.get("c")).toBeUndefined();
    expect([...ig.items()].map(([name, item]) => [name, item.id])).toEqual([["a", 0x1000], ["b", 0x1001]]);
    expect([...ig.values()][0]).toBe(a);
    expect([...ig].length).toBe(2);
  });
});

describe("ItemGroup.update", () => {
  const flavour = new Flavour(4, 64, 48, 0);

  test("reproduces spead2's versions over a send/receive sequence", () => {
    // Versions observed with spead2 4.5.1 for the same sequence of heaps.
    const tx = new SendItemGroup(null, flavour);
    const a = tx.addItem({ id: 0x1000, name: "a", description: "A", shape: [], format: [["u", 32]], value: 5 });
    tx.addItem({ name: "b", description: "B", shape: [3], dtype: "<u2", value: new Uint16Array([1, 2, 3]) });
    const rx = new ItemGroup();
    const state = () => [...rx.items()].map(([n, i]) => [n, i.id, i.version, i.value]);

    let updated = rx.update(tx.addToHeap(new LoopbackHeap(flavour)));
    expect([...updated.keys()].sort()).toEqual(["a", "b"]);
    expect(state()).toEqual([["a", 0x1000, 3, 5], ["b", 0x1001, 3, new Uint16Array([1, 2, 3])]]);

    a.value = 6;
    updated = rx.update(tx.addToHeap(new LoopbackHeap(flavour)));
    expect([...updated.keys()]).toEqual(["a"]);
    expect(state()).toEqual([["a", 0x1000, 5, 6], ["b", 0x1001, 3, new Uint16Array([1, 2, 3])]]);

    updated = rx.update(tx.addToHeap(new LoopbackHeap(flavour), { descriptors: "all", data: "all" }));
    expect([...updated.keys()].sort()).toEqual(["a", "b"]);
    expect(state()).toEqual([["a", 0x1000, 7, 6], ["b", 0x1001, 5, new Uint16Array([1, 2, 3])]]);

    tx.addItem({ id: 0x1005, name: "a", description: "A2", shape: [], format: [["u", 16]], value: 7 });
    updated = rx.update(tx.addToHeap(new LoopbackHeap(flavour)));
    expect([...updated.keys()]).toEqual(["a"]);
    expect(state()).toEqual([["b", 0x1001, 5, new Uint16Array([1, 2, 3])], ["a", 0x1005, 10, 7]]);
  });

  test("an identical descriptor is a no-op; a different one resets the value", () => {
    const rx = new ItemGroup();
    const d = new Descriptor({ id: 0x1234, name: "x", description: "d", shape: [2], dtype: ">u2" });
    const heap = new LoopbackHeap(flavour);
    heap.descriptors.push(d);
    heap.addRaw({ id: 0x1234, isImmediate: false, immediateValue: 0n, value: new Uint8Array([0, 1, 0, 2]) });
    rx.update(heap);
    const item = rx.get("x")!;
    expect(item.value).toEqual(new Uint16Array([1, 2]));
    const version = item.version;

    const again = new LoopbackHeap(flavour);
    again.descriptors.push(new Descriptor(d.toOptions()));
    expect(rx.update(again).size).toBe(0);
    expect(rx.get("x")).toBe(item);
    expect(item.value).toEqual(new Uint16Array([1, 2]));
    expect(item.version).toBe(version);

    const changed = new LoopbackHeap(flavour);
    changed.descriptors.push(new Descriptor({ ...d.toOptions(), description: "new" }));
    rx.update(changed);
    const replaced = rx.get("x")!;
    expect(replaced === item).toBe(false);
    expect(replaced.value).toBeNull();
    expect(replaced.version).toBe(version + 1);
  });

  test("items without a descriptor are reported and skipped; protocol IDs are ignored", () => {
    const rx = new ItemGroup();
    const warnings: string[] = [];
    rx.onWarning = (m) => warnings.push(m);
    const heap = new LoopbackHeap(flavour)
      .addRaw({ id: 0x06, isImmediate: true, immediateValue: 2n, value: immediateBytes(2n, 6) })
      .addRaw({ id: 0x05, isImmediate: false, immediateValue: 0n, value: new Uint8Array(8) })
      .addRaw({ id: 0x4321, isImmediate: false, immediateValue: 0n, value: new Uint8Array(4) });
    expect(rx.update(heap).size).toBe(0);
    expect(warnings).toEqual(["item with ID 0x4321 received but there is no descriptor"]);
  });

  test("a value that does not fit its descriptor throws", () => {
    const rx = new ItemGroup();
    const heap = new LoopbackHeap(flavour);
    heap.descriptors.push(new Descriptor({ id: 0x1234, name: "bad", shape: [5, 5], format: [["u", 32]] }));
    heap.addRaw({ id: 0x1234, isImmediate: false, immediateValue: 0n, value: new Uint8Array(99) });
    expect(codeOf(() => rx.update(heap))).toBe("malformed");
  });

  test("values view the heap's memory unless copy is requested", () => {
    const payload = new Uint8Array(new ArrayBuffer(32), 8, 8);
    const d = new Descriptor({ id: 0x1234, name: "v", shape: [2], dtype: "|u1" });
    const make = () => {
      const heap = new LoopbackHeap(flavour);
      heap.descriptors.push(d);
      return heap.addRaw({ id: 0x1234, isImmediate: false, immediateValue: 0n, value: payload });
    };
    const rx = new ItemGroup();
    rx.update(make());
    expect(rx.get("v")!.valueIsView).toBe(true);
    rx.update(make(), "=", { copy: true });
    expect(rx.get("v")!.valueIsView).toBe(false);
  });

  test("an immediate from the C++ tutorial (u40 timestamp under SPEAD-64-40)", () => {
    const f40 = new Flavour();
    const heap = new LoopbackHeap(f40);
    heap.descriptors.push(new Descriptor({ id: 0x1600, name: "timestamp", shape: [], format: [["u", 40]] }));
    heap.addRaw({ id: 0x1600, isImmediate: true, immediateValue: 0xfedcba9876n, value: immediateBytes(0xfedcba9876n, 5) });
    const rx = new ItemGroup();
    rx.update(heap);
    expect(rx.get("timestamp")!.value).toBe(0xfedcba9876);
  });
});

describe("HeapGenerator", () => {
  function group() {
    const ig = new SendItemGroup();
    const a = ig.addItem({ name: "a", shape: [], format: [["u", 32]], value: 1 });
    const b = ig.addItem({ name: "b", shape: [2], dtype: "<u2", value: new Uint16Array([1, 2]) });
    const c = ig.addItem({ name: "c", shape: [], dtype: "<u2" }); // no value yet
    return { ig, a, b, c };
  }

  test("stale: descriptor then value for each item, in insertion order; then nothing", () => {
    const { ig } = group();
    const first = ig.addToHeap(new RecordingSink());
    expect(first.log).toEqual(["desc:a", "item:a", "desc:b", "item:b", "desc:c"]);
    expect(ig.addToHeap(new RecordingSink()).log).toEqual([]);
  });

  test("stale: a new value is sent once", () => {
    const { ig, a, c } = group();
    ig.addToHeap(new RecordingSink());
    a.value = 2;
    c.value = 3;
    expect(ig.addToHeap(new RecordingSink()).log).toEqual(["item:a", "item:c"]);
    expect(ig.addToHeap(new RecordingSink()).log).toEqual([]);
  });

  test("in-place changes are not seen until the version changes", () => {
    const { ig, b } = group();
    ig.addToHeap(new RecordingSink());
    (b.value as Uint16Array)[0] = 9;
    expect(ig.addToHeap(new RecordingSink()).log).toEqual([]);
    b.version++;
    expect(ig.addToHeap(new RecordingSink()).log).toEqual(["item:b"]);
  });

  test("all and none", () => {
    const { ig } = group();
    expect(ig.addToHeap(new RecordingSink(), { descriptors: "none", data: "none" }).log).toEqual([]);
    expect(ig.addToHeap(new RecordingSink(), { descriptors: "all", data: "none" }).log).toEqual([
      "desc:a",
      "desc:b",
      "desc:c",
    ]);
    expect(ig.addToHeap(new RecordingSink(), { data: "all" }).log).toEqual(["item:a", "item:b"]);
    expect(ig.addToHeap(new RecordingSink(), { data: "all" }).log).toEqual(["item:a", "item:b"]);
    expect(ig.addToHeap(new RecordingSink(), { descriptors: "all", data: "all" }).log).toEqual([
      "desc:a",
      "item:a",
      "desc:b",
      "item:b",
      "desc:c",
    ]);
  });

  test("descriptorFrequency resends descriptors every N heaps", () => {
    const ig = new SendItemGroup({ descriptorFrequency: 2 });
    ig.addItem({ name: "a", shape: [], format: [["u", 8]], value: 1 });
    const logs = [0, 1, 2, 3, 4].map(() => ig.addToHeap(new RecordingSink(), { data: "none" }).log);
    expect(logs).toEqual([["desc:a"], [], ["desc:a"], [], ["desc:a"]]);
  });

  test("a replaced item sends its descriptor and value again", () => {
    const { ig } = group();
    ig.addToHeap(new RecordingSink());
    ig.addItem({ id: 0x1000, name: "a", description: "changed", shape: [], format: [["u", 32]], value: 1 });
    // The replacement moves to the end of the insertion order, as in spead2.
    expect(ig.addToHeap(new RecordingSink()).log).toEqual(["desc:a", "item:a"]);
  });

  test("a separate generator over a plain ItemGroup", () => {
    const ig = new ItemGroup();
    ig.addItem({ name: "x", shape: [], dtype: "<f8", value: 1.5 });
    const gen = new HeapGenerator(ig, null, new Flavour(4, 64, 48, 0));
    expect(gen.flavour.heapAddressBits).toBe(48);
    expect(gen.addToHeap(new RecordingSink()).log).toEqual(["desc:x", "item:x"]);
    expect(gen.addToHeap(new RecordingSink()).log).toEqual([]);
    // Another generator has its own record of what was sent.
    expect(new HeapGenerator(ig).addToHeap(new RecordingSink()).log).toEqual(["desc:x", "item:x"]);
  });

  test("invalid selections", () => {
    const { ig } = group();
    expect(codeOf(() => ig.addToHeap(new RecordingSink(), { descriptors: "some" as "all" }))).toBe("invalid_argument");
    expect(codeOf(() => ig.addToHeap(new RecordingSink(), { data: "x" as "all" }))).toBe("invalid_argument");
    expect(codeOf(() => new HeapGenerator(ig, -1))).toBe("invalid_argument");
  });

  test("getStart and getEnd hold only the stream control item", () => {
    const ig = new SendItemGroup(null, new Flavour(4, 64, 48, 0));
    const start = ig.getStart();
    const end = ig.getEnd();
    expect(start).toBeInstanceOf(Heap);
    expect(start.flavour.heapAddressBits).toBe(48);
    expect(start.entries).toEqual([{ id: 6, immediate: true, value: 0n }]);
    expect(end.entries).toEqual([{ id: 6, immediate: true, value: 2n }]);
  });

  test("getHeap builds a send Heap; small values become immediates (V3)", () => {
    const ig = new SendItemGroup(null, new Flavour(4, 64, 48, 0));
    ig.addItem({ id: 0x2345, name: "x", shape: [], format: [["u", 16]], value: 0x7654 });
    ig.addItem({ id: 0x2346, name: "y", shape: [3], dtype: "|u1", value: new Uint8Array([1, 2, 3, 4, 5, 6, 7]).subarray(0, 3) });
    const heap = ig.getHeap({ descriptors: "none" });
    expect(heap.entries.length).toBe(2);
    expect(heap.entries[0]).toEqual({ id: 0x2345, immediate: true, value: 0x7654n });
    const e = heap.entries[1];
    expect(e.immediate).toBe(true); // 3 bytes fit a 6-byte immediate
  });

  test("getHeap with descriptors encodes them natively", () => {
    const ig = new SendItemGroup(null, new Flavour(4, 64, 48, 0));
    ig.addItem({ id: 0x2345, name: "name", description: "description", shape: [2, 3], dtype: "<u2", value: [[6, 7, 8], [10, 11, 12000]] });
    const heap = ig.getHeap();
    expect(heap.entries.map((e) => e.id)).toEqual([5, 0x2345]);
    const [desc, data] = heap.entries;
    expect(desc.immediate ? -1 : desc.bytes.length).toBe(174);
    expect(data.immediate ? [] : Array.from(data.bytes)).toEqual([6, 0, 7, 0, 8, 0, 10, 0, 11, 0, 0xe0, 0x2e]);
  });
});
