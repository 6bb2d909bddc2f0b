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
export {
  Chunk,
  type ChunkOptions,
  ChunkRingbuffer,
  ChunkRingStream,
  type ChunkStreamBase,
  ChunkStreamConfig,
  type ChunkStreamConfigOptions,
  ChunkStreamGroupConfig,
  type ChunkStreamGroupConfigOptions,
  ChunkStreamGroupMember,
  ChunkStreamRingGroup,
  EvictionMode,
  type ChunkStreamStats,
  type ItemId,
  PlaceFunction,
  PlaceRule,
  type PlaceRuleAxis,
  type PlaceRuleExtraField,
  type PlaceRuleOptions,
  type PlaceRuleTimestamp,
} from "./chunk_stream.ts";
