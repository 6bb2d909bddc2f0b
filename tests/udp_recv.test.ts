/** UDP receive on loopback (127.0.0.1 only) with spead2 as the sender, and MemoryPool. */
import { describe, expect, test } from "bun:test";
import { ItemGroup, MemoryPool, recv, send } from "../mod.ts";
import { hasPython, runInterop } from "./helpers.ts";

describe("MemoryPool", () => {
  test("buffers are pre-allocated, reused after release, and bypassed outside [lower, upper]", () => {
    using pool = new MemoryPool(1024, 65536, 4, 2);
    expect(pool.stats.free).toBe(2);
    expect(pool.stats.allocated).toBe(2);
    const heaps = new send.BytesStream();
    for (let i = 0; i < 3; i++) {
      const h = new send.Heap();
      h.addRaw(0x1000, new Uint8Array(30000).fill(i));
      heaps.sendHeap(h);
    }
    const small = new send.Heap();
    small.addRaw(0x1000, new Uint8Array(10));
    heaps.sendHeap(small);
    using s = new recv.Stream(new recv.StreamConfig({ memoryAllocator: pool }), new recv.RingStreamConfig({ heaps: 8 }));
    s.addBufferReader(heaps.getValue());
    const got = [...s];
    expect(got).toHaveLength(4);
    expect(got[2].getItems()[0].value[0]).toBe(2);
    expect(pool.stats.outstanding).toBe(4);
    expect(pool.stats.bypassed).toBe(1);
    expect(pool.stats.misses).toBe(1); // the third 30000-byte heap found the pool empty
    for (const h of got) h.release();
    expect(pool.stats.outstanding).toBe(0);
    expect(pool.stats.free).toBe(3);
  });

  test("closing a pool with heaps outstanding keeps their memory valid", () => {
    const pool = new MemoryPool(0, 4096, 2, 1);
    const b = new send.BytesStream();
    const h = new send.Heap();
    h.addRaw(0x1000, new Uint8Array(100).fill(9));
    b.sendHeap(h);
    using s = new recv.Stream(new recv.StreamConfig({ memoryAllocator: pool }));
    s.addBufferReader(b.getValue());
    const heap = s.getBlocking(5000);
    pool.close();
    pool.close();
    expect(() => pool.stats).toThrow("closed");
    expect(heap.getItems()[0].value[99]).toBe(9);
    heap.release();
  });

  test("invalid pool configs are refused", () => {
    expect(() => new MemoryPool(100, 10, 1, 1)).toThrow("invalid_argument");
    expect(() => new MemoryPool(0, 10, 1, 2)).toThrow("invalid_argument");
    expect(() => new MemoryPool(-1, 10, 1, 1)).toThrow("invalid_argument");
  });
});

describe("recv.Stream.addUdpReader on 127.0.0.1", () => {
  test("reports the bound port; bad addresses are errors", () => {
    using s = new recv.Stream();
    const info = s.addUdpReader(0, { bindHostname: "127.0.0.1" });
    expect(info.port).toBeGreaterThan(0);
    expect(info.bufferSize).toBeGreaterThan(0);
    expect(() => s.addUdpReader(0, { bindHostname: "not an address" })).toThrow("invalid_argument");
    expect(() => s.addUdpReader(70000)).toThrow("invalid_argument");
    s.stop();
    expect(() => s.addUdpReader(0, { bindHostname: "127.0.0.1" })).toThrow(/stopped|closed/);
  });

  test("spead2 UdpStream -> our UDP reader with a memory pool, values intact", async () => {
    if (!hasPython) return;
    const heapSize = 65536;
    using pool = new MemoryPool(0, heapSize + 8192, 12, 8);
    using s = new recv.Stream(
      new recv.StreamConfig({ maxHeaps: 4, memoryAllocator: pool }),
      new recv.RingStreamConfig({ heaps: 16 }),
    );
    const { port } = s.addUdpReader(0, { bindHostname: "127.0.0.1" });
    const ig = new ItemGroup();
    const timestamps: number[] = [];
    const sender = Promise.resolve().then(() => runInterop(["udp-send", "40", "0", String(port), "20", String(heapSize)]));
    const drain = (async () => {
      for await (const heap of s) {
        const changed = ig.update(heap);
        if (changed.has("adc_samples")) {
          const v = ig.get("adc_samples")!.value as Int8Array;
          const ts = Number(ig.get("scalar_u40")!.value);
          expect(v.length).toBe(heapSize);
          expect(v[0]).toBe(ts % 100);
          expect(v[heapSize - 1]).toBe(ts % 100);
          timestamps.push(ts);
        }
        heap.release();
      }
    })();
    await sender;
    await drain;
    expect(ig.get("text")!.value).toBe("hello spead");
    // Loopback at 200 MB/s with a 16-heap ring: nothing should be lost, but UDP gives no promise.
    expect(timestamps.length).toBeGreaterThanOrEqual(18);
    expect(timestamps).toEqual([...timestamps].sort((a, b) => a - b));
    const st = s.stats;
    expect(st.packets).toBeGreaterThan(20);
    expect(st.batches).toBeGreaterThan(0);
  });
});
