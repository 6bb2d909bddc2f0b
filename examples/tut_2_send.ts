/**
 * Tutorial 2 sender (spead2 `examples/tutorial/tut_2_send.py`): ten heaps of
 * random int8 ADC samples, each with its timestamp, to UDP 127.0.0.1:8888 at
 * 100 MB/s, then an end-of-stream heap. Prints nothing.
 *
 *   bun examples/tut_2_send.ts [host] [port]
 *   deno run --allow-ffi --allow-env examples/tut_2_send.ts [host] [port]
 *
 * spead2's version takes no arguments; the optional host and port (default
 * 127.0.0.1 8888) are an addition so that tests can pick a free port.
 */
import { send } from "../mod.ts";
import { endpoint, parseArgs, tutorialItemGroup } from "./send_common.ts";

const prog = "tut_2_send.ts";
const { positionals } = parseArgs(prog, [], [], undefined, ["host", "port"]);
const target = endpoint(prog, [positionals[0] ?? "127.0.0.1", positionals[1] ?? "8888"]);

const config = new send.StreamConfig({ rate: 100e6 });
using stream = new send.UdpStream([target], config);
const heapSize = 1024 * 1024;
const itemGroup = tutorialItemGroup(heapSize);

/** Uniform random int8 in [-100, 100), like numpy's `integers(-100, 100, dtype=int8)`. */
function randomSamples(n: number): Int8Array {
  const out = new Int8Array(n);
  const words = new Uint32Array(65536 / 4);
  for (let off = 0; off < n; off += words.length) {
    crypto.getRandomValues(words);
    const m = Math.min(words.length, n - off);
    for (let j = 0; j < m; j++) out[off + j] = (words[j] % 200) - 100; // bias of 2^32 % 200 is negligible
  }
  return out;
}

for (let i = 0; i < 10; i++) {
  itemGroup.get("timestamp")!.value = i * heapSize;
  itemGroup.get("adc_samples")!.value = randomSamples(heapSize);
  const heap = itemGroup.getHeap();
  stream.sendHeap(heap);
}
stream.sendHeap(itemGroup.getEnd());
