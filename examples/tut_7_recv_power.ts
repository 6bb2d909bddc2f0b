/**
 * spead2 tutorial 7 (`examples/tutorial/tut_7_recv_power.py`): the receiver
 * with a fast power calculation. spead2 uses numba (Python) or AVX2 (C++) for
 * the sum of squares; here it is a WebAssembly SIMD kernel
 * (examples/power_kernel.ts, 4-7x the plain JS loop of examples/cli.ts
 * `meanPower`; bench/power_kernel.ts), so the power sum is not what limits
 * the receiver. Prints one line per heap, then "Received N heaps" when the stream
 * ends. As in the tutorial, a sender with no rate limit can still outrun it
 * (heaps dropped); on a 2-core machine the sender and receiver share the cores.
 *
 *   bun examples/tut_7_recv_power.ts [--bind ADDR] [port]
 *   deno run --allow-ffi --allow-env examples/tut_7_recv_power.ts [--bind ADDR] [port]
 *
 * spead2's version has no options; `port` (default 8888) and `--bind` (default:
 * all IPv4 interfaces) are additions. The tutorial sends to it with
 * `tut_4_send_perf -p 9000 127.0.0.1 8888`; tests/interop/tut_send.py does too.
 */
import { ItemGroup, recv } from "../mod.ts";
import { parseArgs, powerLine } from "./cli.ts";
import { meanPowerWasm, preparePowerKernel } from "./power_kernel.ts";

const args = parseArgs({
  description: "Receive heaps (tutorial 2's items), print each heap's timestamp and power, then the heap count.",
  options: [{ name: "bind", type: "string", help: "local address to listen on (default: all IPv4 interfaces)" }],
  positionals: [{ name: "port", type: "int", default: 8888, help: "UDP port" }],
});
// Compiled and warmed up before the stream exists, so no heap waits for it.
preparePowerKernel();

const stream = new recv.Stream();
stream.addUdpReader(args.port as number, { bindHostname: args.bind as string | undefined });
const itemGroup = new ItemGroup();
let nHeaps = 0;
for await (const heap of stream) {
  itemGroup.update(heap);
  const timestamp = itemGroup.get("timestamp")?.value;
  const samples = itemGroup.get("adc_samples")?.value;
  if (timestamp != null && samples instanceof Int8Array) {
    const power = meanPowerWasm(samples);
    nHeaps++;
    console.log(powerLine(timestamp as number, power));
  }
  heap.release();
}
console.log(`Received ${nHeaps} heaps`);
stream.close();
