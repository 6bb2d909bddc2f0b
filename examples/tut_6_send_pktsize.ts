/**
 * Tutorial 6 sender (spead2 `examples/tutorial/tut_6_send_pktsize.py`):
 * tutorial 5's pipelined sender with a `-p/--packet-size` option (the UDP
 * payload size, i.e. the MTU less 28 bytes of IPv4 + UDP headers; default
 * 1472). Prints "<x> MB/s".
 *
 *   bun examples/tut_6_send_pktsize.ts [-n HEAPS] [-p PACKET_SIZE] host port
 *   deno run --allow-ffi --allow-env examples/tut_6_send_pktsize.ts [-n HEAPS] [-p PACKET_SIZE] host port
 */
import { send } from "../mod.ts";
import { endpoint, HEAPS, PACKET_SIZE, parseArgs, printRate, seconds, tutorialItemGroup } from "./send_common.ts";

/** One heap in flight: its completion Promise (which also holds the heap and its buffers). */
interface State {
  future: Promise<number>;
}

const prog = "tut_6_send_pktsize.ts";
const { options, positionals } = parseArgs(prog, [HEAPS, PACKET_SIZE], ["host", "port"]);

const config = new send.StreamConfig({ rate: 0, maxHeaps: 2, maxPacketSize: options.packetSize });
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
