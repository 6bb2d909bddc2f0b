/** Receive side through FFI: buffer reader, reassembly rules, leases, stats, bad input. */
import { describe, expect, test } from "bun:test";
import { Flavour, MEMCPY_NONTEMPORAL, MEMCPY_STD, MemoryPool, recv, send, SpeadError, Stopped } from "../mod.ts";
import { concat } from "./helpers.ts";

const F40 = new Flavour();
const F48 = new Flavour(4, 64, 48, 0);

function heapBytes(flavour: Flavour, items: Array<[number, Uint8Array | bigint]>, cnt: bigint, size = 1472) {
  const h = new send.Heap(flavour);
  for (const [id, v] of items) {
    if (typeof v === "bigint") h.addImmediate(id, v);
    else h.addRaw(id, v);
  }
  return [...new send.PacketGenerator(h, cnt, size)];
}

function streamOf(bytes: Uint8Array, config: recv.StreamConfigOptions = {}, ring: recv.RingStreamConfigOptions = {}) {
  const s = new recv.Stream(new recv.StreamConfig(config), new recv.RingStreamConfig(ring));
  s.addBufferReader(bytes);
  return s;
}

function drain(s: recv.Stream): recv.Heap[] {
  const out: recv.Heap[] = [];
  for (const heap of s) out.push(heap);
  return out;
}

const ramp = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

describe("recv.Stream with a buffer reader", () => {
  test("heaps come back with their items, zero-copy, in order", () => {
    const a = ramp(5000, 1);
    const bytes = concat([
      ...heapBytes(F40, [[0x1600, 42n], [0x3300, a]], 1n),
      ...heapBytes(F40, [[0x1600, 43n], [0x3300, ramp(100, 2)]], 2n),
    ]);
    using s = streamOf(bytes);
    const heaps = drain(s);
    expect(heaps.map((h) => h.cnt)).toEqual([1n, 2n]);
    const items = heaps[0].getItems();
    const ts = items.find((i) => i.id === 0x1600)!;
    expect(ts.isImmediate).toBe(true);
    expect(ts.immediateValue).toBe(42n);
    expect(Array.from(ts.value)).toEqual([0, 0, 0, 0, 42]);
    const data = items.find((i) => i.id === 0x3300)!;
    expect(data.isImmediate).toBe(false);
    expect(data.value.byteLength).toBe(5000);
    expect(Array.from(data.value)).toEqual(Array.from(a));
    expect(heaps[0].isComplete()).toBe(true);
    expect(heaps[0].flavour.equals(F40)).toBe(true);
    const st = s.stats;
    expect(st.heaps).toBe(2);
    expect(st.packets).toBeGreaterThan(3);
    for (const h of heaps) h.release();
  });

  test("a released heap throws on access and its views are detached", () => {
    using s = streamOf(concat(heapBytes(F48, [[0x2000, ramp(64)]], 7n)));
    const heap = s.getBlocking(5000);
    const view = heap.getItems()[0].value;
    expect(view[1]).toBe(7);
    heap.release();
    heap.release(); // idempotent
    expect(() => heap.getItems()).toThrow("released");
    expect(view.byteLength).toBe(0);
    expect(view[1]).toBeUndefined();
    expect(heap.isReleased).toBe(true);
  });

  test("header fields survive later heaps: 64-bit cnt, lengths, flavour, items read late, > 16 items", async () => {
    const many: Array<[number, Uint8Array | bigint]> = Array.from({ length: 20 }, (_, i) => [0x1000 + i, ramp(10 + i, i)]);
    const bytes = concat([
      ...heapBytes(F48, [[0x1600, 5n], [0x3300, ramp(3000, 3)]], 0x1_2345_6789n),
      ...heapBytes(F40, many, 2n ** 39n - 1n, 9000),
      ...heapBytes(F40, [[0x1600, 6n]], 3n),
    ]);
    using s = streamOf(bytes, {}, { heaps: 8 });
    const heaps: recv.Heap[] = [];
    for await (const batch of s.batches()) heaps.push(...batch);
    expect(heaps.map((h) => h.cnt)).toEqual([0x1_2345_6789n, 2n ** 39n - 1n, 3n]);
    // Items of the first heap, read after the later heaps were made.
    const first = heaps[0];
    expect(first.flavour.equals(F48)).toBe(true);
    expect(first.heapLength).toBe(first.receivedLength);
    expect(first.receivedLength).toBeGreaterThanOrEqual(3000);
    expect(first.isComplete() && first.isContiguous() && !first.isEndOfStream()).toBe(true);
    expect(Array.from(first.getItems().find((i) => i.id === 0x3300)!.value)).toEqual(Array.from(ramp(3000, 3)));
    // More items than the shared describe buffer holds.
    const items = heaps[1].getItems();
    expect(items.length).toBe(20);
    for (let i = 0; i < 20; i++) expect(Array.from(items.find((it) => it.id === 0x1000 + i)!.value)).toEqual(Array.from(ramp(10 + i, i)));
    expect(heaps[1].flavour.equals(F40)).toBe(true);
    expect(heaps[2].getItems()[0].immediateValue).toBe(6n);
    for (const h of heaps) h.release();
    // cnt stays readable after release (error messages name it); the rest throws.
    expect(heaps[1].cnt).toBe(2n ** 39n - 1n);
    expect(() => heaps[1].heapLength).toThrow("heap 549755813887 has been released");
  });

  test("async iteration and get() end with the stream", async () => {
    const bytes = concat([1n, 2n, 3n].flatMap((c) => heapBytes(F40, [[0x1000, ramp(3000)]], c)));
    const s = streamOf(bytes);
    const seen: bigint[] = [];
    for await (const heap of s) {
      seen.push(heap.cnt);
      heap.release();
    }
    expect(seen).toEqual([1n, 2n, 3n]);
    await expect(s.get()).rejects.toThrow(Stopped);
    s.close();
    s.close();
    expect(() => s.getNowait()).toThrow("closed");
  });

  test("getBatch takes every ready heap up to max in one call, in order, then rejects Stopped", async () => {
    const cnts = Array.from({ length: 10 }, (_, i) => BigInt(i + 1));
    const bytes = concat(cnts.flatMap((c) => heapBytes(F40, [[0x1000, ramp(500, Number(c))]], c)));
    const s = streamOf(bytes, {}, { heaps: 16 });
    const seen: bigint[] = [];
    const sizes: number[] = [];
    for (let calls = 0; calls < 20; calls++) {
      let batch: recv.Heap[];
      try {
        batch = await s.getBatch(4);
      } catch (err) {
        expect(err).toBeInstanceOf(Stopped);
        break;
      }
      expect(batch.length).toBeGreaterThanOrEqual(1);
      expect(batch.length).toBeLessThanOrEqual(4);
      sizes.push(batch.length);
      for (const h of batch) {
        seen.push(h.cnt);
        expect(h.getItems()[0].value).toEqual(ramp(500, Number(h.cnt)));
        h.release();
        expect(() => h.getItems()).toThrow("released");
      }
    }
    expect(seen).toEqual(cnts);
    // A 10-packet buffer is one reader batch: once it is all in, batches are full.
    expect(sizes.length).toBeLessThan(10);
    await expect(s.getBatch()).rejects.toThrow(Stopped);
    s.close();
    await expect(s.getBatch()).rejects.toThrow("closed");
  });

  test("a NativeBuffer view is read in place: same heaps, buffer releasable meanwhile, reusable", async () => {
    const cnts = [1n, 2n, 3n, 4n];
    const packets = concat(cnts.flatMap((c) => heapBytes(F40, [[0x1000, ramp(5000, Number(c))]], c)));
    const buf = send.allocateBuffer(packets.byteLength + 100);
    buf.bytes.set(packets, 100);
    const view = buf.bytes.subarray(100, 100 + packets.byteLength);
    const a = new recv.Stream();
    const b = new recv.Stream();
    a.addBufferReader(view);
    b.addBufferReader(view); // one buffer, two readers
    buf.release(); // JS lets go; the readers still hold it
    expect(view.byteLength).toBe(0);
    for (const s of [a, b]) {
      const got: bigint[] = [];
      for await (const heaps of s.batches()) {
        for (const h of heaps) {
          got.push(h.cnt);
          expect(h.getItems()[0].value).toEqual(ramp(5000, Number(h.cnt)));
          h.release();
        }
      }
      expect(got).toEqual(cnts);
      s.close();
    }
    // A released buffer's (detached) view feeds nothing, and never native memory.
    const c = new recv.Stream();
    c.addBufferReader(view);
    expect(drain(c)).toHaveLength(0);
    c.close();
  });

  test("memcpy MEMCPY_NONTEMPORAL: the same bytes as MEMCPY_STD, every size and alignment, pooled", async () => {
    expect(MEMCPY_STD).toBe(recv.MEMCPY_STD);
    expect(new recv.StreamConfig().memcpy).toBe(MEMCPY_STD);
    // Heaps of many sizes at odd packet sizes: payload offsets at every alignment,
    // copies below and above the streaming threshold.
    const sizes = [1, 100, 511, 512, 513, 1000, 4095, 9000, 65536 + 7, 300_001];
    const packets = concat(sizes.flatMap((n, i) => heapBytes(F40, [[0x1000, ramp(n, i)]], BigInt(i + 1), i % 2 ? 1472 : 8999)));
    const payloads = async (memcpy: number, memoryAllocator?: MemoryPool) => {
      using s = streamOf(packets, { memcpy, memoryAllocator }, { heaps: 16 });
      expect(s.config.memcpy).toBe(memcpy);
      const out: Uint8Array[] = [];
      for await (const batch of s.batches()) {
        for (const h of batch) {
          out.push(h.getItems()[0].value.slice());
          h.release();
        }
      }
      return out;
    };
    const std = await payloads(MEMCPY_STD);
    expect(std.map((p) => p.byteLength)).toEqual(sizes);
    sizes.forEach((n, i) => expect(std[i]).toEqual(ramp(n, i)));
    expect(await payloads(MEMCPY_NONTEMPORAL)).toEqual(std);
    using pool = new MemoryPool(0, 400_000, 8, 4);
    expect(await payloads(MEMCPY_NONTEMPORAL, pool)).toEqual(std);
  });

  test("heaps of a batch dropped without release are freed once collected; released ones and payload views are not freed twice", async () => {
    using pool = new MemoryPool(0, 8192, 16, 8);
    const bytes = concat(Array.from({ length: 10 }, (_, i) => heapBytes(F40, [[0x1000, ramp(4000, i)]], BigInt(i + 1))).flat());
    using s = streamOf(bytes, { memoryAllocator: pool }, { heaps: 16 });
    // In a function of its own, so nothing here keeps the heaps reachable afterwards.
    const keep = await (async () => {
      const heaps: recv.Heap[] = [];
      for await (const batch of s.batches()) heaps.push(...batch);
      expect(heaps.length).toBe(10);
      for (const h of heaps.slice(0, 3)) h.release();
      // A payload view outlives its heap: its buffer takes over the safety net.
      const view = heaps[3].getPayload();
      expect(Array.from(view.subarray(0, 4000))).toEqual(Array.from(ramp(4000, 3)));
      return view;
    })();
    expect(pool.stats.outstanding).toBe(7);
    const gc = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc ?? (globalThis as { gc?: () => void }).gc;
    if (gc === undefined) return; // Deno without --expose-gc (the forced-GC pass runs this)
    for (let i = 0; i < 100 && pool.stats.outstanding > 1; i++) {
      gc(true);
      await new Promise((r) => setTimeout(r, 20));
    }
    // The six dropped heaps are back in the pool; the one whose view is alive is not.
    expect(pool.stats.outstanding).toBe(1);
    expect(keep[0]).toBe(ramp(1, 3)[0]);
  });

  test("getBatch checks max", async () => {
    const s = new recv.Stream();
    for (const bad of [0, -1, 1.5, 4097, NaN]) await expect(s.getBatch(bad)).rejects.toThrow(RangeError);
    s.close();
  });

  test("stop item stops the stream (not delivered) unless stopOnStopItem is false", () => {
    const end = new send.Heap(F40);
    end.addEnd();
    const bytes = concat([
      ...heapBytes(F40, [[0x1000, ramp(10)]], 1n),
      ...new send.PacketGenerator(end, 2n, 1472),
      ...heapBytes(F40, [[0x1000, ramp(10)]], 3n),
    ]);
    using a = streamOf(bytes);
    const ha = drain(a);
    expect(ha.map((h) => h.cnt)).toEqual([1n]);
    using b = streamOf(bytes, { stopOnStopItem: false });
    const hb = drain(b);
    expect(hb.map((h) => h.cnt)).toEqual([1n, 2n, 3n]);
    expect(hb[1].isEndOfStream()).toBe(true);
    expect(hb[0].isEndOfStream()).toBe(false);
    for (const h of [...ha, ...hb]) h.release();
  });

  test("out-of-order packets: dropped by default, reassembled when allowed", () => {
    const pk = heapBytes(F40, [[0x1000, ramp(4000, 3)]], 5n);
    expect(pk.length).toBe(3);
    const shuffled = concat([pk[2], pk[0], pk[1]]);
    using strict = streamOf(shuffled, {}, { contiguousOnly: true });
    expect(drain(strict)).toHaveLength(0);
    using lax = streamOf(shuffled, { allowOutOfOrder: true });
    const hs = drain(lax);
    expect(hs).toHaveLength(1);
    expect(Array.from(hs[0].getItems()[0].value)).toEqual(Array.from(ramp(4000, 3)));
    hs[0].release();
  });

  test("incomplete heaps are delivered as IncompleteHeap when contiguousOnly is false", () => {
    const pk = heapBytes(F40, [[0x1600, 9n], [0x1000, ramp(4000)]], 5n);
    using s = streamOf(concat([pk[0], pk[2]]), { allowOutOfOrder: true }, { contiguousOnly: false });
    const hs = drain(s);
    expect(hs).toHaveLength(1);
    expect(hs[0]).toBeInstanceOf(recv.IncompleteHeap);
    expect(hs[0].isComplete()).toBe(false);
    expect(hs[0].receivedLength).toBeLessThan(hs[0].heapLength);
    expect(hs[0].getItems().every((i) => i.isImmediate)).toBe(true);
    hs[0].release();
  });

  test("eviction: max_heaps interleaved heaps; the oldest partial heap is evicted", () => {
    const heaps = [1n, 2n, 3n].map((c) => heapBytes(F40, [[0x1000, ramp(3000)]], c));
    // first packet of heap 1, then heaps 2 and 3 complete, then the rest of heap 1, with max_heaps = 1
    const bytes = concat([heaps[0][0], ...heaps[1], ...heaps[2], heaps[0][1], heaps[0][2]]);
    using s = streamOf(bytes, { maxHeaps: 1 });
    const got = drain(s);
    expect(got.map((h) => h.cnt)).toEqual([2n, 3n]);
    expect(s.stats.incomplete_heaps_evicted).toBeGreaterThanOrEqual(1);
    for (const h of got) h.release();
  });

  test("getNowait on an empty running stream throws Empty, not a crash", () => {
    using s = new recv.Stream();
    expect(() => s.getNowait()).toThrow("empty");
    s.stop();
    expect(() => s.getNowait()).toThrow(Stopped);
  });
});

describe("bad input is rejected and counted", () => {
  const good = () => concat(heapBytes(F40, [[0x1000, ramp(100)]], 1n));

  const cases: Array<[string, (b: Uint8Array) => Uint8Array]> = [
    ["truncated packet", (b) => b.subarray(0, b.byteLength - 5)],
    ["wrong magic", (b) => Uint8Array.from(b, (x, i) => (i === 0 ? 0x54 : x))],
    ["wrong version", (b) => Uint8Array.from(b, (x, i) => (i === 1 ? 3 : x))],
    ["bad flavour widths", (b) => Uint8Array.from(b, (x, i) => (i === 2 ? 4 : x))],
    ["pointer table past the end", (b) => Uint8Array.from(b, (x, i) => (i === 6 ? 0xff : x))],
    ["header only", (b) => b.subarray(0, 8)],
    ["garbage", () => Uint8Array.from({ length: 300 }, (_, i) => (i * 97) & 0xff)],
  ];
  for (const [name, mutate] of cases) {
    test(name, () => {
      using s = streamOf(mutate(good()));
      expect(drain(s)).toHaveLength(0);
    });
  }

  test("absurd heap length and inconsistent payload length do not allocate or crash", () => {
    const b = good();
    const dv = new DataView(b.buffer, b.byteOffset);
    // HEAP_LENGTH is the second pointer: make it 2^40 - 1
    dv.setBigUint64(16, (0x8000_0000_0000_0000n | (2n << 40n)) + (2n ** 40n - 1n));
    using s = streamOf(b);
    expect(drain(s)).toHaveLength(0);
    const c = good();
    const dc = new DataView(c.buffer, c.byteOffset);
    dc.setBigUint64(32, (0x8000_0000_0000_0000n | (4n << 40n)) + 100000n); // PAYLOAD_LENGTH beyond the data
    using s2 = streamOf(c);
    expect(drain(s2)).toHaveLength(0);
  });

  test("bad stream configs are refused in JS", () => {
    expect(() => new recv.StreamConfig({ maxHeaps: 0 })).toThrow("invalid_argument");
    expect(() => new recv.StreamConfig({ bugCompat: 8 })).toThrow("invalid_argument");
    expect(() => new recv.RingStreamConfig({ heaps: 0 })).toThrow("invalid_argument");
    expect(() => new recv.StreamConfig({ memcpy: 2 })).toThrow("invalid_argument");
  });

  test("stale heap handles are an error status, not a segfault", () => {
    using s = streamOf(good());
    const h = s.getBlocking(5000);
    h.release();
    expect(() => h.getPayload()).toThrow(SpeadError);
  });
});

describe("descriptors in received heaps", () => {
  test("a malformed numpy header raises from update (spead2's ValueError); garbage descriptor bytes are skipped", async () => {
    const { Descriptor, ItemGroup } = await import("../mod.ts");
    const good = new Descriptor({ id: 0x1000, name: "x", description: "d", shape: [2], dtype: "<u2" }).toRaw(F40);
    // Corrupt the numpy header in place (same length): 'fortran_order': False -> Falsy
    const at = String.fromCharCode(...good).indexOf("False");
    expect(at).toBeGreaterThan(0);
    const bad = good.slice();
    bad[at + 4] = "y".charCodeAt(0);
    const mk = (descriptor: Uint8Array) => {
      const h = new send.Heap(F40);
      h.addRaw(5, descriptor);
      return concat([...new send.PacketGenerator(h, 1n, 1472)]);
    };
    {
      using s = streamOf(mk(good));
      using heap = s.getBlocking(5000);
      expect(heap.getDescriptors().map((d) => d.name)).toEqual(["x"]);
    }
    {
      using s = streamOf(mk(Uint8Array.from({ length: 40 }, (_, i) => i)));
      using heap = s.getBlocking(5000);
      expect(heap.getDescriptors()).toHaveLength(0);
    }
    {
      using s = streamOf(mk(bad));
      using heap = s.getBlocking(5000);
      expect(() => new ItemGroup().update(heap)).toThrow(SpeadError);
    }
  });
});
