/**
 * The main job (README's first command): builds tutorial 2's heaps
 * (timestamp u40 + adc_samples int8[N]), encodes them into SPEAD packets with
 * the Zig core, reassembles them with a receive stream and prints the items.
 *
 *   bun examples/demo.ts [--heaps N] [--heap-size BYTES]
 *   deno run --allow-ffi --allow-env examples/demo.ts [...]
 */
import { Flavour, ItemGroup, recv, send } from "../mod.ts";

function arg(name: string, fallback: number): number {
  const argv = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
    (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
}

const nHeaps = arg("--heaps", 10);
const heapSize = arg("--heap-size", 1 << 20);

const flavour = new Flavour(4, 64, 48, 0);
const ig = new send.ItemGroup(null, flavour);
ig.addItem({ id: 0x1600, name: "timestamp", description: "Index of the first sample", shape: [], format: [["u", 40]] });
ig.addItem({ id: 0x3300, name: "adc_samples", description: "ADC converter output", shape: [heapSize], dtype: "i1" });

const stream = new send.BytesStream();
const samples = new Int8Array(heapSize);
const t0 = performance.now();
for (let i = 0; i < nHeaps; i++) {
  for (let j = 0; j < heapSize; j++) samples[j] = ((i * 31 + j * 7) % 200) - 100;
  ig.get("timestamp")!.value = i * heapSize;
  ig.get("adc_samples")!.value = samples;
  stream.sendHeap(ig.getHeap());
}
stream.sendHeap(ig.getEnd());
const bytes = stream.getValue();
const t1 = performance.now();

const rx = new recv.Stream(new recv.StreamConfig({ maxHeaps: 4 }), new recv.RingStreamConfig({ heaps: 4 }));
rx.addBufferReader(bytes);
const items = new ItemGroup();
let received = 0;
for await (const heap of rx) {
  const changed = items.update(heap);
  received++;
  if (changed.has("timestamp")) {
    const ts = items.get("timestamp")!.value;
    const adc = items.get("adc_samples")!.value as Int8Array;
    let power = 0;
    for (let j = 0; j < adc.length; j++) power += adc[j] * adc[j];
    console.log(`heap ${heap.cnt}: timestamp ${ts}, adc_samples[${adc.length}] power ${(power / adc.length).toFixed(2)}`);
  }
  heap.release(); // the values above were views into this heap: done with them
}
const t2 = performance.now();
const stats = rx.stats;
rx.close();
const mb = (nHeaps * heapSize) / 1e6;
console.log(`flavour ${flavour}, ${bytes.byteLength} bytes of packets, heaps received: ${received}`);
console.log(`stats: heaps ${stats.heaps}, packets ${stats.packets}, batches ${stats.batches}, max_batch ${stats.max_batch}`);
console.log(`encode ${(mb / ((t1 - t0) / 1e3)).toFixed(0)} MB/s, decode ${(mb / ((t2 - t1) / 1e3)).toFixed(0)} MB/s (payload)`);
