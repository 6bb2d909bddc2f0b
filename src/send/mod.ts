/** The `send` namespace: spead2's `spead2.send` in TS casing. */
export * from "./heap.ts";
export * from "./packet_generator.ts";
export * from "./bytes_stream.ts";
export * from "./heap_reference_list.ts";
export * from "./stream_config.ts";
export * from "./heap_generator.ts";
export * from "./udp_stream.ts";
export * from "./buffer.ts";
export * from "./tcp_stream.ts";
