/**
 * Tutorial 5 sender (spead2 `examples/tutorial/tut_5_send_pipeline.py`): as
 * tutorial 4, but pipelined. With `maxHeaps: 2`, heap i is queued with
 * `asyncSendHeap` before the Promise of heap i-1 is awaited, so the I/O
 * thread always has the next heap ready. Each heap's State keeps its sample
 * buffer alive: `asyncSendHeap` does not copy the data, so a buffer must stay
 * unchanged until its Promise settles.
 *
 *   bun examples/tut_5_send_pipeline.ts [-n HEAPS] host port
 *   deno run --allow-ffi --allow-env examples/tut_5_send_pipeline.ts [-n HEAPS] host port
 */
import { send } from "../mod.ts";
import { endpoint, HEAPS, parseArgs, printRate, seconds, tutorialItemGroup } from "./send_common.ts";

/** One heap in flight: its completion Promise (which also holds the heap and its buffers). */
interface State {
  future: Promise<number>;
}

const prog = "tut_5_send_pipeline.ts";
const { options, positionals } = parseArgs(prog, [HEAPS], ["host", "port"]);

const config = new send.StreamConfig({ rate: 0, maxHeaps: 2 });
using stream = new send.UdpStream([endpoint(prog, positionals)], config);
const heapSize = 1024 * 1024;
const itemGroup = tutorialItemGroup(heapSize);

const nHeaps = options.heaps!;
let oldState: State | undefined;
const start = seconds();
for (let i = 0; i < nHeaps; i++) {
  itemGroup.get("timestamp")!.value = i * heapSize;
  itemGroup.get("adc_samples")!.value = new Int8Array(heapSize).fill(i);
  const heap = itemGroup.getHeap();
  const newState: State = { future: stream.asyncSendHeap(heap) };
  if (oldState !== undefined) await oldState.future;
  oldState = newState;
}
if (oldState !== undefined) await oldState.future;
const elapsed = seconds() - start;
printRate(heapSize * nHeaps, elapsed);

await stream.asyncSendHeap(itemGroup.getEnd());
