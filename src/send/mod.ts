/** The `send` namespace: spead2's `spead2.send` in TS casing. */
export { type EncodableDescriptor, Heap, type HeapEntry, type SendableItem } from "./heap.ts";
export { PacketGenerator } from "./packet_generator.ts";
export { BytesStream, HeapReference } from "./bytes_stream.ts";
export { HeapReferenceList } from "./heap_reference_list.ts";
export { GroupMode, RateMethod, StreamConfig, type StreamConfigOptions } from "./stream_config.ts";
export { type GetHeapOptions, HeapGenerator, type HeapGeneratorOptions, type HeapSelection, type HeapSink, ItemGroup } from "./heap_generator.ts";
export { type SendStats, UdpStream, type UdpStreamOptions } from "./udp_stream.ts";
export { allocateBuffer, type BufferOptions, NativeBuffer } from "./buffer.ts";
