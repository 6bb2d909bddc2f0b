/** MmapAllocator, pool flags, ThreadPool affinity and stable native send buffers. */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { Flavour, MemoryPool, MmapAllocator, recv, send, ThreadPool } from "../mod.ts";
import { root, runtimeCommand } from "./helpers.ts";

function oneHeapBytes(size: number, fill: number): Uint8Array {
  const b = new send.BytesStream();
  const h = new send.Heap();
  h.addRaw(0x1000, new Uint8Array(size).fill(fill));
  b.sendHeap(h);
  return b.getValue();
}

describe("allocators", () => {
  for (const preferHuge of [false, true]) {
    test(`MmapAllocator({ preferHuge: ${preferHuge} }) serves heap payloads (falls back without huge pages)`, () => {
      using s = new recv.Stream(new recv.StreamConfig({ memoryAllocator: new MmapAllocator({ preferHuge }) }));
      s.addBufferReader(oneHeapBytes(300_000, 5));
      using heap = s.getBlocking(5000);
      const v = heap.getItems()[0].value;
      expect(v.byteLength).toBe(300_000);
      expect(v[299_999]).toBe(5);
    });
  }

  test("a pool on an MmapAllocator preferring huge pages works either way", () => {
    using pool = new MemoryPool(0, 1 << 20, 2, 2, { allocator: new MmapAllocator({ preferHuge: true }) });
    expect(pool.stats.free).toBe(2);
    expect(pool.stats.huge_pages).toBeGreaterThanOrEqual(0);
    using s = new recv.Stream(new recv.StreamConfig({ memoryAllocator: pool }));
    s.addBufferReader(oneHeapBytes(500_000, 3));
    using heap = s.getBlocking(5000);
    expect(heap.getItems()[0].value[123]).toBe(3);
  });

  test("an empty pool prints spead2's warning on stderr and counts a miss", () => {
    const [exe, args] = runtimeCommand(`${root}/tests/fixtures/pool_empty.ts`);
    const r = spawnSync(exe, args, { timeout: 30_000 });
    expect(r.status).toBe(0);
    expect(r.stdout.toString()).toContain("misses 1");
    expect(r.stderr.toString()).toContain("memory pool is empty when allocating 4000 bytes");
  });

  test("warnOnEmpty: false keeps quiet but still counts", () => {
    using pool = new MemoryPool(0, 8192, 2, 0, { warnOnEmpty: false });
    using s = new recv.Stream(new recv.StreamConfig({ memoryAllocator: pool }));
    s.addBufferReader(oneHeapBytes(4000, 1));
    for (const heap of s) heap.release();
    expect(pool.stats.misses).toBe(1);
  });
});

describe("ThreadPool affinity", () => {
  test("reader and sender I/O threads can be pinned; an absurd core is refused", async () => {
    const pool = new ThreadPool({ threads: 1, affinity: [0] });
    using rx = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig(), { threadPool: pool });
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    using tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig(), { threadPool: pool });
    const h = new send.Heap(new Flavour());
    h.addRaw(0x1000, new Uint8Array(3000).fill(2));
    await tx.asyncSendHeap(h);
    using heap = await rx.get();
    expect(heap.getItems()[0].value[2999]).toBe(2);
    expect(rx.stats.affinity_failures).toBe(0);
    expect(tx.stats.affinity_failures).toBe(0);
    const bad = new ThreadPool({ affinity: [100000] });
    expect(() => new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig(), { threadPool: bad })).toThrow(
      "invalid_argument",
    );
    expect(() => new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig(), { threadPool: bad })).toThrow(
      "invalid_argument",
    );
    expect(() => new ThreadPool({ threads: 0 })).toThrow("invalid_argument");
  });
});

describe("stable native send buffers", () => {
  test("allocateBuffer gives pre-faulted memory usable as heap data; release detaches", async () => {
    using rx = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig({ heaps: 8 }));
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    using tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig({ rate: 200e6 }));
    const buf = send.allocateBuffer(1 << 20);
    const view = buf.bytes;
    expect(view.byteLength).toBe(1 << 20);
    view.fill(9);
    const h = new send.Heap();
    h.addRaw(0x3300, view);
    const sending = tx.asyncSendHeap(h);
    buf.release(); // deferred: the send still reads the memory
    expect(() => buf.bytes).toThrow("released");
    expect(view.byteLength).toBe(0);
    expect(await sending).toBeGreaterThan(1 << 20);
    using heap = await rx.get();
    const got = heap.getItems()[0].value;
    expect(got.byteLength).toBe(1 << 20);
    expect(got[(1 << 20) - 1]).toBe(9);
    buf.release();
    // a heap still referring to the released view is refused, not a crash
    await expect(tx.asyncSendHeap(h)).rejects.toThrow("released");
  });

  test("one-heap sends of immediates and native views (no item table): views at offsets, two items over one buffer, the buffer held until the send completes", async () => {
    using rx = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig({ heaps: 8 }));
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    using tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig({ rate: 200e6 }));
    const buf = send.allocateBuffer(3 * 4096);
    const view = buf.bytes;
    for (let i = 0; i < view.length; i++) view[i] = (i * 7) & 0xff;
    const h = new send.Heap();
    h.addImmediate(0x1600, 0x12345678abn);
    h.addRaw(0x3300, view.subarray(4096 + 3, 8192)); // an offset into the buffer
    h.addRaw(0x3301, view.subarray(100, 300)); // the same buffer again: pinned once
    const sending = tx.asyncSendHeap(h);
    buf.release(); // deferred until the send completes
    await sending;
    using heap = await rx.get();
    const items = new Map(heap.getItems().map((x) => [x.id, x]));
    expect(items.get(0x1600)!.immediateValue).toBe(0x12345678abn);
    const a = items.get(0x3300)!.value;
    expect(a.byteLength).toBe(4096 - 3);
    expect(a[0]).toBe(((4096 + 3) * 7) & 0xff);
    expect(a[a.length - 1]).toBe((8191 * 7) & 0xff);
    const b = items.get(0x3301)!.value;
    expect(Array.from(b.subarray(0, 3))).toEqual([100, 101, 102].map((i) => (i * 7) & 0xff));
    // A heap mixing a native view and JS memory takes the table path (the JS bytes are staged).
    const buf2 = send.allocateBuffer(4096);
    buf2.bytes.fill(5);
    const mixed = new send.Heap();
    mixed.addRaw(0x3300, buf2.bytes);
    mixed.addRaw(0x3301, new Uint8Array([1, 2, 3]));
    await tx.asyncSendHeap(mixed);
    using heap2 = await rx.get();
    const items2 = new Map(heap2.getItems().map((x) => [x.id, x]));
    expect(items2.get(0x3300)!.value[4095]).toBe(5);
    expect(Array.from(items2.get(0x3301)!.value)).toEqual([1, 2, 3]);
    buf2.release();
  });

  test("bad sizes are refused", () => {
    expect(() => send.allocateBuffer(0)).toThrow("invalid_argument");
    expect(() => send.allocateBuffer(2 ** 41)).toThrow("invalid_argument");
  });
});
