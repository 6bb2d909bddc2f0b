#!/usr/bin/env bun
/**
 * spead-send: generates and sends SPEAD heaps over UDP or TCP, as spead2's
 * `spead2_send` (same options where the concept exists, same heaps: items
 * 0x1000.. of big-endian u32, descriptors on the first heap of each
 * substream, a stop heap per substream at the end; same summary line).
 * `bunx spead-send --help`, `deno run -A npm:spead/send --help`.
 * @module
 */
import { Descriptor, Flavour, send } from "../mod.ts";
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
  name: "spead-send",
  usage: "[options] <host>:<port> ...",
  description: "Generate and send SPEAD heaps over UDP (one substream per destination) or TCP (one destination),\n" +
    "then a stop heap each;\n" +
    "prints spead2's summary line. Progress goes to stderr.",
  options: {
    tcp: { kind: "flag", help: "Use TCP instead of UDP (one destination)" },
    "heap-size": { kind: "int", help: "Payload size for heap", default: 4194304, min: 4 },
    items: { kind: "int", help: "Number of items per heap", default: 1, min: 1 },
    heaps: { kind: "int", help: "Number of data heaps to send (-1=infinite)", default: -1, min: -1 },
    verify: { kind: "flag", help: "Insert payload values that receiver can verify" },
    "addr-bits": { kind: "int", help: "Heap address bits", default: 40, min: 8, max: 56 },
    packet: { kind: "int", help: "Maximum packet size to send (UDP: at most 65507)", default: 1472, min: 56, max: 131072 },
    bind: { kind: "string", help: "Local address to bind sockets to" },
    buffer: { kind: "int", help: "Socket buffer size [524288; 212992 with --tcp]", min: 0 },
    burst: { kind: "int", help: "Burst size", default: 65536, min: 1 },
    "burst-rate-ratio": { kind: "number", help: "Hard rate limit, relative to --rate", default: 1.05, min: 1 },
    "max-heaps": { kind: "int", help: "Maximum heaps in flight", default: 4, min: 1 },
    rate: { kind: "number", help: "Transmission rate bound (Gb/s, 0 = unlimited)", default: 0, min: 0 },
    ttl: { kind: "int", help: "TTL for multicast target", min: 0, max: 255 },
    interval: { kind: "number", help: "Seconds between progress lines on stderr (0: none)", default: 1, min: 0 },
  },
  examples: [
    "spead-send --heaps 1000 --heap-size 1048576 --packet 9000 127.0.0.1:8888",
    "spead-send --rate 1 --verify --heaps 100 127.0.0.1:8888    # 1 Gb/s, payloads spead-recv --verify checks",
    "spead-send --ttl 4 --bind 10.0.0.2 239.1.2.3:7148           # multicast",
    "spead-send --tcp --packet 65536 --heaps 100 127.0.0.1:8888  # one TCP connection (spead-recv --tcp)",
  ],
};

async function main({ values: o, positional }: Parsed): Promise<number> {
  if (positional.length === 0) throw new UsageError("at least one destination host:port is required");
  const destinations = positional.map((d) => parseEndpoint(d, undefined));
  const nSub = destinations.length;
  const nHeaps = o.heaps as number;
  const nItems = o.items as number;
  const elements = Math.floor((o["heap-size"] as number) / (nItems * 4));
  if (elements === 0) throw new UsageError(`--heap-size ${o["heap-size"]} is too small for ${nItems} items of 4 bytes`);
  const itemSize = elements * 4;
  if (itemSize * nItems !== o["heap-size"]) {
    console.error(`Heap size is not an exact multiple: using ${itemSize * nItems} instead of ${o["heap-size"]}`);
  }
  const configMaxHeaps = o["max-heaps"] as number;
  const inFlight = nHeaps < 0 || nHeaps + nSub > configMaxHeaps ? configMaxHeaps : nHeaps + nSub;
  const flavour = new Flavour(4, 64, o["addr-bits"] as number, 0);
  if (o.tcp && nSub > 1) throw new UsageError("only one destination is supported with TCP");
  if (o.tcp && o.ttl !== undefined) throw new UsageError("--ttl is for UDP multicast, not --tcp");
  if (!o.tcp && (o.packet as number) > 65507) throw new UsageError(`--packet ${o.packet} is over UDP's 65507 bytes`);
  const config = new send.StreamConfig({
    maxPacketSize: o.packet as number,
    rate: (o.rate as number) * 1e9 / 8,
    burstSize: o.burst as number,
    burstRateRatio: o["burst-rate-ratio"] as number,
    maxHeaps: inFlight,
  });
  const interfaceAddress = o.bind as string | undefined;
  // spead2_send's socket buffer default depends on the protocol (spead2's stream defaults).
  const stream = o.tcp
    ? new send.TcpStream(destinations[0], config, { bufferSize: (o.buffer as number | undefined) ?? 208 * 1024, interfaceAddress })
    : new send.UdpStream(destinations, config, {
      bufferSize: (o.buffer as number | undefined) ?? 512 * 1024,
      ttl: o.ttl as number | undefined,
      interfaceAddress,
    });

  // One set of item buffers per heap in flight, reused once its send settled.
  const buffers = Array.from({ length: inFlight }, () => Array.from({ length: nItems }, () => new Uint8Array(itemSize)));
  const descriptors = Array.from({ length: nItems }, (_, j) =>
    new Descriptor({
      id: 0x1000 + j,
      name: `Test item ${j}`,
      description: "A test item with arbitrary value",
      shape: [elements],
      dtype: ">u4",
    }));
  const makeHeap = (slot: number, withDescriptors: boolean) => {
    const heap = new send.Heap(flavour);
    if (withDescriptors) for (const d of descriptors) heap.addDescriptor(d);
    buffers[slot].forEach((b, j) => heap.addRaw(0x1000 + j, b, true));
    return heap;
  };
  const firstHeaps = buffers.map((_, slot) => makeHeap(slot, true));
  const heaps = buffers.map((_, slot) => makeHeap(slot, false));
  const endHeap = new send.Heap(flavour);
  endHeap.addEnd();
  const sequence = new VerifySequence();

  let stopping = false;
  const removeInterrupt = onInterrupt(() => {
    stopping = true;
  });
  let sentBytes = 0;
  let sentHeaps = 0;
  let errors = 0;
  let lastError: unknown;
  const progress = new Progress(
    o.interval as number,
    (t) => `spead-send: ${sentHeaps} heaps, ${mbps(sentBytes, t)} MB/s, ${errors} failed in ${t.toFixed(0)} s`,
  );
  const pending: Promise<void>[] = [];
  const settle = (p: Promise<number>) =>
    p.then((bytes) => {
      sentBytes += bytes;
      sentHeaps++;
    }, (err: unknown) => {
      errors++;
      lastError = err;
    });
  const start = performance.now();
  const total = nHeaps < 0 ? Infinity : nHeaps + nSub;
  for (let idx = 0; idx < total; idx++) {
    if (pending.length >= inFlight) await pending.shift();
    if (errors > 0) break; // spead2_send stops at the first error
    let heap: send.Heap;
    if (stopping) {
      // Interrupted: finish with a stop heap per substream.
      for (let s = 0; s < nSub; s++) {
        if (pending.length >= inFlight) await pending.shift();
        pending.push(settle(stream.asyncSendHeap(endHeap, -1, s)));
      }
      break;
    }
    if (nHeaps >= 0 && idx >= nHeaps) {
      heap = endHeap;
    } else {
      const slot = idx % inFlight;
      if (o.verify) for (const b of buffers[slot]) sequence.fill(new DataView(b.buffer, b.byteOffset, b.byteLength));
      heap = idx < nSub ? firstHeaps[slot] : heaps[slot];
    }
    pending.push(settle(stream.asyncSendHeap(heap, -1, idx % nSub)));
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1e3;
  progress.stop();
  removeInterrupt();
  stream.close();
  if (lastError !== undefined) {
    console.error(`spead-send: ${errors} errors, last one: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
  }
  console.log(`Sent ${sentBytes} bytes in ${elapsed.toFixed(6)} seconds, ${(sentBytes * 8e-9 / elapsed).toFixed(6)} Gb/s`);
  return lastError === undefined ? 0 : 1;
}

await runTool(spec, main);
