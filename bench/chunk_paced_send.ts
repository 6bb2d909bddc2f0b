/**
 * The paced sender of bench/chunks.ts: tutorial 11's heaps (timestamp i *
 * heapSize, adc_samples filled with int8(i)) at a fixed rate, which neither
 * spead2's C++ tut_11 (rate 0 only) nor spead2_send (no timestamp item) can
 * do. The same sender feeds every receiver compared. Prints "X MB/s" and
 * ends with the end-of-stream heap. Not a test.
 *
 *   bun bench/chunk_paced_send.ts -n HEAPS -H HEAP_SIZE -p PACKET_SIZE --rate BYTES_PER_S host port
 */
import { send } from "../mod.ts";
import { timestampRefHeap, tutorialItemGroup } from "../examples/send_common.ts";
import { cliArgs } from "./common.ts";

const opts: Record<string, number> = { n: 65536, H: 8192, p: 9000, rate: 200e6 };
const pos: string[] = [];
for (let i = 0; i < cliArgs.length; i++) {
  const a = cliArgs[i];
  if (a.startsWith("-")) opts[a.replace(/^-+/, "")] = Number(cliArgs[++i]);
  else pos.push(a);
}
const heapSize = opts.H;
const slots = 64;
const stream = new send.UdpStream(
  [[pos[0], Number(pos[1])]],
  new send.StreamConfig({ rate: opts.rate, maxHeaps: slots, maxPacketSize: opts.p }),
);
const ig = tutorialItemGroup(heapSize);
const samples: Int8Array[] = [];
const stamps: DataView[] = [];
const heaps: send.Heap[] = [];
const pending: Promise<number>[] = [];
for (let s = 0; s < slots; s++) {
  samples.push(new Int8Array(heapSize));
  stamps.push(new DataView(new ArrayBuffer(8)));
  ig.get("timestamp")!.value = 0; // placeholder: the heap reads its timestamp when queued
  ig.get("adc_samples")!.value = samples[s];
  heaps.push(timestampRefHeap(ig, stamps[s], { descriptors: "none" }));
  pending.push(Promise.resolve(0));
}
const start = performance.now();
for (let i = 0; i < opts.n; i++) {
  const s = i % slots;
  await pending[s]; // its last send must be done before its memory is rewritten
  samples[s].fill(i);
  stamps[s].setBigUint64(0, BigInt(i * heapSize), false);
  pending[s] = stream.asyncSendHeap(heaps[s]);
}
await Promise.all(pending);
console.log(`${((heapSize * opts.n) / ((performance.now() - start) / 1e3) / 1e6).toFixed(2)} MB/s`);
await stream.asyncSendHeap(ig.getEnd());
stream.close();
