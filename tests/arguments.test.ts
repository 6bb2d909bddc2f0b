/**
 * Issue #8: public constructors and setters check their arguments at once, name
 * the argument, and accept spead2's positional shapes; received values are
 * honest about views and byte orders.
 */
import { describe, expect, test } from "bun:test";
import { Flavour, ItemGroup, MemoryPool, MmapAllocator, recv, send, SpeadError, ThreadPool } from "../mod.ts";

function errorOf(fn: () => unknown): SpeadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpeadError) return err;
    throw new Error(`expected a SpeadError, got ${String(err)}`);
  }
  throw new Error("expected a SpeadError, nothing was thrown");
}

/** One heap with a u32 immediate, a 4-element i2 array and a bit-packed u1 array, encoded in memory. */
function sampleStream(flavour = new Flavour(4, 64, 48, 0)): recv.Stream {
  const ig = new send.ItemGroup(flavour);
  ig.addItem({ id: 0x1000, name: "counter", description: "", shape: [], format: [["u", 32]], value: 7 });
  ig.addItem({ id: 0x1001, name: "samples", description: "", shape: [4], dtype: "<i2", value: Int16Array.of(1, -2, 3, -4) });
  ig.addItem({ id: 0x1002, name: "flags", description: "", shape: [null], format: [["u", 1]], value: [1, 0, 1, 1, 0, 0, 0, 1] });
  const out = new send.BytesStream(new send.StreamConfig());
  out.sendHeap(ig.getHeap()); // descriptors and values
  ig.get("samples")!.value = Int16Array.of(5, -6, 7, -8);
  out.sendHeap(ig.getHeap()); // values only: samples first in the payload, aligned
  const rx = new recv.Stream();
  rx.addBufferReader(out.getValue());
  return rx;
}

describe("spead2's positional shapes", () => {
  test("new send.ItemGroup(new Flavour(4, 64, 48, 0)) builds SPEAD-64-48 heaps", () => {
    const ig = new send.ItemGroup(new Flavour(4, 64, 48, 0));
    expect(ig.flavour.heapAddressBits).toBe(48);
    expect(ig.getHeap().flavour.heapAddressBits).toBe(48);
    expect(new send.ItemGroup(null, new Flavour(4, 64, 48, 0)).flavour.heapAddressBits).toBe(48);
    expect(errorOf(() => new send.ItemGroup(new Flavour(), new Flavour())).message).toContain("two flavours");
  });

  test("send.BytesStream(threadPool, config) and recv.Stream(threadPool, config) work", () => {
    const config = new send.StreamConfig({ maxPacketSize: 9000 });
    const bs = new send.BytesStream(new ThreadPool(), config);
    expect(bs.config).toBe(config);
    const ig = new send.ItemGroup();
    ig.addItem({ id: 0x1000, name: "x", description: "", shape: [3000], dtype: "u1", value: new Uint8Array(3000) });
    expect(bs.sendHeap(ig.getHeap())).toBeGreaterThan(3000);
    using rx = new recv.Stream(new ThreadPool(), new recv.StreamConfig({ maxHeaps: 2 }), new recv.RingStreamConfig({ heaps: 3 }));
    expect(rx.config.maxHeaps).toBe(2);
    expect(rx.ringConfig.heaps).toBe(3);
    rx.addBufferReader(bs.getValue());
    using heap = rx.getBlocking(10_000);
    expect(new ItemGroup().update(heap).get("x")!.value).toEqual(new Uint8Array(3000));
  });

  test("send.UdpStream(threadPool, endpoints, config) sends", async () => {
    using rx = new recv.Stream();
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    using tx = new send.UdpStream(new ThreadPool(), [["127.0.0.1", port]], new send.StreamConfig({ rate: 0 }));
    const heap = new send.Heap();
    heap.addRaw(0x1000, new Uint8Array(100).fill(3));
    expect(await tx.asyncSendHeap(heap)).toBeGreaterThan(100);
    using got = await rx.get();
    expect(got.getItems().some((i) => i.id === 0x1000)).toBe(true);
  });
});

describe("wrong arguments fail at once, naming the argument and the right form", () => {
  test("configs given as options objects, or of the wrong side", () => {
    const bytes = errorOf(() => new send.BytesStream({ maxPacketSize: 9000 } as never));
    expect(bytes.code).toBe("invalid_argument");
    expect(bytes.message).toContain("config must be a send.StreamConfig");
    expect(bytes.message).toContain("send.BytesStream(threadPool, config?)");
    const stream = errorOf(() => new recv.Stream({ maxHeaps: 4 } as never));
    expect(stream.message).toContain("config must be a recv.StreamConfig");
    expect(errorOf(() => new recv.Stream(new recv.StreamConfig(), new recv.StreamConfig() as never)).message)
      .toContain("ringConfig must be a recv.RingStreamConfig (");
    expect(errorOf(() => new send.UdpStream([["127.0.0.1", 9]], new recv.StreamConfig() as never)).message)
      .toContain("config must be a send.StreamConfig");
    expect(errorOf(() => new send.ItemGroup("4" as never)).message).toContain("descriptorFrequency must be a number");
    expect(errorOf(() => new send.ItemGroup({ flavor: new Flavour() } as never)).message).toContain("unknown option flavor");
    expect(errorOf(() => new send.ItemGroup(null, {} as never)).message).toContain("flavour must be a Flavour");
  });

  test("options that are not options objects are refused, naming the argument", () => {
    expect(errorOf(() => new send.StreamConfig(9000 as never)).message).toContain("options must be send.StreamConfigOptions");
    expect(errorOf(() => new recv.StreamConfig(new Flavour() as never)).message).toContain("not a Flavour");
    expect(errorOf(() => new recv.RingStreamConfig(8 as never)).message).toContain("options must be");
    expect(errorOf(() => new MemoryPool(0, 1024, 1, 1, 5 as never)).message).toContain("options must be MemoryPoolOptions");
    expect(errorOf(() => new MmapAllocator(true as never)).message).toContain("options must be { preferHuge }");
    expect(errorOf(() => new send.Heap({} as never)).message).toContain("flavour must be a Flavour");
    expect(errorOf(() => new send.HeapReference(new send.Heap(), 5 as never)).message).toContain("options must be");
    using rx = new recv.Stream();
    expect(errorOf(() => rx.addUdpReader(0, "127.0.0.1" as never)).message).toContain("options must be UdpReaderOptions");
    expect(errorOf(() => new send.UdpStream([["127.0.0.1", 9]], undefined, 5 as never)).message).toContain("options must be");
  });

  test("ThreadPool(threads, affinity), spead2's positional form", () => {
    const tp = new ThreadPool(2, [0]);
    expect(tp.threads).toBe(2);
    expect(tp.affinity).toEqual([0]);
    expect(new ThreadPool({ threads: 3 }).threads).toBe(3);
    expect(errorOf(() => new ThreadPool(0)).code).toBe("invalid_argument");
    expect(errorOf(() => new ThreadPool("2" as never)).message).toContain("options must be ThreadPoolOptions");
  });

  test("addUdpReader checks port, maxSize, bufferSize and interfaceIndex in JS", () => {
    using rx = new recv.Stream();
    for (const [call, name] of [
      [() => rx.addUdpReader(NaN), "port"],
      [() => rx.addUdpReader(70000), "port"],
      [() => rx.addUdpReader(0, { maxSize: 0 }), "maxSize"],
      [() => rx.addUdpReader(0, { bufferSize: -1 }), "bufferSize"],
      [() => rx.addUdpReader(0, { bufferSize: 1.5 }), "bufferSize"],
      [() => rx.addUdpReader("239.1.2.3", 0, { interfaceIndex: -2 }), "interfaceIndex"],
    ] as const) {
      const err = errorOf(call);
      expect(err.code).toBe("invalid_argument");
      expect(err.message).toContain(`${name} = `);
    }
  });

  test("send.UdpStream options are checked", () => {
    expect(errorOf(() => new send.UdpStream([["127.0.0.1", 9]], undefined, { ttl: 300 })).message).toContain("ttl = 300");
    expect(errorOf(() => new send.UdpStream([["127.0.0.1", 9]], undefined, { bufferSize: -5 })).message).toContain("bufferSize");
    expect(errorOf(() => new send.UdpStream("127.0.0.1" as never)).message).toContain("endpoints must be");
  });

  test("a value of the wrong size or type is refused on assignment, naming the item", () => {
    const ig = new send.ItemGroup();
    const item = ig.addItem({ id: 0x1000, name: "four", description: "", shape: [4], dtype: "i1" });
    const err = errorOf(() => (item.value = new Int8Array(3)));
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toContain("item four");
    expect(err.message).toContain("3 elements");
    expect(item.value).toBe(null);
    expect(errorOf(() => (item.value = 5)).message).toContain("item four");
    item.value = new Int8Array(4);
    expect(item.valueShape).toEqual([4]);
    expect(errorOf(() => ig.addItem({ id: 0x1001, name: "bad", description: "", shape: [2], dtype: "u1", value: new Uint8Array(5) })).code)
      .toBe("invalid_argument");
  });
});

describe("received values", () => {
  test("valueIsView is false for immediates, true for views on the heap", () => {
    using rx = sampleStream();
    using first = rx.getBlocking(10_000);
    const ig = new ItemGroup();
    ig.update(first);
    using second = rx.getBlocking(10_000);
    ig.update(second);
    expect(ig.get("counter")!.value).toBe(7);
    expect(ig.get("counter")!.valueIsView).toBe(false);
    expect(ig.get("samples")!.value).toEqual(Int16Array.of(5, -6, 7, -8));
    expect(ig.get("samples")!.valueIsView).toBe(true);
    // A u16 dtype item small enough to be an immediate decodes to a copy, not a view.
    const small = new send.ItemGroup(new Flavour(4, 64, 48, 0));
    small.addItem({ id: 0x1003, name: "pair", description: "", shape: [2], dtype: "<u2", value: Uint16Array.of(5, 6) });
    const out = new send.BytesStream();
    out.sendHeap(small.getHeap());
    using rx2 = new recv.Stream();
    rx2.addBufferReader(out.getValue());
    using heap2 = rx2.getBlocking(10_000);
    const pair = new ItemGroup().update(heap2).get("pair")!;
    expect(pair.value).toEqual(Uint16Array.of(5, 6));
    expect(pair.valueIsView).toBe(false);
  });

  test("bit-packed arrays arrive as typed arrays", () => {
    using rx = sampleStream();
    using heap = rx.getBlocking(10_000);
    expect(new ItemGroup().update(heap).get("flags")!.value).toEqual(Uint8Array.of(1, 0, 1, 1, 0, 0, 0, 1));
  });

  test("update(heap, newOrder) honours newOrder: native orders work, the other is refused", () => {
    const native = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1 ? "<" : ">";
    const other = native === "<" ? ">" : "<";
    for (const order of ["=", "|", native] as const) {
      using rx = sampleStream();
      using heap = rx.getBlocking(10_000);
      expect(new ItemGroup().update(heap, order).get("samples")!.value).toEqual(Int16Array.of(1, -2, 3, -4));
    }
    using rx = sampleStream();
    using heap = rx.getBlocking(10_000);
    const err = errorOf(() => new ItemGroup().update(heap, other));
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toContain("newOrder");
    expect(errorOf(() => new ItemGroup().update(heap, "x" as never)).message).toContain("newOrder must be one of");
  });
});
