/** send.UdpStream on loopback (127.0.0.1 / ::1 only): to our receiver and to spead2's. */
import { describe, expect, test } from "bun:test";
import { Flavour, ItemGroup, recv, send } from "../mod.ts";
import { hasPython, runInterop, startInterop } from "./helpers.ts";

const ramp = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);

function tutorialHeap(flavour: Flavour, data: Uint8Array, ts: number): send.Heap {
  const h = new send.Heap(flavour);
  h.addImmediate(0x1600, ts);
  h.addRaw(0x3300, data);
  return h;
}

describe("send.UdpStream -> recv.Stream over 127.0.0.1", () => {
  test("asyncSendHeap resolves with the bytes sent; heaps arrive intact and in order", async () => {
    using rx = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig({ heaps: 16 }));
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    using tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig({ rate: 500e6, maxHeaps: 4 }));
    const f = new Flavour();
    const datas = Array.from({ length: 8 }, (_, i) => ramp(100_000, i));
    const sent: number[] = [];
    for (let i = 0; i < datas.length; i += 2) {
      // two in flight at a time: the buffers stay untouched until their Promise settles
      sent.push(...await Promise.all([
        tx.asyncSendHeap(tutorialHeap(f, datas[i], i)),
        tx.asyncSendHeap(tutorialHeap(f, datas[i + 1], i + 1)),
      ]));
    }
    const end = new send.Heap(f);
    end.addEnd();
    await tx.asyncSendHeap(end);
    expect(sent.every((b) => b > 100_000 && b < 110_000)).toBe(true);
    const got: Array<[bigint, number]> = [];
    for await (const heap of rx) {
      const items = heap.getItems();
      const ts = Number(items.find((x) => x.id === 0x1600)!.immediateValue);
      const data = items.find((x) => x.id === 0x3300)!.value;
      expect(data.byteLength).toBe(100_000);
      expect(data[12345]).toBe(datas[ts][12345]);
      got.push([heap.cnt, ts]);
      heap.release();
    }
    expect(got.map((g) => g[1])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(got.map((g) => g[0])).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
    const st = tx.stats;
    expect(st.heaps).toBe(9);
    expect(st.packets).toBeGreaterThan(8 * 68);
  });

  test("a full queue rejects with queue_full; sync sendHeap and flush work", async () => {
    using rx = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig({ heaps: 64 }));
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    using tx = new send.UdpStream(["127.0.0.1", port], new send.StreamConfig({ rate: 20e6, maxHeaps: 2 }));
    const f = new Flavour();
    const data = ramp(200_000, 1);
    const a = tx.asyncSendHeap(tutorialHeap(f, data, 0));
    const b = tx.asyncSendHeap(tutorialHeap(f, data, 1));
    const c = tx.asyncSendHeap(tutorialHeap(f, data, 2));
    await expect(c).rejects.toThrow("queue_full");
    await Promise.all([a, b]);
    const n = tx.sendHeap(tutorialHeap(f, data, 3));
    expect(n).toBeGreaterThan(200_000);
    tx.flush();
    expect(tx.stats.queue_full).toBe(1);
  });

  test("sendHeaps: SERIAL and ROUND_ROBIN groups, explicit cnt and cnt sequence", async () => {
    using rx = new recv.Stream(new recv.StreamConfig({ maxHeaps: 8 }), new recv.RingStreamConfig({ heaps: 16 }));
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    using tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig({ maxHeaps: 8, rate: 200e6 }));
    const f = new Flavour();
    tx.setCntSequence(100, 10);
    await tx.asyncSendHeaps([0, 1, 2].map((i) => tutorialHeap(f, ramp(5000, i), i)), send.GroupMode.ROUND_ROBIN);
    await tx.asyncSendHeaps(
      [3, 4].map((i) => new send.HeapReference(tutorialHeap(f, ramp(5000, i), i), { cnt: 7000 + i })),
      send.GroupMode.SERIAL,
    );
    await expect(tx.asyncSendHeaps([])).rejects.toThrow("invalid_argument");
    const end = new send.Heap(f);
    end.addEnd();
    tx.sendHeap(end);
    const cnts: bigint[] = [];
    for await (const heap of rx) {
      cnts.push(heap.cnt);
      heap.release();
    }
    expect(cnts.slice().sort((x, y) => Number(x - y))).toEqual([100n, 110n, 120n, 7003n, 7004n]);
  });

  test("bad endpoints and configs are errors, closed streams throw", async () => {
    expect(() => new send.UdpStream([["no such host", 1]])).toThrow("invalid_argument");
    expect(() => new send.UdpStream([])).toThrow("invalid_argument");
    expect(() => new send.UdpStream([["127.0.0.1", 70000]])).toThrow("invalid_argument");
    const tx = new send.UdpStream([["127.0.0.1", 9]]);
    tx.close();
    tx.close();
    await expect(tx.asyncSendHeap(new send.Heap())).rejects.toThrow("closed");
  });

  test("IPv6 loopback", async () => {
    using rx = new recv.Stream();
    const { port } = rx.addUdpReader(0, { bindHostname: "::1" });
    using tx = new send.UdpStream([["::1", port]]);
    const f = new Flavour();
    await tx.asyncSendHeap(tutorialHeap(f, ramp(3000, 5), 5));
    const heap = await rx.get();
    expect(Number(heap.getItems().find((x) => x.id === 0x1600)!.immediateValue)).toBe(5);
    heap.release();
  });
});

describe("send.UdpStream -> spead2 receiver (interop over UDP)", () => {
  for (const [hab, bugCompat] of [[40, 0], [48, 0]] as const) {
    test(`SPEAD-64-${hab}: item group heaps decoded by spead2`, async () => {
      if (!hasPython) return;
      const cases = JSON.parse(new TextDecoder().decode(runInterop(["cases"]))) as Array<{ name: string }>;
      const child = await startInterop(["udp-recv", String(hab), String(bugCompat)]);
      const ready = await child.ready;
      const port = Number(ready.split(" ")[1]);
      expect(port).toBeGreaterThan(0);
      const ig = new send.ItemGroup(null, new Flavour(4, 64, hab, bugCompat));
      ig.addItem({ id: 0x1600, name: "timestamp", description: "ts", shape: [], format: [["u", 40]] });
      ig.addItem({ id: 0x3300, name: "adc_samples", description: "samples", shape: [50000], dtype: "i1" });
      using tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig({ rate: 100e6 }));
      for (let i = 0; i < 5; i++) {
        ig.get("timestamp")!.value = i * 50000;
        ig.get("adc_samples")!.value = new Int8Array(50000).fill(i);
        await tx.asyncSendHeap(ig.getHeap());
      }
      await tx.asyncSendHeap(ig.getEnd());
      const out = JSON.parse(await child.done) as { _heaps: number; _cnts: number[]; timestamp: number };
      expect(out._heaps).toBe(5);
      expect(out._cnts).toEqual([1, 2, 3, 4, 5]);
      expect(out.timestamp).toBe(4 * 50000);
      expect(cases.length).toBeGreaterThan(0);
    });
  }
});
