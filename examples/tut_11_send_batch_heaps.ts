/**
 * Tutorial 11 sender (spead2 `examples/tutorial/tut_11_send_batch_heaps.py`):
 * tutorial 10's reused heaps, queued a batch at a time. Two States each own
 * `batchHeaps = max(1, 512 KiB / heapSize)` pre-built heaps (with their sample
 * rows and big-endian timestamps) and the Promise of their last batch;
 * `maxHeaps` is 2 × batchHeaps. Each batch goes out with
 * `asyncSendHeaps(heaps, GroupMode.SERIAL)`, one heap after the other. The
 * first batch is a separate list whose first heap also carries the
 * descriptors; a short last batch sends only its first heaps.
 *
 *   bun examples/tut_11_send_batch_heaps.ts [-n HEAPS] [-p PACKET_SIZE] [-H HEAP_SIZE] host port
 *   deno run --allow-ffi --allow-env examples/tut_11_send_batch_heaps.ts [...] host port
 *
 * As in spead2's final version, each batch is a `send.HeapReferenceList`, so
 * the conversion for sending is done once, and the samples live in native
 * send buffers (`send.allocateBuffer`), which are sent without a copy.
 * Timestamps are sent as immediates read from memory at queue time: see
 * `timestampRefHeap`.
 */
import { send } from "../mod.ts";
import {
  endpoint,
  exit,
  HEAP_SIZE,
  HEAPS,
  PACKET_SIZE,
  parseArgs,
  printRate,
  seconds,
  timestampRefHeap,
  tutorialItemGroup,
} from "./send_common.ts";

/** One batch slot: sample rows, timestamps, the heaps referring to them, and its last send. */
class State {
  future: Promise<number> = Promise.resolve(0);
  constructor(
    readonly adcSamples: Int8Array,
    readonly timestamps: DataView,
    readonly heaps: send.HeapReferenceList,
  ) {}
}

const prog = "tut_11_send_batch_heaps.ts";
const { options, positionals } = parseArgs(prog, [HEAPS, PACKET_SIZE, HEAP_SIZE], ["host", "port"]);

const heapSize = options.heapSize!;
if (!(heapSize > 0)) {
  console.error(`${prog}: error: heap size must be positive`);
  exit(2);
}
const batches = 2;
const batchHeaps = Math.max(1, Math.floor((512 * 1024) / heapSize));
const config = new send.StreamConfig({ rate: 0, maxHeaps: batches * batchHeaps, maxPacketSize: options.packetSize });
using stream = new send.UdpStream([endpoint(prog, positionals)], config);
const itemGroup = tutorialItemGroup(heapSize);

const nHeaps = options.heaps!;

/** The big-endian u64 timestamp j of a batch's timestamp array. */
function timestampView(timestamps: DataView, j: number): DataView {
  return new DataView(timestamps.buffer, timestamps.byteOffset + 8 * j, 8);
}

function makeHeaps(adcSamples: Int8Array, timestamps: DataView, first: boolean): send.HeapReferenceList {
  const heaps: send.HeapReference[] = [];
  for (let j = 0; j < batchHeaps; j++) {
    itemGroup.get("timestamp")!.value = 0; // placeholder: the heap reads its timestamp when queued
    itemGroup.get("adc_samples")!.value = adcSamples.subarray(j * heapSize, (j + 1) * heapSize);
    const heap = timestampRefHeap(itemGroup, timestampView(timestamps, j), {
      descriptors: j || !first ? "none" : "all",
    });
    heaps.push(new send.HeapReference(heap));
  }
  return new send.HeapReferenceList(heaps);
}

const states: State[] = [];
for (let b = 0; b < batches; b++) {
  const buffer = send.allocateBuffer(batchHeaps * heapSize);
  const adcSamples = new Int8Array(buffer.bytes.buffer, buffer.bytes.byteOffset, batchHeaps * heapSize).fill(1);
  const timestamps = new DataView(new ArrayBuffer(8 * batchHeaps));
  for (let j = 0; j < batchHeaps; j++) timestamps.setBigUint64(8 * j, 1n, false);
  states.push(new State(adcSamples, timestamps, makeHeaps(adcSamples, timestamps, false)));
}
const firstHeaps = makeHeaps(states[0].adcSamples, states[0].timestamps, true);

const start = seconds();
for (let i = 0; i < nHeaps; i += batchHeaps) {
  const state = states[Math.floor(i / batchHeaps) % states.length];
  const end = Math.min(i + batchHeaps, nHeaps);
  const n = end - i;
  await state.future; // the slot's previous batch must be sent before its memory is rewritten
  for (let j = 0; j < n; j++) {
    state.adcSamples.fill(i + j, j * heapSize, (j + 1) * heapSize);
    // The big-endian u64 (i + j) * heapSize (below 2^53), as two u32 halves: no BigInt per heap.
    const ts = (i + j) * heapSize;
    state.timestamps.setUint32(8 * j, Math.floor(ts / 2 ** 32), false);
    state.timestamps.setUint32(8 * j + 4, ts >>> 0, false);
  }
  let heaps = i ? state.heaps : firstHeaps;
  if (n < batchHeaps) heaps = heaps.slice(0, n);
  state.future = stream.asyncSendHeaps(heaps, send.GroupMode.SERIAL);
}
for (const state of states) await state.future;
const elapsed = seconds() - start;
printRate(heapSize * nHeaps, elapsed);

await stream.asyncSendHeap(itemGroup.getEnd());
