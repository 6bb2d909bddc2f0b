/**
 * Tutorial 10 sender (spead2 `examples/tutorial/tut_10_send_reuse_heaps.py`):
 * heaps are built once and sent again and again. There are
 * `max(2, 1 MiB / heapSize)` States (the pipeline depth, also `maxHeaps`),
 * each owning a sample buffer, a timestamp in memory and a heap that refers
 * to both. Heap 0 is a separate heap that also carries the descriptors.
 * For heap i the loop awaits the state's previous send, rewrites the samples
 * and the timestamp in place, and queues the same heap object again.
 *
 *   bun examples/tut_10_send_reuse_heaps.ts [-n HEAPS] [-p PACKET_SIZE] [-H HEAP_SIZE] host port
 *   deno run --allow-ffi --allow-env examples/tut_10_send_reuse_heaps.ts [...] host port
 *
 * The timestamp lives in an 8-byte big-endian buffer, of which the last 5
 * bytes (SPEAD-64-40) are the value, as in spead2's C++ version. It is still
 * sent as an immediate item, as spead2 sends it: `timestampRefHeap` in
 * send_common.ts adds those bytes with `addRaw(id, bytes, true)`, which reads
 * them each time the heap is sent.
 */
import { send } from "../mod.ts";
import {
  endpoint,
  exit,
  HEAP_SIZE,
  HEAPS,
  PACKET_SIZE,
  parseArgs,
  printRate,
  seconds,
  timestampRefHeap,
  tutorialItemGroup,
} from "./send_common.ts";

/** One pipeline slot: sample memory, timestamp memory, the heap referring to them, and its last send. */
class State {
  future: Promise<number> = Promise.resolve(0);
  constructor(readonly adcSamples: Int8Array, readonly timestamp: DataView, readonly heap: send.Heap) {}
}

const prog = "tut_10_send_reuse_heaps.ts";
const { options, positionals } = parseArgs(prog, [HEAPS, PACKET_SIZE, HEAP_SIZE], ["host", "port"]);

const heapSize = options.heapSize!;
if (!(heapSize > 0)) {
  console.error(`${prog}: error: heap size must be positive`);
  exit(2);
}
const config = new send.StreamConfig({
  rate: 0,
  maxHeaps: Math.max(2, Math.floor((1024 * 1024) / heapSize)),
  maxPacketSize: options.packetSize,
});
using stream = new send.UdpStream([endpoint(prog, positionals)], config);
const itemGroup = tutorialItemGroup(heapSize);

const nHeaps = options.heaps!;
const states: State[] = [];
for (let i = 0; i < config.maxHeaps; i++) {
  // Sent in place (a JS array would be copied at each send; README "Send buffers").
  const adcSamples = new Int8Array(send.allocateBuffer(heapSize).bytes.buffer).fill(1);
  const timestamp = new DataView(new ArrayBuffer(8));
  itemGroup.get("timestamp")!.value = 0; // placeholder: the heap reads `timestamp` when queued
  itemGroup.get("adc_samples")!.value = adcSamples;
  const heap = timestampRefHeap(itemGroup, timestamp, { descriptors: "none" });
  states.push(new State(adcSamples, timestamp, heap));
}
itemGroup.get("timestamp")!.value = 0;
itemGroup.get("adc_samples")!.value = states[0].adcSamples;
const firstHeap = timestampRefHeap(itemGroup, states[0].timestamp, { descriptors: "all" });

const start = seconds();
for (let i = 0; i < nHeaps; i++) {
  const state = states[i % states.length];
  await state.future; // the slot's previous heap must be sent before its memory is rewritten
  state.adcSamples.fill(i);
  state.timestamp.setBigUint64(0, BigInt(i * heapSize), false);
  const heap = i === 0 ? firstHeap : state.heap;
  state.future = stream.asyncSendHeap(heap);
}
for (const state of states) await state.future;
const elapsed = seconds() - start;
printRate(heapSize * nHeaps, elapsed);

await stream.asyncSendHeap(itemGroup.getEnd());
