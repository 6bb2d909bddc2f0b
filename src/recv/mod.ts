/** The `recv` namespace: spead2's `spead2.recv` in TS casing. */
export * from "./stream.ts";
export * from "./config.ts";
export * from "./heap.ts";
export * from "./chunk_stream.ts";
export * from "./reader_options.ts";
