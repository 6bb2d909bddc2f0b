/** The `recv` namespace: spead2's `spead2.recv` in TS casing. */
export { Stream, type StreamStats, type UdpReaderInfo, type UdpReaderOptions } from "./stream.ts";
export {
  type PayloadAllocator,
  RingStreamConfig,
  type RingStreamConfigOptions,
  StreamConfig,
  type StreamConfigOptions,
} from "./config.ts";
export { Heap, IncompleteHeap } from "./heap.ts";
