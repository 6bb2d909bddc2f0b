/**
 * The one neutral symbol table of libspead (see docs/ABI.md). Each runtime
 * backend (ffi/bun.ts, ffi/deno.ts) maps these neutral types onto its own FFI
 * types through an exhaustive switch, so adding a type here fails to compile
 * until both backends handle it.
 */

/** Neutral FFI types; the ABI uses nothing else. */
export type NativeType = "u32" | "i32" | "f64" | "buffer" | "function" | "void";

export interface SymbolDef {
  readonly args: readonly NativeType[];
  readonly returns: "u32" | "i32" | "f64" | "void";
}

const status = "i32" as const;

export const symbolDefs = {
  // common
  spead_library_version: { args: [], returns: "u32" },
  spead_flavour_check: { args: ["u32", "u32", "u32", "u32"], returns: status },

  // send: heaps as item tables
  spead_heap_encoded_size: { args: ["buffer", "u32", "u32", "u32", "u32", "buffer"], returns: status },
  spead_heap_encode: {
    args: ["buffer", "u32", "u32", "u32", "buffer", "u32", "u32", "buffer", "u32", "buffer"],
    returns: status,
  },
  spead_packet_gen_create: {
    args: ["buffer", "u32", "u32", "u32", "buffer", "u32", "u32", "buffer"],
    returns: status,
  },
  spead_packet_gen_next: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_packet_gen_destroy: { args: ["u32"], returns: status },

  // descriptors
  spead_descriptor_encode: {
    args: [
      "u32", "u32", "buffer", "buffer", "u32", "buffer", "u32", "buffer", "u32", "buffer", "u32",
      "buffer", "u32", "buffer", "u32", "buffer",
    ],
    returns: status,
  },
  spead_descriptor_decode: { args: ["u32", "buffer", "u32", "buffer", "u32", "buffer"], returns: status },

  // receive stream
  spead_recv_stream_create: { args: ["buffer", "u32", "buffer"], returns: status },
  spead_recv_stream_add_buffer: { args: ["u32", "buffer", "u32"], returns: status },
  spead_recv_stream_add_native_buffer: { args: ["u32", "u32", "u32", "u32", "u32", "u32"], returns: status },
  spead_recv_stream_try_pop: { args: ["u32", "buffer"], returns: status },
  spead_recv_stream_pop: { args: ["u32", "u32", "buffer"], returns: status },
  spead_recv_stream_pop_batch: { args: ["u32", "u32", "buffer", "u32", "buffer"], returns: status },
  spead_recv_stream_wait: { args: ["u32", "u32"], returns: status },
  spead_recv_stream_set_notify: { args: ["u32", "function"], returns: status },
  spead_recv_stream_arm: { args: ["u32"], returns: status },
  spead_recv_stream_stop: { args: ["u32"], returns: status },
  spead_recv_stream_destroy: { args: ["u32"], returns: status },
  spead_recv_stream_stats: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_recv_stream_stat_name: { args: ["u32", "buffer", "u32", "buffer"], returns: status },

  spead_recv_stream_add_udp_reader: {
    args: ["u32", "buffer", "u32", "u32", "u32", "u32", "buffer", "u32", "buffer"],
    returns: status,
  },

  // UDP send streams
  spead_udp_send_stream_create: {
    args: ["buffer", "u32", "buffer", "u32", "buffer", "u32", "buffer"],
    returns: status,
  },
  spead_udp_send_stream_send: {
    args: ["u32", "buffer", "u32", "buffer", "u32", "u32", "buffer", "buffer"],
    returns: status,
  },
  spead_udp_send_stream_poll: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_udp_send_stream_wait: { args: ["u32", "u32"], returns: status },
  spead_udp_send_stream_flush: { args: ["u32", "u32"], returns: status },
  spead_udp_send_stream_set_notify: { args: ["u32", "function"], returns: status },
  spead_udp_send_stream_arm: { args: ["u32"], returns: status },
  spead_udp_send_stream_set_cnt_sequence: { args: ["u32", "buffer"], returns: status },
  spead_udp_send_stream_stats: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_udp_send_stream_stat_name: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_udp_send_stream_stop: { args: ["u32"], returns: status },
  spead_udp_send_stream_destroy: { args: ["u32"], returns: status },

  // memory pools
  spead_memory_pool_create: { args: ["buffer", "u32", "buffer"], returns: status },
  spead_memory_pool_destroy: { args: ["u32"], returns: status },
  spead_memory_pool_stats: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_memory_pool_stat_name: { args: ["u32", "buffer", "u32", "buffer"], returns: status },

  // stable send buffers
  spead_buffer_alloc: { args: ["u32", "u32", "u32", "buffer"], returns: status },
  spead_buffer_free: { args: ["u32"], returns: status },

  // process lifetime (zig/abi/lifecycle.zig)
  spead_shutdown: { args: [], returns: status },

  // diagnostics
  spead_process_stats: { args: ["buffer", "u32"], returns: status },
  spead_last_error: { args: ["buffer", "buffer", "u32", "buffer"], returns: status },
  spead_errno_name: { args: ["u32", "buffer", "u32", "buffer"], returns: status },

  // received heaps
  spead_recv_heap_describe: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_recv_heap_release: { args: ["u32"], returns: status },

  // chunk streams (zig/abi/chunk.zig)
  spead_chunk_create: { args: ["buffer", "buffer"], returns: status },
  spead_chunk_info: { args: ["u32", "buffer"], returns: status },
  spead_chunk_destroy: { args: ["u32"], returns: status },
  spead_chunk_ring_create: { args: ["u32", "buffer"], returns: status },
  spead_chunk_ring_destroy: { args: ["u32"], returns: status },
  spead_chunk_ring_put: { args: ["u32", "u32"], returns: status },
  spead_chunk_ring_pop: { args: ["u32", "u32", "buffer"], returns: status },
  spead_chunk_ring_wait: { args: ["u32", "u32"], returns: status },
  spead_chunk_ring_set_notify: { args: ["u32", "function"], returns: status },
  spead_chunk_ring_arm: { args: ["u32"], returns: status },
  spead_chunk_ring_stop: { args: ["u32"], returns: status },
  spead_chunk_ring_size: { args: ["u32", "buffer"], returns: status },
  spead_chunk_stream_create: {
    args: ["buffer", "u32", "buffer", "u32", "buffer", "u32", "u32", "u32", "buffer"],
    returns: status,
  },
  spead_chunk_group_create: { args: ["u32", "u32", "u32", "u32", "buffer"], returns: status },
  spead_chunk_group_add_stream: {
    args: ["u32", "buffer", "u32", "buffer", "u32", "buffer", "u32", "buffer"],
    returns: status,
  },
  spead_chunk_group_stop: { args: ["u32"], returns: status },
  spead_chunk_group_destroy: { args: ["u32"], returns: status },
  spead_chunk_stream_stats: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_chunk_stream_stat_name: { args: ["u32", "buffer", "u32", "buffer"], returns: status },
  spead_chunk_rule_check: { args: ["buffer", "u32", "buffer"], returns: status },
  spead_chunk_place_lookup: { args: ["buffer", "u32", "buffer", "u32", "buffer"], returns: status },
} as const satisfies Record<string, SymbolDef>;

/**
 * Exports that block; Deno binds each of these a second time as a
 * `nonblocking` symbol (returning a Promise) under the key `<name>_async`.
 */
export const blockingSymbols = [
  "spead_recv_stream_wait",
  "spead_udp_send_stream_wait",
  "spead_udp_send_stream_flush",
  "spead_chunk_ring_wait",
] as const;

export type SymbolName = keyof typeof symbolDefs;
export type BlockingSymbolName = (typeof blockingSymbols)[number];

/** An opaque native function pointer created by a backend (Bun JSCallback / Deno UnsafeCallback). */
export interface NativeFunction {
  readonly __nativeFunction: true;
}

type ArgType<T extends NativeType> = T extends "u32" | "i32" | "f64" ? number
  : T extends "buffer" ? ArrayBufferView | null
  : T extends "function" ? NativeFunction | null
  : never;

type ArgTypes<A extends readonly NativeType[]> = { [K in keyof A]: A[K] extends NativeType ? ArgType<A[K]> : never };

type ReturnType_<T> = T extends "void" ? void : number;

/** Synchronous call signatures, derived from the table. */
export type Symbols = {
  [K in SymbolName]: (...args: ArgTypes<(typeof symbolDefs)[K]["args"]>) => ReturnType_<(typeof symbolDefs)[K]["returns"]>;
};

/** Promise-returning variants of the blocking exports (Deno only). */
export type AsyncSymbols = {
  [K in BlockingSymbolName]: (
    ...args: ArgTypes<(typeof symbolDefs)[K]["args"]>
  ) => Promise<ReturnType_<(typeof symbolDefs)[K]["returns"]>>;
};

/** What a runtime backend provides; raw pointers never leave it except as bigint addresses. */
export interface Backend {
  readonly runtime: "bun" | "deno";
  readonly path: string;
  readonly symbols: Symbols;
  /** Deno: nonblocking variants of blocking calls; Bun: undefined (Bun uses the doorbell). */
  readonly asyncSymbols: AsyncSymbols | undefined;
  /** Address of the first byte of a view's data, as an integer. Cache it for long-lived buffers. */
  addressOf(view: ArrayBufferView): bigint;
  /** A zero-copy ArrayBuffer over native memory. The caller owns the lease. */
  arrayBufferAt(address: bigint, length: number): ArrayBuffer;
  /**
   * A native function pointer `void (*)(u32)` that native threads may call; the
   * JS function runs later on the JS thread (Bun threadsafe JSCallback). Deno
   * returns null: it waits with nonblocking calls instead.
   */
  createDoorbell(fn: (handle: number) => void): { pointer: NativeFunction; close(): void } | null;
  close(): void;
}
