//! The C ABI: every export of libspead, declared once. `zig/root.zig` exports
//! each entry (wrapped by `zig/abi/export.zig`), and `zig build gen` writes
//! `ffi/abi.gen.ts` and `include/spead.h` from this table. To add an export,
//! see docs/ABI.md "How to add an export".
const std = @import("std");
const status = @import("../core/status.zig");
const ex = @import("export.zig");
const entry = ex.entry;
const blocking = ex.blocking;
const send = @import("send.zig");
const recv = @import("recv.zig");
const pool = @import("udp_recv.zig");
const udp_send = @import("udp_send.zig");
const tcp = @import("tcp.zig");
const buffer = @import("buffer.zig");
const diag = @import("diag.zig");
const lifecycle = @import("lifecycle.zig");
const chunk = @import("chunk.zig");

/// ABI version, returned by `spead_library_version`.
pub const abi_version: u32 = 1;

fn libraryVersion() u32 {
    return abi_version;
}

pub const exports = [_]ex.Export{
    // common
    entry("spead_library_version", libraryVersion, "", "ABI version; also the trivial call of bench/ffi.ts."),
    entry("spead_flavour_check", send.flavourCheck, "version item_pointer_bits heap_address_bits bug_compat", "invalid_flavour unless spead2 would accept the flavour."),

    // send: heaps as item tables
    entry("spead_heap_encoded_size", send.heapEncodedSize, "items item_count heap_address_bits packet_size_max repeat_pointers out", "Writes a HeapEncoding: the total bytes and packets of a heap's encoding."),
    entry("spead_heap_encode", send.heapEncode, "items item_count heap_address_bits bug_compat cnt_in packet_size_max repeat_pointers out capacity out_len", "All packets of a heap, concatenated; buffer_too_small writes the needed size."),
    entry("spead_packet_gen_create", send.packetGenCreate, "items item_count heap_address_bits bug_compat cnt_in packet_size_max repeat_pointers out_handle", "A packet generator over a copy of the table (the item bytes must outlive it)."),
    entry("spead_packet_gen_next", send.packetGenNext, "handle out capacity out_len", "The next packet; out_len = 0 when finished."),
    entry("spead_packet_gen_destroy", send.packetGenDestroy, "handle", "Frees a packet generator."),

    // descriptors
    entry("spead_descriptor_encode", send.descriptorEncode, "fields out capacity out_len", "One descriptor packet (DescriptorFields), as spead2's encode_descriptor."),
    entry("spead_descriptor_decode", send.descriptorDecode, "bug_compat bytes len out capacity_words out_words", "Parses a descriptor item value: a DescriptorDecoded, its pairs and strings (docs/ABI.md)."),

    // receive streams
    entry("spead_recv_stream_create", recv.createStream, "config out_handle", "A receive stream (RecvStreamConfig)."),
    entry("spead_recv_stream_add_buffer", recv.addBuffer, "handle bytes len", "Copies the bytes; a reader thread feeds them and then stops the stream."),
    entry("spead_recv_stream_add_native_buffer", recv.addNativeBuffer, "handle buffer offset_lo offset_hi len_lo len_hi", "Reads len bytes at offset of a native buffer (spead_buffer_alloc) in place; the reader holds a reference on it."),
    entry("spead_recv_stream_add_file", recv.addFile, "handle path path_len", "Maps a file of concatenated packets read-only; a reader thread feeds it in place and then stops the stream."),
    entry("spead_recv_stream_add_capture", recv.addCapture, "handle path path_len port", "Maps a pcap or pcapng capture read-only; a reader thread feeds its UDP datagrams (to `port`, 0 = all) and then stops the stream."),
    entry("spead_recv_stream_try_pop", recv.tryPop, "handle out_heap", "ok + heap handle, empty, or stopped."),
    blocking("spead_recv_stream_pop", recv.pop, "handle timeout_ms out_heap", "Blocking pop; empty on timeout."),
    blocking("spead_recv_stream_pop_batch", recv.popBatch, "handle timeout_ms out_heaps capacity out_count", "Pops every ready heap (up to capacity), waiting up to timeout_ms for the first; out_count >= 1 on success."),
    blocking("spead_recv_stream_wait", recv.wait, "handle timeout_ms", "Blocks until a heap is ready or the stream stopped (ok), or timeout (empty)."),
    entry("spead_recv_stream_set_notify", recv.setNotify, "handle callback", "Doorbell called from a native thread once per arm; null disables."),
    entry("spead_recv_stream_arm", recv.arm, "handle", "Re-arms the doorbell; fires at once if something is ready."),
    entry("spead_recv_stream_stop", recv.stop, "handle", "Stops the readers and flushes live heaps; idempotent."),
    entry("spead_recv_stream_destroy", recv.destroy, "handle", "Stop + free everything not yet popped; popped heaps stay valid."),
    entry("spead_recv_stream_stats", recv.stats.values, "handle out capacity out_count", "Stat values in the order of spead_recv_stream_stat_name."),
    entry("spead_recv_stream_stat_name", recv.stats.name, "index out capacity out_len", "Name of stat `index`."),
    entry("spead_recv_stream_add_udp_reader", pool.addUdpReader, "handle endpoint interface_address interface_index packet_size_max buffer_size out_info", "A UDP reader thread for the stream, bound to an Endpoint (family 0: any address); interface_address (IPv4, may be null) or interface_index (IPv6 multicast); out_info is a UdpReaderInfo."),

    entry("spead_recv_stream_add_tcp_reader", tcp.addTcpReader, "handle endpoint max_size buffer_size out_info", "A TCP reader thread for the stream: listens on an Endpoint (family 0: any IPv4 address), accepts one connection and stops the stream when the peer closes; max_size 0 takes spead2's default (65536), buffer_size 0 the kernel's; out_info is a TcpReaderInfo."),

    // UDP send streams
    entry("spead_udp_send_stream_create", udp_send.create, "endpoints endpoint_count interface_address config out_handle", "A UDP send stream (SendStreamConfig) to endpoint_count Endpoint records (substream i = endpoint i); interface_address may be null."),
    entry("spead_tcp_send_stream_create", udp_send.createTcp, "endpoint interface_address config out_handle", "A TCP send stream (spead2's TcpStream): connects to one Endpoint (system_error with the errno when refused) and writes packets back to back; the handle is a send-stream handle for the spead_udp_send_stream_* calls (ttl must be -1, no GSO)."),
    entry("spead_udp_send_stream_send", udp_send.send, "handle heaps heap_count items item_count mode token_in out_cnts", "Queues a group of heaps (HeapRecords over one item table), all or none."),
    entry("spead_udp_send_stream_poll", udp_send.poll, "handle out capacity_records out_count", "Finished groups as SendCompletion records."),
    blocking("spead_udp_send_stream_wait", udp_send.wait, "handle timeout_ms", "Blocks until a completion is ready (ok), timeout (empty) or stopped."),
    blocking("spead_udp_send_stream_flush", udp_send.flush, "handle timeout_ms", "Blocks until every queued heap is sent."),
    entry("spead_udp_send_stream_set_notify", udp_send.setNotify, "handle callback", "Doorbell called from the I/O thread once per arm; null disables."),
    entry("spead_udp_send_stream_arm", udp_send.arm, "handle", "Re-arms the doorbell; fires at once if a completion is ready."),
    entry("spead_udp_send_stream_set_cnt_sequence", udp_send.setCntSequence, "handle sequence", "Sets the automatic cnt sequence (a CntSequence; step 0 is invalid_argument)."),
    entry("spead_udp_send_stream_stats", udp_send.stats.values, "handle out capacity out_count", "Stat values in the order of spead_udp_send_stream_stat_name."),
    entry("spead_udp_send_stream_stat_name", udp_send.stats.name, "index out capacity out_len", "Name of stat `index`."),
    entry("spead_udp_send_stream_stop", udp_send.stop, "handle", "Stops the stream; queued heaps fail."),
    entry("spead_udp_send_stream_destroy", udp_send.destroy, "handle", "Stop + free, once no call is inside."),

    // memory pools
    entry("spead_memory_pool_create", pool.createPool, "config out_handle", "A memory pool (MemoryPoolConfig)."),
    entry("spead_memory_pool_destroy", pool.destroyPool, "handle", "Invalidates the handle; memory still in use lives on."),
    entry("spead_memory_pool_stats", pool.pool_stats.values, "handle out capacity out_count", "Stat values in the order of spead_memory_pool_stat_name."),
    entry("spead_memory_pool_stat_name", pool.pool_stats.name, "index out capacity out_len", "Name of stat `index`."),

    // stable send buffers
    entry("spead_buffer_alloc", buffer.alloc, "size_lo size_hi flags out", "Native memory for item bytes; out is a BufferInfo."),
    entry("spead_buffer_free", buffer.free, "handle", "Frees a send buffer."),

    // diagnostics
    entry("spead_process_stats", diag.processStats, "out", "Writes ProcessCounters: page faults, open fds, threads."),
    entry("spead_last_error", diag.lastError, "out_errno out capacity out_len", "The calling thread's last failed system call: errno and text (\"bind 127.0.0.1:8888\")."),
    entry("spead_errno_name", diag.errnoName, "errno out capacity out_len", "The symbolic name of a Linux errno (\"EADDRINUSE\")."),

    // process lifetime
    entry("spead_shutdown", lifecycle.shutdown, "", "Stops and joins every native thread (exit hooks); invalid_state if the library could not pin itself."),

    // chunk streams (docs/ABI.md "Chunk streams")
    entry("spead_chunk_create", chunk.createChunk, "sizes out_handle", "A chunk of ChunkSizes. The memory is mapped and populated now."),
    entry("spead_chunk_info", chunk.chunkInfo, "handle out", "Writes a ChunkInfo. `invalid_state` while the library holds the chunk."),
    entry("spead_chunk_destroy", chunk.destroyChunk, "handle", "Frees a chunk JS holds (`invalid_state` while the library holds it)."),
    entry("spead_chunk_ring_create", chunk.createRing, "capacity out_handle", "A chunk ring of `capacity` chunks."),
    entry("spead_chunk_ring_destroy", chunk.destroyRing, "handle", "Stops the ring and drops JS's reference; chunks still inside are freed with the last reference (streams using the ring hold one each)."),
    entry("spead_chunk_ring_put", chunk.ringPut, "handle chunk_handle", "Gives a chunk JS holds to the ring without waiting: `queue_full` or `stopped` leave it with JS."),
    blocking("spead_chunk_ring_pop", chunk.ringPop, "handle timeout_ms out_chunk", "Takes the oldest chunk, waiting up to `timeout_ms`: `empty` on timeout, `stopped` once the ring is stopped and drained. JS then holds the chunk."),
    blocking("spead_chunk_ring_wait", chunk.ringWait, "handle timeout_ms", "Waits until a chunk is ready or the ring stopped (`empty` on timeout)."),
    entry("spead_chunk_ring_set_notify", chunk.ringSetNotify, "handle callback", "Doorbell called from a native thread once per arm; null disables."),
    entry("spead_chunk_ring_arm", chunk.ringArm, "handle", "Re-arms the doorbell; fires at once if a chunk is ready."),
    entry("spead_chunk_ring_stop", chunk.ringStop, "handle", "Stops the ring; waiters wake with stopped."),
    entry("spead_chunk_ring_size", chunk.ringSize, "handle out", "Writes a ChunkRingState: chunks inside, capacity, stopped."),
    entry("spead_chunk_stream_create", chunk.createChunkStream, "stream_config chunk_words chunk_word_count user_data user_len data_ring free_ring out_handle", "Creates a chunk ring stream; the handle is a receive-stream handle."),
    entry("spead_chunk_group_create", chunk.createGroup, "chunks_max eviction_mode data_ring free_ring out_handle", "Creates a chunk stream group (spead2's chunk_stream_ring_group); `eviction_mode` 0 = LOSSY, 1 = LOSSLESS."),
    entry("spead_chunk_group_add_stream", chunk.groupAddStream, "group stream_config chunk_words chunk_word_count user_data user_len out_handle", "Adds a member stream (spead2's emplace_back); the handle is a receive-stream handle. `invalid_state` once the group has received data."),
    entry("spead_chunk_group_stop", chunk.groupStop, "handle", "Stops the rings and every member."),
    entry("spead_chunk_group_destroy", chunk.groupDestroy, "handle", "Stops the group and drops JS's reference (members hold theirs until destroyed)."),
    entry("spead_chunk_stream_stats", chunk.chunk_stream_stats.values, "handle out capacity out_count", "The chunk stream's own counters (after the stream's: `too_old_heaps`, `rejected_heaps`)."),
    entry("spead_chunk_stream_stat_name", chunk.chunk_stream_stats.name, "index out capacity out_len", "Name of chunk stream stat `index`."),
    entry("spead_chunk_rule_check", chunk.ruleCheck, "words word_count out", "Validates place-rule words; writes a ChunkRuleInfo: heaps per chunk, chunk data and extra bytes."),
    entry("spead_chunk_place_lookup", chunk.placeLookup, "path path_len symbol symbol_len out", "Loads a shared library (kept loaded) and writes the address of a place function in it (`system_error`: cannot load; `invalid_argument`: no symbol)."),

    // received heaps
    entry("spead_recv_heap_describe", recv.describe, "handle out capacity_words out_words", "A HeapDescription, then its ItemDescriptions (u64 words)."),
    entry("spead_recv_heap_release", recv.releaseHeap, "handle", "Frees a received heap; the handle becomes stale."),
};

/// Non-zero statuses that are results of an export, not failures: the TS
/// facade (`bindLib` in ffi/abi.gen.ts) returns them to the caller instead of
/// throwing (every other negative status throws a SpeadError). A name that is
/// not an export fails to compile.
pub const Results = struct { name: []const u8, statuses: []const status.Status };

pub const results = [_]Results{
    // queues: nothing ready yet (empty) and the end (stopped) are what a pop or a wait reports
    .{ .name = "spead_recv_stream_try_pop", .statuses = &.{ .empty, .stopped } },
    .{ .name = "spead_recv_stream_pop", .statuses = &.{ .empty, .stopped } },
    .{ .name = "spead_recv_stream_pop_batch", .statuses = &.{ .empty, .stopped } },
    .{ .name = "spead_recv_stream_wait", .statuses = &.{ .empty, .stopped } },
    .{ .name = "spead_udp_send_stream_wait", .statuses = &.{ .empty, .stopped } },
    .{ .name = "spead_udp_send_stream_flush", .statuses = &.{.empty} },
    .{ .name = "spead_chunk_ring_pop", .statuses = &.{ .empty, .stopped } },
    .{ .name = "spead_chunk_ring_wait", .statuses = &.{ .empty, .stopped } },
    // grow-and-retry: the call wrote the size it needs
    .{ .name = "spead_recv_heap_describe", .statuses = &.{.buffer_too_small} },
    .{ .name = "spead_descriptor_encode", .statuses = &.{.buffer_too_small} },
    .{ .name = "spead_descriptor_decode", .statuses = &.{.buffer_too_small} },
    // stat names: an index past the last name ends the list
    .{ .name = "spead_recv_stream_stat_name", .statuses = &.{.invalid_argument} },
    .{ .name = "spead_udp_send_stream_stat_name", .statuses = &.{.invalid_argument} },
    .{ .name = "spead_memory_pool_stat_name", .statuses = &.{.invalid_argument} },
    .{ .name = "spead_chunk_stream_stat_name", .statuses = &.{.invalid_argument} },
    // refusals the caller explains in its own words (src/recv/chunk_stream.ts)
    .{ .name = "spead_chunk_rule_check", .statuses = &.{.invalid_argument} },
    .{ .name = "spead_chunk_place_lookup", .statuses = &.{ .system_error, .invalid_argument } },
};

/// The statuses `results` lists for the export called `name` (none: every error throws).
pub fn resultsOf(comptime name: []const u8) []const status.Status {
    @setEvalBranchQuota(100_000);
    inline for (results) |r| {
        if (comptime std.mem.eql(u8, r.name, name)) return r.statuses;
    }
    return &.{};
}

comptime {
    @setEvalBranchQuota(100_000);
    for (results) |r| _ = find(r.name);
}

/// Every export's C function under its name, for tests that call the ABI as C
/// does: `const capi = abi.fns;` then `capi.spead_recv_stream_stop(handle)`.
pub const fns: Fns = .{};

const Fns = blk: {
    @setEvalBranchQuota(100_000);
    var fields: [exports.len]std.builtin.Type.StructField = undefined;
    for (exports, 0..) |e, i| {
        const function = e.c();
        fields[i] = .{
            .name = e.name,
            .type = @TypeOf(function),
            .default_value_ptr = @ptrCast(&function),
            .is_comptime = true,
            .alignment = @alignOf(@TypeOf(function)),
        };
    }
    break :blk @Type(.{ .@"struct" = .{ .layout = .auto, .fields = &fields, .decls = &.{}, .is_tuple = false } });
};

/// For tests of the exports: `actual` (a C function's result) is `expected`.
pub fn expectStatus(expected: status.Status, actual: i32) !void {
    try std.testing.expectEqual(@intFromEnum(expected), actual);
}

fn find(comptime name: []const u8) ex.Export {
    inline for (exports) |e| {
        if (comptime std.mem.eql(u8, e.name, name)) return e;
    }
    @compileError("no export " ++ name);
}

/// Exports every entry under its name.
pub fn exportAll() void {
    inline for (exports) |e| @export(e.c(), .{ .name = e.name });
}

comptime {
    @setEvalBranchQuota(100_000);
    for (exports, 0..) |a, i| {
        for (exports[0..i]) |b| {
            if (std.mem.eql(u8, a.name, b.name)) @compileError("export declared twice: " ++ a.name);
        }
    }
}
