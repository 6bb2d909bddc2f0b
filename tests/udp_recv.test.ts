/** UDP receive on loopback (127.0.0.1 only) with spead2 as the sender, and MemoryPool. */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { Flavour, ItemGroup, MemoryPool, processStats, recv, send } from "../mod.ts";
import { concat, loadCases, plainValue, runInterop, startInterop, valuesMatch } from "./helpers.ts";

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

  test("a socket buffer capped by rmem_max is forced where allowed, and says so", () => {
    using s = new recv.Stream();
    const asked = 8 << 20;
    // (a child `cat`: Deno wants --allow-all to read /proc itself)
    const rmemMax = Number(spawnSync("cat", ["/proc/sys/net/core/rmem_max"], { encoding: "utf8" }).stdout.trim());
    const info = s.addUdpReader(0, { bindHostname: "127.0.0.1", bufferSize: asked });
    if (asked <= rmemMax) {
      expect(info.bufferForced).toBe(false);
    } else if (info.bufferForced) {
      expect(info.bufferSize).toBeGreaterThanOrEqual(asked); // Linux reports double what it granted
    } else {
      expect(info.bufferSize).toBeLessThanOrEqual(2 * rmemMax);
    }
  });

  test("spead2 UdpStream -> our UDP reader with a memory pool, values intact", async () => {
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

describe("payloads received in place (zig/recv/udp.zig scatter receive)", () => {
  test("1 MiB heaps in 9000-byte packets: every byte of every heap that arrives is where it belongs", async () => {
    // Large packets switch the reader to receiving payloads straight into the heaps after
    // its probe (256 packets, about two heaps); every byte differs by heap and position.
    const heapSize = 1 << 20;
    const nHeaps = 24;
    using pool = new MemoryPool(0, heapSize + 8192, 16, 8);
    using rx = new recv.Stream(
      new recv.StreamConfig({ maxHeaps: 4, memoryAllocator: pool }),
      new recv.RingStreamConfig({ heaps: 8 }),
    );
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    const pattern = (i: number) => {
      const words = new Uint32Array(heapSize / 4);
      for (let k = 0; k < words.length; k++) words[k] = (i * 0x9e3779b9 + k * 2654435761) >>> 0;
      return new Uint8Array(words.buffer);
    };
    const received: number[] = [];
    const drain = (async () => {
      for await (const heap of rx) {
        if (heap.isEndOfStream()) {
          heap.release();
          break;
        }
        const items = heap.getItems().filter((it) => it.id === 0x1000);
        expect(items).toHaveLength(1);
        const i = Number(heap.cnt) - 1;
        const want = pattern(i);
        const got = items[0].value;
        expect(got.length).toBe(heapSize);
        let same = true;
        for (let k = 0; k < heapSize && same; k++) same = got[k] === want[k];
        if (!same) throw new Error(`heap ${heap.cnt}: payload differs from what was sent`);
        received.push(i);
        heap.release();
      }
    })();
    {
      using tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig({ maxPacketSize: 9000, rate: 200e6 }));
      for (let i = 0; i < nHeaps; i++) {
        const h = new send.Heap(new Flavour());
        h.addRaw(0x1000, pattern(i));
        await tx.asyncSendHeap(h);
      }
      const end = new send.Heap(new Flavour());
      end.addEnd();
      await tx.asyncSendHeap(end);
    }
    await drain;
    // 200 MB/s on loopback: none should be lost, but UDP gives no promise.
    expect(received.length).toBeGreaterThanOrEqual(nHeaps - 2);
    expect(rx.stats.packets).toBeGreaterThan(256);
  });
});

/** Receives until `ends` end-of-stream heaps; returns the item group and the heaps' cnts. */
async function receiveAll(s: recv.Stream, ends: number) {
  const ig = new ItemGroup();
  const cnts: bigint[] = [];
  let seenEnds = 0;
  let starts = 0;
  for await (const heap of s) {
    if (heap.isEndOfStream()) {
      heap.release();
      if (++seenEnds === ends) break;
      continue;
    }
    if (heap.isStartOfStream()) starts++;
    cnts.push(heap.cnt);
    ig.update(heap, "=", { copy: true });
    const adc = ig.get("adc_samples");
    if (adc && adc.value !== null) {
      const v = adc.value as Int8Array;
      const ts = Number(ig.get("scalar_u40")!.value);
      if (v[0] !== ts % 100 || v[v.length - 1] !== ts % 100) throw new Error(`bad samples in heap ${heap.cnt}`);
    }
    heap.release();
  }
  return { ig, cnts, starts };
}

describe("spead2 UdpStream -> our receiver (interop over UDP, 127.0.0.1)", () => {
  const matrix: Array<[number, number, boolean, string]> = [
    // hab, substreams, allowOutOfOrder, sender options
    [40, 1, false, "packet=1472"],
    [48, 1, true, "packet=9000"],
    [40, 2, false, "packet=9000 groups=2 mode=rr"],
    [48, 2, true, "packet=1472 groups=2 mode=serial"],
  ];
  for (const [hab, substreams, ooo, opts] of matrix) {
    test(`SPEAD-64-${hab}, ${substreams} substream(s), out-of-order ${ooo}, ${opts}: every heap and value`, async () => {
      const cases = loadCases();
      using s = new recv.Stream(
        new recv.StreamConfig({ maxHeaps: 8, substreams, allowOutOfOrder: ooo, stopOnStopItem: false }),
        new recv.RingStreamConfig({ heaps: 32 }),
      );
      const ports = Array.from({ length: substreams }, () => s.addUdpReader(0, { bindHostname: "127.0.0.1" }).port);
      const nHeaps = 10;
      const sender = startInterop(["udp-send", String(hab), "0", ports.join(","), String(nHeaps), "20000", "start=1", ...opts.split(" ")]);
      const got = await receiveAll(s, substreams);
      await (await sender).done;
      expect(got.starts).toBe(1);
      expect(got.cnts).toHaveLength(nHeaps + 2); // start heap + cases heap + nHeaps
      expect([...got.cnts].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: nHeaps + 2 }, (_, i) => BigInt(i + 1)));
      for (const c of cases) {
        if (c.name === "scalar_u40") continue; // overwritten by the heap index
        const v = plainValue(got.ig.get(c.name)!.value);
        if (!valuesMatch(v, c.value)) throw new Error(`${c.name}: got ${JSON.stringify(v)}, want ${JSON.stringify(c.value)}`);
      }
      expect(s.stats.packets).toBeGreaterThan(nHeaps * 2);
    });
  }
});

/** Sends our packets as individual datagrams through the Python helper. */
function sendRaw(port: number, packets: Uint8Array[], delayUs = 50): void {
  runInterop(["udp-raw", String(port), String(delayUs)], concat(packets));
}

describe("loss and disorder over UDP (our packets, sent one datagram each)", () => {
  const f = new Flavour(4, 64, 48, 0);
  const heapPackets = (cnt: number, size = 6000) => {
    const h = new send.Heap(f);
    h.addImmediate(0x1600, cnt);
    h.addRaw(0x3300, new Uint8Array(size).fill(cnt));
    return [...new send.PacketGenerator(h, BigInt(cnt), 1472)];
  };

  test("dropped, duplicated and reordered packets: counts, incomplete heaps and stats as spead2", () => {
    using s = new recv.Stream(
      new recv.StreamConfig({ maxHeaps: 2, allowOutOfOrder: true }),
      new recv.RingStreamConfig({ heaps: 32, contiguousOnly: false }),
    );
    const { port } = s.addUdpReader(0, { bindHostname: "127.0.0.1" });
    const h = [1, 2, 3, 4, 5, 6].map((c) => heapPackets(c));
    expect(h[0].length).toBe(5);
    const end = new send.Heap(f);
    end.addEnd();
    const packets = [
      ...h[0], // complete
      h[1][0], h[1][1], h[1][1], h[1][0], h[1][2], h[1][3], h[1][4], // duplicates while the heap is live
      h[2][4], h[2][2], h[2][0], h[2][3], h[2][1], // reordered
      h[3][0], h[3][1], h[3][3], h[3][4], // packet 2 dropped -> incomplete
      ...h[4], ...h[5], // heap 4 is evicted (max_heaps 2) once heap 6 starts
      ...new send.PacketGenerator(end, 7n, 1472),
    ];
    sendRaw(port, packets);
    const heaps: recv.Heap[] = [];
    for (const heap of s) heaps.push(heap);
    const complete = heaps.filter((x) => !(x instanceof recv.IncompleteHeap)).map((x) => x.cnt);
    const incomplete = heaps.filter((x) => x instanceof recv.IncompleteHeap);
    expect(complete).toEqual([1n, 2n, 3n, 5n, 6n]);
    expect(incomplete.map((x) => x.cnt)).toEqual([4n]);
    expect(incomplete[0].receivedLength).toBe(6000 - 1432);
    // (a duplicate arriving after its heap completed would start a new, incomplete heap: spead2 does the same)
    const st = s.stats;
    expect(st.heaps).toBe(6);
    expect(st.incomplete_heaps_evicted).toBe(1);
    expect(st.packets).toBe(packets.length);
    expect(st.packets_rejected_duplicate).toBe(2);
    for (const x of heaps) x.release();
  });

  test("in-order mode drops a reordered heap; the rest arrive", () => {
    using s = new recv.Stream(new recv.StreamConfig({ maxHeaps: 4 }), new recv.RingStreamConfig({ heaps: 16 }));
    const { port } = s.addUdpReader(0, { bindHostname: "127.0.0.1" });
    const h = [1, 2, 3].map((c) => heapPackets(c));
    const end = new send.Heap(f);
    end.addEnd();
    sendRaw(port, [...h[0], h[1][1], h[1][0], h[1][2], h[1][3], h[1][4], ...h[2], ...new send.PacketGenerator(end, 9n, 1472)]);
    const got = [...s].map((x) => {
      x.release();
      return x.cnt;
    });
    expect(got).toEqual([1n, 3n]);
  });
});

function minorFaults(): number {
  return processStats().minorFaults;
}

describe("pre-faulted memory pool", () => {
  test("minor page faults do not grow per heap once warm with a pool", () => {
    const heapSize = 1 << 20;
    const n = 40;
    const bytes = (() => {
      const b = new send.BytesStream(new send.StreamConfig({ maxPacketSize: 9000 }));
      const h = new send.Heap();
      h.addRaw(0x3300, new Uint8Array(heapSize));
      for (let i = 0; i < n; i++) b.sendHeap(h);
      return b.getValue();
    })();
    const faultsPerHeap = (config: recv.StreamConfig) => {
      using s = new recv.Stream(config, new recv.RingStreamConfig({ heaps: 4 }));
      s.addBufferReader(bytes);
      let i = 0;
      let start = 0;
      for (const heap of s) {
        if (i === 10) start = minorFaults(); // warm: the first heaps fault in code paths and rings
        heap.release();
        i++;
      }
      return (minorFaults() - start) / (n - 10);
    };
    using pool = new MemoryPool(0, heapSize, 12, 12);
    const withPool = faultsPerHeap(new recv.StreamConfig({ memoryAllocator: pool }));
    // 256 pages per 1 MiB heap; with the pool only stray faults of the JS engine remain.
    // (Without a pool glibc usually recycles the freed blocks too once its mmap threshold
    // has adapted, so that case is measured in bench/recv, not asserted here.)
    expect(withPool).toBeLessThan(4);
  });
});

describe("shutdown", () => {
  test("stop while packets are arriving ends iteration promptly and joins the reader", async () => {
    const s = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig({ heaps: 2 }));
    const { port } = s.addUdpReader(0, { bindHostname: "127.0.0.1" });
    const sender = await startInterop(["udp-send", "40", "0", String(port), "200", "100000", "rate=50e6"]);
    let n = 0;
    const t0 = Date.now();
    for await (const heap of s) {
      heap.release();
      if (++n === 3) s.stop();
      if (Date.now() - t0 > 10_000) throw new Error("iteration did not end after stop");
    }
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThan(20);
    s.close();
    sender.kill();
    await sender.done.catch(() => undefined);
  });

  test("heaps held across close stay valid; double release and access after release are safe", () => {
    const b = new send.BytesStream();
    const h = new send.Heap();
    h.addRaw(0x1000, new Uint8Array(5000).fill(7));
    b.sendHeap(h);
    b.sendHeap(h);
    const s = new recv.Stream();
    s.addBufferReader(b.getValue());
    const heap = s.getBlocking(5000);
    s.close();
    expect(heap.getItems()[0].value[4999]).toBe(7);
    heap.release();
    heap.release();
    expect(() => heap.getItems()).toThrow("released");
  });

  test("many streams opened and closed leak no threads or file descriptors", () => {
    const make = () => {
      const s = new recv.Stream();
      s.addUdpReader(0, { bindHostname: "127.0.0.1" });
      s.addBufferReader(new Uint8Array(64));
      return s;
    };
    make().close(); // warm up lazily created runtime threads
    const before = processStats();
    for (let i = 0; i < 50; i++) make().close();
    const after = processStats();
    expect(before.openFds).toBeGreaterThan(2);
    expect(after.openFds).toBeLessThanOrEqual(before.openFds + 2);
    expect(after.threads).toBeLessThanOrEqual(before.threads + 2);
  });
});
