#!/usr/bin/env bun
/**
 * spead-recv: receives SPEAD over UDP or TCP and shows the heaps, as spead2's
 * `spead2_recv` (same options where the concept exists, same per-heap and
 * final summary lines). `bunx spead-recv --help`,
 * `deno run -A npm:spead/recv --help`.
 * @module
 */
import { Descriptor, MemoryPool, recv } from "../mod.ts";
import {
  mbps,
  onInterrupt,
  type Parsed,
  parseEndpoint,
  Progress,
  runTool,
  type ToolSpec,
  UsageError,
  VerifySequence,
} from "./common.ts";

const spec: ToolSpec = {
  name: "spead-recv",
  usage: "[options] [host]:<port> | <capture.pcap> ...",
  description: "Receive SPEAD heaps over UDP (or TCP) and show them; ends at a stop heap, the TCP sender closing,\n" +
    "or Ctrl-C, with spead2's summary.\n" +
    "A multicast host joins the group (on the --bind interface). A source that is not [host]:port is a pcap\n" +
    "capture (tcpdump -w) to replay, as in spead2_recv. Progress goes to stderr.",
  options: {
    tcp: { kind: "flag", help: "Use TCP instead of UDP (listen for one connection per source)" },
    bind: { kind: "string", help: "Interface address (multicast)" },
    packet: { kind: "int", help: "Maximum packet size to accept [9200; 65536 with --tcp]", min: 56, max: 65536 },
    buffer: { kind: "int", help: "Socket buffer size [8388608; 212992 with --tcp]", min: 0 },
    "concurrent-heaps": { kind: "int", help: "Maximum number of in-flight heaps, per substream", default: 4, min: 1 },
    substreams: { kind: "int", help: "Number of parallel substreams", default: 1, min: 1 },
    "ring-heaps": { kind: "int", help: "Ring buffer capacity in heaps", default: 4, min: 1 },
    "mem-pool": { kind: "flag", help: "Use a memory pool" },
    "mem-lower": { kind: "int", help: "Minimum allocation which will use the memory pool", default: 16384, min: 0 },
    "mem-upper": {
      kind: "int",
      help: "Maximum allocation which will use the memory pool",
      default: 32 * 1024 * 1024,
      min: 1,
    },
    "mem-max-free": { kind: "int", help: "Maximum free memory buffers", default: 12, min: 0 },
    "mem-initial": { kind: "int", help: "Initial free memory buffers", default: 8, min: 0 },
    quiet: { kind: "flag", help: "Only show total of heaps received" },
    descriptors: { kind: "flag", help: "Show descriptors" },
    joint: { kind: "flag", help: "Treat all sources as a single stream" },
    verify: { kind: "flag", help: "Verify payload (use spead-send or spead2_send with the same option)" },
    "max-heaps": { kind: "int", help: "Stop receiving after this many heaps (per stream)", min: 1 },
    interval: { kind: "number", help: "Seconds between progress lines on stderr (0: none)", default: 1, min: 0 },
  },
  examples: [
    "spead-recv 8888                        # every interface, port 8888",
    "spead-recv --quiet 127.0.0.1:8888      # totals only",
    "spead-recv --mem-pool --verify :8888   # check spead-send --verify payloads",
    "spead-recv --bind 10.0.0.2 239.1.2.3:7148   # join a multicast group",
    "spead-recv --quiet capture.pcap         # replay a tcpdump capture",
    "spead-recv --tcp 127.0.0.1:8888        # one TCP connection (spead-send --tcp)",
  ],
};

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

function showHeap(heap: recv.Heap, o: Parsed["values"], start: number): void {
  if (o.quiet) return;
  const lines = [`Received heap ${heap.cnt} at ${((performance.now() - start) / 1e3).toFixed(6)}`];
  if (o.descriptors) {
    for (const d of heap.getDescriptors()) showDescriptor(d, lines);
  }
  for (const item of heap.getItems()) {
    lines.push(
      `${hex(item.id)} = [${item.value.byteLength} bytes]${item.isImmediate ? ` = ${hex(item.immediateValue)}` : ""}`,
    );
  }
  console.log(lines.join("\n"));
}

function showDescriptor(d: Descriptor, lines: string[]): void {
  const fmt = d.format ? `[${d.format.map(([c, b]) => `(${c}, ${b})`).join(", ")}]` : "[]";
  lines.push(
    `Descriptor for ${d.name} (${hex(d.id)})`,
    `  description: ${d.description}`,
    `  format:      ${fmt}`,
    `  dtype:       ${d.dtype ? d.dtype.toString() : ""}`,
    `  shape:       (${d.shape.map((s) => (s === null ? "?" : String(s))).join(", ")})`,
  );
}

/** Checks a heap's data items (ids >= 0x1000) against spead2's verify sequence. */
function verifyHeap(heap: recv.Heap): string | undefined {
  const items = heap.getItems().filter((i) => i.id >= 0x1000);
  if (items.length === 0) return undefined;
  const elements = Math.floor(items[0].value.byteLength / 4);
  const seq = new VerifySequence(elements * items.length * (Number(heap.cnt) - 1));
  for (const item of items) {
    if (item.value.byteLength !== elements * 4) return `Heap ${heap.cnt}, item ${hex(item.id)} has an inconsistent length`;
    const bad = seq.check(new DataView(item.value.buffer, item.value.byteOffset, item.value.byteLength));
    if (bad) {
      return `Verification mismatch in heap ${heap.cnt}, item ${hex(item.id)} offset ${bad.index}\n` +
        `expected ${hex(bad.expected)}, actual ${hex(bad.actual)}`;
    }
  }
  return undefined;
}

async function main({ values: o, positional }: Parsed): Promise<number> {
  if (positional.length === 0) throw new UsageError("at least one source is required");
  // As spead2_recv: a source that is not [host:]port is a pcap capture to replay.
  const sources = positional.map((s): [string, number] | string =>
    /^(?:\[[^\]]*\]|[^:]*):\d+$|^\d+$/.test(s) ? parseEndpoint(s, "0.0.0.0") : s
  );
  const pool = o["mem-pool"]
    ? new MemoryPool(o["mem-lower"] as number, o["mem-upper"] as number, o["mem-max-free"] as number, o["mem-initial"] as number)
    : undefined;
  const config = new recv.StreamConfig({
    maxHeaps: o["concurrent-heaps"] as number,
    substreams: o.substreams as number,
    memoryAllocator: pool,
  });
  const ring = new recv.RingStreamConfig({ heaps: o["ring-heaps"] as number });
  const groups = o.joint ? [sources] : sources.map((s) => [s]);
  const streams = groups.map(() => new recv.Stream(config, ring));
  const stopAll = () => {
    for (const s of streams) s.stop();
  };
  try {
    groups.forEach((group, i) => {
      for (const source of group) {
        if (typeof source === "string") {
          if (o.tcp) throw new UsageError(`${source} is not of the form [host]:port (--tcp)`);
          streams[i].addUdpPcapFileReader(source);
          console.error(`spead-recv: replaying ${source}`);
          continue;
        }
        const [host, port] = source;
        const multicast = /^(22[4-9]|23\d)\./.test(host) || /^ff/i.test(host);
        // spead2_recv's defaults depend on the protocol (spead2's reader defaults).
        const options = {
          maxSize: (o.packet as number | undefined) ?? (o.tcp ? 65536 : 9200),
          bufferSize: (o.buffer as number | undefined) ?? (o.tcp ? 208 * 1024 : 8 * 1024 * 1024),
        };
        if (o.tcp && multicast) throw new UsageError(`--tcp cannot receive from the multicast group ${host}`);
        const info = o.tcp
          ? streams[i].addTcpReader(port, { ...options, bindHostname: host })
          : multicast
          ? streams[i].addUdpReader(host, port, { ...options, interfaceAddress: o.bind as string | undefined })
          : streams[i].addUdpReader(port, { ...options, bindHostname: host });
        // On stderr, so stdout stays spead2's; port 0 picks a free port and this says which.
        console.error(`spead-recv: receiving on ${host.includes(":") ? `[${host}]` : host}:${info.port}${o.tcp ? " (TCP)" : ""}`);
      }
    });
  } catch (err) {
    stopAll();
    pool?.close();
    throw err;
  }

  const start = performance.now();
  let heaps = 0;
  let bytes = 0;
  let failure: string | undefined;
  const drops = () =>
    streams.reduce((n, s) => n + s.stats.incomplete_heaps_evicted + s.stats.incomplete_heaps_flushed, 0);
  const progress = new Progress(
    o.interval as number,
    (t) => `spead-recv: ${heaps} heaps, ${mbps(bytes, t)} MB/s, ${drops()} incomplete (dropped) in ${t.toFixed(0)} s`,
  );
  const removeInterrupt = onInterrupt(stopAll);
  const maxHeaps = o["max-heaps"] as number | undefined;
  await Promise.all(streams.map(async (stream) => {
    let n = 0;
    for await (const heap of stream) {
      try {
        heaps++;
        n++;
        bytes += heap.receivedLength;
        showHeap(heap, o, start);
        if (o.verify && failure === undefined) failure = verifyHeap(heap);
      } finally {
        heap.release();
      }
      if (failure !== undefined || n === maxHeaps) stream.stop();
    }
  }));
  progress.stop();
  removeInterrupt();
  const totals: Record<string, number> = {};
  for (const s of streams) {
    s.stop();
    for (const [k, v] of Object.entries(s.stats)) totals[k] = (totals[k] ?? 0) + v;
  }
  if (failure !== undefined) {
    console.error(failure);
    return 1;
  }
  console.log(`Received ${heaps} heaps`);
  for (const [k, v] of Object.entries(totals)) console.log(`${k}: ${v}`);
  pool?.close();
  return 0;
}

await runTool(spec, main);
