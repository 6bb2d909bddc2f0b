/**
 * spead2 tutorial 12 (`examples/tutorial/tut_12_recv_chunks.py`): receive
 * tutorial 11's heaps into chunks. Each chunk holds about 1 MiB of
 * adc_samples (a whole number of heaps); the heap's place in it comes from
 * its timestamp. spead2 does that with a numba/C++ callback; here the same
 * rule is declared as data and evaluated natively for every heap:
 *
 *   chunk id = timestamp / chunk size, heap index = (timestamp mod chunk size) / heap size,
 *   accepted only when HEAP_LENGTH equals the heap size.
 *
 * As in the tutorial: max_heaps 2, one chunk under construction, a data ring
 * of 2 and 4 free chunks. For each chunk with heaps present it prints the
 * chunk's first timestamp and the mean power of the heaps present, then the
 * number of heaps received. The power sum runs on the WebAssembly SIMD kernel
 * of examples/power_kernel.ts.
 *
 *   bun examples/tut_12_recv_chunks.ts [-H HEAP_SIZE] [--bind ADDR] port
 *   deno run --allow-ffi --allow-env examples/tut_12_recv_chunks.ts [-H HEAP_SIZE] [--bind ADDR] port
 *
 * Pair it with `tut_11_send_batch_heaps.ts -p 9000 -H 8192 127.0.0.1 8888`.
 */
import { recv } from "../mod.ts";
import { parseArgs, powerLine } from "./cli.ts";
import { preparePowerKernel, sumSquaresWasm } from "./power_kernel.ts";

const args = parseArgs({
  description: "Receive heaps into chunks, print each chunk's timestamp and power, then the heap count.",
  options: [
    { name: "heap_size", short: "H", type: "int", default: 1024 * 1024, help: "payload bytes of adc_samples" },
    { name: "bind", type: "string", help: "local address to listen on (default: all IPv4 interfaces)" },
  ],
  positionals: [{ name: "port", type: "int", help: "UDP port" }],
});
// Compiled and warmed up before the stream exists, so no heap waits for it.
preparePowerKernel();
const heapSize = args.heap_size as number;
const chunkHeaps = Math.max(1, Math.floor((1024 * 1024) / heapSize));
const chunkSize = chunkHeaps * heapSize;

const place = new recv.PlaceRule({
  heapBytes: heapSize,
  heapLength: heapSize, // the tutorial's "payload_size == heap_size"
  timestamp: { item: 0x1600, step: heapSize, heaps: chunkHeaps },
});
const chunkConfig = new recv.ChunkStreamConfig({ place, maxChunks: 1 });
const dataRing = new recv.ChunkRingbuffer(2);
const freeRing = new recv.ChunkRingbuffer(4);
const stream = new recv.ChunkRingStream(new recv.StreamConfig({ maxHeaps: 2 }), chunkConfig, dataRing, freeRing);
for (let i = 0; i < freeRing.maxsize; i++) stream.addFreeChunk(place.makeChunk());
stream.addUdpReader(args.port as number, { bindHostname: args.bind as string | undefined });

let nHeaps = 0;
// A blocking loop, as spead2's `for chunk in data_ring`: this program does nothing else, and
// waiting in native code costs less than a Promise and a wake-up per chunk
// (`for await (const chunk of dataRing)` works too, leaving the event loop free).
for (const chunk of dataRing) {
  const present = chunk.present;
  let n = 0;
  for (const p of present) n += p;
  if (n > 0) {
    const samples = new Int8Array(chunk.data.buffer, 0, chunkSize);
    let total = 0; // exact integer sum of squares
    if (n === chunkHeaps) {
      total = sumSquaresWasm(samples); // every heap present: one pass over the chunk
    } else {
      for (let i = 0; i < chunkHeaps; i++) {
        if (present[i]) total += sumSquaresWasm(samples.subarray(i * heapSize, (i + 1) * heapSize));
      }
    }
    nHeaps += n;
    console.log(powerLine(chunk.chunkId * BigInt(chunkSize), total / (n * heapSize)));
  }
  stream.addFreeChunk(chunk);
}
console.log(`Received ${nHeaps} heaps`);
stream.close();
dataRing.close();
freeRing.close();
