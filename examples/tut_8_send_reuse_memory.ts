/**
 * Tutorial 8 sender (spead2 `examples/tutorial/tut_8_send_reuse_memory.py`):
 * the pipelined sender of tutorial 6 with a `-H/--heap-size` option, reusing
 * the sample memory. Two State objects, made up front, each own a sample
 * buffer and the Promise of the last heap sent from it (initially resolved).
 * Heap i uses `states[i % 2]`: it first awaits that state's previous send,
 * then refills the buffer in place and queues a new heap referring to it.
 *
 *   bun examples/tut_8_send_reuse_memory.ts [-n HEAPS] [-p PACKET_SIZE] [-H HEAP_SIZE] host port
 *   deno run --allow-ffi --allow-env examples/tut_8_send_reuse_memory.ts [...] host port
 */
import { send } from "../mod.ts";
import {
  endpoint,
  HEAP_SIZE,
  HEAPS,
  PACKET_SIZE,
  parseArgs,
  printRate,
  seconds,
  tutorialItemGroup,
} from "./send_common.ts";

/** A reusable sample buffer and the send that last used it. */
class State {
  /** Resolved from the start, so the first wait on it returns at once. */
  future: Promise<number> = Promise.resolve(0);
  constructor(readonly adcSamples: Int8Array) {}
}

const prog = "tut_8_send_reuse_memory.ts";
const { options, positionals } = parseArgs(prog, [HEAPS, PACKET_SIZE, HEAP_SIZE], ["host", "port"]);

const config = new send.StreamConfig({ rate: 0, maxHeaps: 2, maxPacketSize: options.packetSize });
using stream = new send.UdpStream([endpoint(prog, positionals)], config);
const heapSize = options.heapSize!;
const itemGroup = tutorialItemGroup(heapSize);

const nHeaps = options.heaps!;
// Native send buffers: sent without a copy, pre-faulted, on huge pages where the kernel gives them.
const states = [0, 1].map(() => {
  const b = send.allocateBuffer(heapSize, { preferHuge: true }).bytes;
  return new State(new Int8Array(b.buffer, b.byteOffset, heapSize).fill(1));
});
const start = seconds();
for (let i = 0; i < nHeaps; i++) {
  const state = states[i % states.length];
  await state.future; // the previous heap from this buffer must be sent before it is refilled
  state.adcSamples.fill(i);
  itemGroup.get("timestamp")!.value = i * heapSize;
  itemGroup.get("adc_samples")!.value = state.adcSamples;
  const heap = itemGroup.getHeap();
  state.future = stream.asyncSendHeap(heap);
}
for (const state of states) await state.future;
const elapsed = seconds() - start;
printRate(heapSize * nHeaps, elapsed);

await stream.asyncSendHeap(itemGroup.getEnd());
