/**
 * Tutorial 4 sender (spead2 `examples/tutorial/tut_4_send_perf.py`): sends
 * `-n` heaps of 1 MiB (a timestamp and int8 samples filled with the heap
 * index) as fast as possible, one blocking `sendHeap` at a time, and prints
 * the payload rate as "<x> MB/s"; then an end-of-stream heap.
 *
 *   bun examples/tut_4_send_perf.ts [-n HEAPS] host port
 *   deno run --allow-ffi --allow-env examples/tut_4_send_perf.ts [-n HEAPS] host port
 *
 * spead2 pins its I/O thread to core 0 and the main thread to core 1; this
 * library has no affinity control, so both threads float.
 */
import { send } from "../mod.ts";
import { endpoint, HEAPS, parseArgs, printRate, seconds, tutorialItemGroup } from "./send_common.ts";

const prog = "tut_4_send_perf.ts";
const { options, positionals } = parseArgs(prog, [HEAPS], ["host", "port"]);

const config = new send.StreamConfig({ rate: 0 });
using stream = new send.UdpStream([endpoint(prog, positionals)], config);
const heapSize = 1024 * 1024;
const itemGroup = tutorialItemGroup(heapSize);

const nHeaps = options.heaps!;
const start = seconds();
for (let i = 0; i < nHeaps; i++) {
  itemGroup.get("timestamp")!.value = i * heapSize;
  itemGroup.get("adc_samples")!.value = new Int8Array(heapSize).fill(i); // wraps to int8 as numpy's cast does
  const heap = itemGroup.getHeap();
  stream.sendHeap(heap);
}
const elapsed = seconds() - start;
printRate(heapSize * nHeaps, elapsed);

stream.sendHeap(itemGroup.getEnd());
