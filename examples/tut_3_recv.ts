/**
 * spead2 tutorial 3 (`examples/tutorial/tut_3_recv.py`): the first receiver.
 * Listens for UDP on port 8888, decodes each heap with an ItemGroup and prints
 * the timestamp and the mean power of `adc_samples` of every heap.
 *
 *   bun examples/tut_3_recv.ts [--bind ADDR] [port]
 *   deno run --allow-ffi --allow-env examples/tut_3_recv.ts [--bind ADDR] [port]
 *
 * spead2's version has no options; `port` (default 8888, as there) and
 * `--bind` (default: all IPv4 interfaces, as there) are additions so it can be
 * tested and kept on loopback. Send to it with tutorial 2's sender.
 */
import { ItemGroup, recv } from "../mod.ts";
import { meanPower, parseArgs, powerLine } from "./cli.ts";

const args = parseArgs({
  description: "Receive heaps (tutorial 2's items) and print each heap's timestamp and power.",
  options: [{ name: "bind", type: "string", help: "local address to listen on (default: all IPv4 interfaces)" }],
  positionals: [{ name: "port", type: "int", default: 8888, help: "UDP port" }],
});

const stream = new recv.Stream();
stream.addUdpReader(args.port as number, { bindHostname: args.bind as string | undefined });
const itemGroup = new ItemGroup();
for await (const heap of stream) {
  itemGroup.update(heap);
  const timestamp = itemGroup.get("timestamp")?.value;
  const samples = itemGroup.get("adc_samples")?.value;
  // spead2's Python version assumes both items are there; the C++ one skips heaps without them.
  if (timestamp != null && samples instanceof Int8Array) console.log(powerLine(timestamp as number, meanPower(samples)));
  heap.release(); // the item group's views of this heap end here
}
stream.close();
