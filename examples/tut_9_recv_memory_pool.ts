/**
 * spead2 tutorial 9 (`examples/tutorial/tut_9_recv_memory_pool.py`): the
 * power receiver with a memory pool, so large heaps reuse pre-faulted buffers
 * instead of fresh allocations. As in the tutorial: max_heaps 2, a ring of 2
 * heaps, and a pool of max_heaps + ring heaps + 1 = 5 buffers of
 * heap size + 8192 bytes (room for the first heap's descriptors). The power
 * sum runs on the WebAssembly SIMD kernel of examples/power_kernel.ts.
 *
 *   bun examples/tut_9_recv_memory_pool.ts [-H HEAP_SIZE] [--bind ADDR] port
 *   deno run --allow-ffi --allow-env examples/tut_9_recv_memory_pool.ts [-H HEAP_SIZE] [--bind ADDR] port
 *
 * `--bind` (default: all IPv4 interfaces, as in spead2) is an addition. The
 * tutorial pairs it with `tut_8_send_reuse_memory -n 100 -H 67108864 -p 9000 127.0.0.1 8888`.
 */
import { ItemGroup, MemoryPool, recv } from "../mod.ts";
import { parseArgs, powerLine } from "./cli.ts";
import { meanPowerWasm, preparePowerKernel } from "./power_kernel.ts";

const args = parseArgs({
  description: "Receive heaps into a memory pool, print each heap's timestamp and power, then the heap count.",
  options: [
    { name: "heap_size", short: "H", type: "int", default: 1024 * 1024, help: "payload bytes of adc_samples" },
    { name: "bind", type: "string", help: "local address to listen on (default: all IPv4 interfaces)" },
  ],
  positionals: [{ name: "port", type: "int", help: "UDP port" }],
});
// Compiled and warmed up before the stream exists, so no heap waits for it.
preparePowerKernel();
const heapSize = args.heap_size as number;

const maxHeaps = 2;
const ringHeaps = 2;
const poolHeaps = maxHeaps + ringHeaps + 1;
const pool = new MemoryPool(0, heapSize + 8192, poolHeaps, poolHeaps);
const stream = new recv.Stream(
  new recv.StreamConfig({ maxHeaps, memoryAllocator: pool }),
  new recv.RingStreamConfig({ heaps: ringHeaps }),
);
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
  heap.release(); // back to the pool right away: the pool has no spare buffer for a held heap
}
console.log(`Received ${nHeaps} heaps`);
stream.close();
pool.close();
