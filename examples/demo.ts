/**
 * The main job (README's first command): a sender and a receiver on loopback.
 *
 * The receiver listens on 127.0.0.1 (an ephemeral port) with a MemoryPool;
 * the sender sends tutorial 2's items (timestamp u40 + adc_samples int8[N])
 * with send.UdpStream, pipelined two heaps deep, then an end-of-stream heap.
 * The receiver decodes every heap with an ItemGroup, checks the samples and
 * prints a line per heap (the first few) and the figures at the end.
 *
 *   bun examples/demo.ts [--heaps N] [--heap-size BYTES] [--packet-size BYTES] [--rate MB/s]
 *   deno run --allow-ffi --allow-env examples/demo.ts [...]
 */
import { Flavour, ItemGroup, MemoryPool, recv, send } from "../mod.ts";

function arg(name: string, fallback: number): number {
  const argv = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
    (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

const nHeaps = arg("--heaps", 200);
const heapSize = arg("--heap-size", 1 << 20);
const packetSize = arg("--packet-size", 8972);
const rateMBs = arg("--rate", 1000);
const shown = 5;

// Receiver: pool sized as tutorial 9 does (max_heaps + ring heaps + 1, plus room for descriptors).
const maxHeaps = 4;
const ringHeaps = 8;
const pool = new MemoryPool(0, heapSize + 8192, maxHeaps + ringHeaps + 2, maxHeaps + ringHeaps + 2);
const rx = new recv.Stream(
  new recv.StreamConfig({ maxHeaps, memoryAllocator: pool }),
  new recv.RingStreamConfig({ heaps: ringHeaps }),
);
const { port, bufferSize } = rx.addUdpReader(0, { bindHostname: "127.0.0.1", maxSize: packetSize });

const flavour = new Flavour(4, 64, 48, 0);
const runtime = "Bun" in globalThis
  ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;
console.log(
  `${runtime}: ${nHeaps} heaps of ${heapSize} bytes, ${flavour}, packets <= ${packetSize} bytes, ` +
    `127.0.0.1:${port} (SO_RCVBUF ${bufferSize}), rate ${rateMBs ? `${rateMBs} MB/s` : "unlimited"}`,
);

async function receive(): Promise<{ heaps: number; bad: number; seconds: number }> {
  const items = new ItemGroup();
  let heaps = 0;
  let bad = 0;
  let t0 = 0;
  for await (const heap of rx) {
    if (heaps === 0) t0 = performance.now();
    items.update(heap);
    const ts = Number(items.get("timestamp")!.value);
    const adc = items.get("adc_samples")!.value as Int8Array;
    const i = ts / heapSize;
    // the sender writes sample j of heap i as (i + j) % 200 - 100
    if (adc.length !== heapSize || adc[0] !== (i % 200) - 100 || adc[heapSize - 1] !== ((i + heapSize - 1) % 200) - 100) {
      bad++;
    }
    if (heaps < shown) {
      let power = 0;
      for (let j = 0; j < adc.length; j++) power += adc[j] * adc[j];
      console.log(`heap ${heap.cnt}: timestamp ${ts}, adc_samples[${adc.length}] mean power ${(power / adc.length).toFixed(2)}`);
    } else if (heaps === shown) console.log("...");
    heaps++;
    heap.release(); // the values above were views into this heap's pool buffer
  }
  return { heaps, bad, seconds: (performance.now() - t0) / 1e3 };
}

async function transmit(): Promise<{ seconds: number }> {
  const ig = new send.ItemGroup(null, flavour);
  ig.addItem({ id: 0x1600, name: "timestamp", description: "Index of the first sample", shape: [], format: [["u", 40]] });
  ig.addItem({ id: 0x3300, name: "adc_samples", description: "ADC converter output", shape: [heapSize], dtype: "i1" });
  const config = new send.StreamConfig({ maxPacketSize: packetSize, rate: rateMBs * 1e6, maxHeaps: 2 });
  using tx = new send.UdpStream([["127.0.0.1", port]], config);
  // Double buffering as in tutorial 8: a buffer is refilled only once its previous send completed.
  // Native send buffers are sent in place (JS arrays would be copied at each send).
  const buffers = [0, 1].map(() => new Int8Array(send.allocateBuffer(heapSize).bytes.buffer));
  const pattern = Int8Array.from({ length: heapSize + 200 }, (_, j) => (j % 200) - 100);
  const inFlight: Array<Promise<number>> = [Promise.resolve(0), Promise.resolve(0)];
  const t0 = performance.now();
  for (let i = 0; i < nHeaps; i++) {
    const k = i % 2;
    await inFlight[k];
    const buf = buffers[k];
    buf.set(pattern.subarray(i % 200, (i % 200) + heapSize));
    ig.get("timestamp")!.value = i * heapSize;
    ig.get("adc_samples")!.value = buf;
    inFlight[k] = tx.asyncSendHeap(ig.getHeap());
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - t0) / 1e3;
  await tx.asyncSendHeap(ig.getEnd());
  return { seconds };
}

const [r, t] = await Promise.all([receive(), transmit()]);
const stats = rx.stats;
const poolStats = pool.stats;
rx.close();
pool.close();
const mb = (heapSize * nHeaps) / 1e6;
console.log(`sent ${nHeaps} heaps in ${t.seconds.toFixed(3)} s: ${(mb / t.seconds).toFixed(0)} MB/s of payload`);
console.log(
  `received ${r.heaps}/${nHeaps} heaps (${r.bad} with wrong samples), ${(heapSize * r.heaps / 1e6 / r.seconds).toFixed(0)} MB/s`,
);
console.log(
  `stats: heaps ${stats.heaps}, packets ${stats.packets}, batches ${stats.batches}, max_batch ${stats.max_batch}, ` +
    `incomplete_heaps_evicted ${stats.incomplete_heaps_evicted}, worker_blocked ${stats.worker_blocked}; ` +
    `pool misses ${poolStats.misses}`,
);
