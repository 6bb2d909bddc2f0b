//! C ABI of the receive side (docs/ABI.md "Receive side"): streams and the
//! frozen heaps popped from them. Everything from JS is checked here; a bad
//! handle, pointer or value is a status, never a crash.
const std = @import("std");
const status = @import("../core/status.zig");
const Error = status.Error;
const handles = @import("../core/handles.zig");
const reassembly = @import("../recv/reassembly.zig");
const recv_stream = @import("../recv/stream.zig");
const Stream = recv_stream.Stream;
const FrozenHeap = reassembly.FrozenHeap;
const records = @import("records.zig");
const RecvStreamConfig = records.RecvStreamConfig;

pub const streams_capacity = 1024;
pub const heaps_capacity = 65536;
/// `RecvStreamConfig.allocator_flags`: how heap payloads are allocated when no pool is given.
pub const allocator_flag_mmap_huge: u32 = 1 << 0;
pub const allocator_flag_mmap: u32 = 1 << 1;

const StreamLeases = handles.LeaseTable(Stream, streams_capacity);
var stream_table: StreamLeases = .{};
var heap_table: handles.Table(FrozenHeap, heaps_capacity) = .{};

/// Serialises describe and release, so a racing release cannot free a heap
/// that describe is reading.
var heaps_guard: std.Thread.Mutex = .{};

const metadata_allocator = std.heap.c_allocator;

/// How long destroy waits for calls in progress to leave (they are woken by the
/// stop, so this only matters if something is badly wrong).
const destroy_wait_ms = 10_000;

const pools = @import("udp_recv.zig");
const memory_pool = @import("../core/memory_pool.zig");
const affinity = @import("../core/affinity.zig");

/// A stream held for the length of one call (see `acquire`).
pub const Acquired = struct {
    lease: StreamLeases.Lease,
    stream: *Stream,

    pub fn release(self: Acquired) void {
        self.lease.release();
    }
};

/// Looks a stream up and keeps it alive (destroy waits) until `release`.
pub fn acquire(handle: u32) Error!Acquired {
    const lease = try stream_table.lease(handle);
    return .{ .lease = lease, .stream = lease.object };
}

fn flag(value: u32) Error!bool {
    return switch (value) {
        0 => false,
        1 => true,
        else => error.InvalidArgument,
    };
}

pub fn parseConfig(c: *const RecvStreamConfig) Error!recv_stream.Config {
    if (c.bug_compat > 7) return error.InvalidArgument;
    const heap_length_max: u64 = if (c.heap_length_max_mib == 0) reassembly.heap_length_max_default else @as(u64, c.heap_length_max_mib) << 20;
    const config: recv_stream.Config = .{
        .reassembly = .{
            .heaps_max = c.heaps_max,
            .substreams = c.substreams,
            .bug_compat = @intCast(c.bug_compat),
            .allow_out_of_order = try flag(c.allow_out_of_order),
            .allow_unsized_heaps = try flag(c.allow_unsized_heaps),
            .stop_on_stop_item = try flag(c.stop_on_stop_item),
            .heap_length_max = heap_length_max,
            .memcpy = std.meta.intToEnum(reassembly.Memcpy, c.memcpy) catch return error.InvalidArgument,
        },
        .ring_heaps = c.ring_heaps,
        .contiguous_only = try flag(c.contiguous_only),
        // Checked against the CPU count by validate().
        .reader_cpu = if (c.reader_core == affinity.none_u32) null else c.reader_core,
    };
    try config.validate();
    return config;
}

/// A stream made elsewhere (chunk streams, zig/abi/chunk.zig) gets a handle
/// here, so every stream export (readers, stats, stop, destroy) works on it.
pub fn registerStream(stream: *Stream) Error!u32 {
    const handle = try stream_table.insert(stream);
    stream.handle = handle;
    return handle;
}

pub fn createStream(config_in: ?*const RecvStreamConfig, out_handle: ?*u32) Error!void {
    const out = out_handle orelse return error.InvalidArgument;
    const c = config_in orelse return error.InvalidArgument;
    const config = try parseConfig(c);

    var payload_allocator = try defaultPayloadAllocator(c.allocator_flags);
    // A pool is the stream's allocator; flags for another one contradict it.
    if (c.memory_pool != 0 and c.allocator_flags != 0) return error.InvalidArgument;
    var pool: ?reassembly.PayloadAllocator = null;
    if (c.memory_pool != 0) {
        pool = try pools.acquirePool(c.memory_pool);
        payload_allocator = pool.?;
    }
    errdefer if (pool) |p| pools.releasePool(p);

    const stream = try Stream.create(metadata_allocator, payload_allocator, config);
    errdefer stream.destroy();
    stream.owner_pool = pool;
    const handle = try stream_table.insert(stream);
    stream.handle = handle;
    out.* = handle;
}

/// `allocator_flags`: 0 = malloc + prefault, bit 0 = mmap preferring huge pages,
/// bit 1 = mmap with normal pages. Both bits, or others, are refused.
fn defaultPayloadAllocator(flags: u32) Error!reassembly.PayloadAllocator {
    return switch (flags) {
        0 => reassembly.c_payload_allocator.payloadAllocator(),
        allocator_flag_mmap_huge => memory_pool.mmap_huge_payload_allocator.payloadAllocator(),
        allocator_flag_mmap => memory_pool.mmap_payload_allocator.payloadAllocator(),
        else => error.InvalidArgument,
    };
}

pub fn addBuffer(handle: u32, bytes: ?[*]const u8, len: u32) Error!void {
    if (bytes == null and len > 0) return error.InvalidArgument;
    const a = try acquire(handle);
    defer a.release();
    const slice: []const u8 = if (len == 0) &.{} else bytes.?[0..len];
    try recv_stream.BufferReader.add(a.stream, slice);
}

const native_buffers = @import("buffer.zig");
const NativeBuffer = @import("../send/buffer.zig").Buffer;

fn releaseNativeBuffer(ctx: *anyopaque) void {
    const buffer: *NativeBuffer = @ptrCast(@alignCast(ctx));
    buffer.release();
}

/// Reads `len` bytes at `offset` of native buffer `buffer` (spead_buffer_alloc)
/// in place, without a copy; the reader holds a reference on the buffer until
/// it finishes, so freeing the buffer meanwhile is safe.
pub fn addNativeBuffer(handle: u32, buffer_handle: u32, offset_lo: u32, offset_hi: u32, len_lo: u32, len_hi: u32) Error!void {
    const a = try acquire(handle);
    defer a.release();
    const buffer = try native_buffers.retain(buffer_handle);
    errdefer buffer.release();
    const offset = @as(u64, offset_hi) << 32 | offset_lo;
    const len = @as(u64, len_hi) << 32 | len_lo;
    if (offset > buffer.bytes.len or len > buffer.bytes.len - offset) return error.InvalidArgument;
    const bytes = buffer.bytes[@intCast(offset)..][0..@intCast(len)];
    try recv_stream.BufferReader.addBorrowed(a.stream, .{ .bytes = bytes, .ctx = buffer, .release = releaseNativeBuffer });
}

/// Maps the file at `path` (`path_len` bytes, no terminator) read-only and
/// reads it as concatenated packets, then stops the stream
/// (zig/recv/file_reader.zig). The mapping is the reader's own.
pub fn addFile(handle: u32, path: ?[*]const u8, path_len: u32) Error!void {
    const p = path orelse return error.InvalidArgument;
    const a = try acquire(handle);
    defer a.release();
    try file_reader.add(a.stream, p[0..path_len]);
}

/// Maps the pcap or pcapng capture at `path` read-only and feeds its UDP datagrams (to
/// destination `port`, or all if 0), then stops the stream
/// (zig/recv/file_reader.zig `addCapture`). `malformed` when the file is
/// neither format, or a classic capture of a link type zig/recv/pcap.zig does not read.
pub fn addCapture(handle: u32, path: ?[*]const u8, path_len: u32, port: u32) Error!void {
    const p = path orelse return error.InvalidArgument;
    const dest_port = std.math.cast(u16, port) orelse return error.InvalidArgument;
    const a = try acquire(handle);
    defer a.release();
    try file_reader.addCapture(a.stream, p[0..path_len], dest_port);
}

const file_reader = @import("../recv/file_reader.zig");

fn claimHandle(heap: *FrozenHeap) Error!u32 {
    return heap_table.insert(heap);
}

pub fn pop(handle: u32, timeout_ms: u32, out_heap: ?*u32) Error!void {
    const out = out_heap orelse return error.InvalidArgument;
    const a = try acquire(handle);
    defer a.release();
    out.* = try a.stream.popClaim(timeout_ms, u32, claimHandle);
}

pub fn tryPop(handle: u32, out_heap: ?*u32) Error!void {
    return pop(handle, 0, out_heap);
}

/// Largest batch one pop_batch call may ask for.
pub const pop_batch_max = 4096;

pub fn popBatch(handle: u32, timeout_ms: u32, out_heaps: ?[*]u32, cap: u32, out_count: ?*u32) Error!void {
    const count_out = out_count orelse return error.InvalidArgument;
    count_out.* = 0;
    const out = out_heaps orelse return error.InvalidArgument;
    if (cap == 0 or cap > pop_batch_max) return error.InvalidArgument;
    const a = try acquire(handle);
    defer a.release();
    count_out.* = @intCast(try a.stream.popBatchClaim(timeout_ms, u32, claimHandle, out[0..cap]));
}

pub fn wait(handle: u32, timeout_ms: u32) Error!void {
    const a = try acquire(handle);
    defer a.release();
    try a.stream.wait(timeout_ms);
}

pub fn setNotify(handle: u32, callback: ?recv_stream.NotifyFn) Error!void {
    const a = try acquire(handle);
    defer a.release();
    a.stream.setNotify(callback);
}

pub fn arm(handle: u32) Error!void {
    const a = try acquire(handle);
    defer a.release();
    a.stream.arm();
}

pub fn stop(handle: u32) Error!void {
    const a = try acquire(handle);
    defer a.release();
    a.stream.stop();
}

/// Stops every live stream and joins its reader threads (process shutdown,
/// zig/abi/lifecycle.zig); the streams stay valid until destroyed.
pub fn stopAll() void {
    var live: [streams_capacity]u32 = undefined;
    const n = stream_table.liveHandles(&live);
    for (live[0..n]) |h| stop(h) catch {}; // destroyed meanwhile: nothing to stop
}

pub fn destroy(handle: u32) Error!void {
    // Wakes every waiter, then waits for calls in progress to leave (bounded:
    // past it the stream is leaked, never freed under a caller).
    const stream = try stream_table.retire(handle, Stream.stop, destroy_wait_ms);
    const pool = stream.owner_pool;
    stream.destroy();
    if (pool) |p| pools.releasePool(p);
}

fn readStats(handle: u32, values: *[recv_stream.stat_count]u64) Error!void {
    const a = try acquire(handle);
    defer a.release();
    a.stream.readStats(values);
}

/// `spead_recv_stream_stats` and `spead_recv_stream_stat_name`.
pub const stats = @import("stats.zig").Stats(&recv_stream.stat_names, readStats);

pub fn describe(handle: u32, out: ?[*]u64, cap_words: u32, out_words: ?*u32) Error!void {
    const words_out = out_words orelse return error.InvalidArgument;
    heaps_guard.lock();
    defer heaps_guard.unlock();
    const heap = try heap_table.get(handle);
    const needed = heap.describeWords();
    if (needed > std.math.maxInt(u32)) return error.CapacityExceeded;
    words_out.* = @intCast(needed);
    if (cap_words < needed) return error.BufferTooSmall;
    const dest = out orelse return error.InvalidArgument;
    heap.describe(dest[0..needed]);
}

pub fn releaseHeap(handle: u32) Error!void {
    heaps_guard.lock();
    defer heaps_guard.unlock();
    const heap = try heap_table.remove(handle);
    heap.deinit();
}

// ---------------------------------------------------------------------------
// Tests (through the exports, as JS calls them)

const testing = std.testing;
const abi = @import("table.zig");
const capi = abi.fns;
const packet_mod = @import("../recv/packet.zig");
const imm = packet_mod.imm;
const addr = packet_mod.addr;

/// A RecvStreamConfig as its 13 words (tests set fields by index).
fn defaultConfig() [13]u32 {
    return .{ 4, 1, 0, 0, 1, 1, 4, 1, 0, 0, 0, affinity.none_u32, 0 };
}

fn create(config: *const [13]u32, out: ?*u32) i32 {
    return capi.spead_recv_stream_create(@ptrCast(config), out);
}

const expectStatus = abi.expectStatus;

test "exports: create validates the config" {
    var h: u32 = 0;
    var config = defaultConfig();
    try expectStatus(.invalid_argument, capi.spead_recv_stream_create(null, &h));
    try expectStatus(.invalid_argument, create(&config, null));
    for ([_]struct { usize, u32 }{ .{ 0, 0 }, .{ 1, 0 }, .{ 2, 8 }, .{ 3, 2 }, .{ 6, 0 }, .{ 7, 5 }, .{ 10, 3 }, .{ 10, 4 }, .{ 11, 10000 }, .{ 11, 0xFFFF_FFFE }, .{ 12, 2 } }) |bad| {
        config = defaultConfig();
        config[bad[0]] = bad[1];
        try expectStatus(.invalid_argument, create(&config, &h));
    }
    config = defaultConfig();
    config[8] = 12345;
    try expectStatus(.invalid_handle, create(&config, &h));
    config = defaultConfig();
    try expectStatus(.ok, create(&config, &h));
    try testing.expect(h != 0);
    try expectStatus(.ok, capi.spead_recv_stream_destroy(h));
    try expectStatus(.invalid_handle, capi.spead_recv_stream_destroy(h));
    try expectStatus(.invalid_handle, capi.spead_recv_stream_stop(h));
    try expectStatus(.invalid_handle, capi.spead_recv_stream_try_pop(h, &h));
}

test "exports: buffer in, heaps out, describe, release, stats" {
    var h: u32 = 0;
    var config = defaultConfig();
    try expectStatus(.ok, create(&config, &h));
    defer _ = capi.spead_recv_stream_destroy(h);

    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var buf: [256]u8 = undefined;
    try bytes.appendSlice(packet_mod.buildTestPacket(&buf, 48, &.{
        imm(1, 0x123456), imm(2, 6), imm(3, 0), imm(4, 6), addr(0x2345, 0), imm(0x2346, 0xdeadbeef), addr(0x2347, 4),
    }, "abcdef"));
    try expectStatus(.ok, capi.spead_recv_stream_add_buffer(h, bytes.items.ptr, @intCast(bytes.items.len)));

    var heap: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_stream_pop(h, 5000, &heap));
    var words: [64]u64 = undefined;
    var n: u32 = 0;
    try expectStatus(.buffer_too_small, capi.spead_recv_heap_describe(heap, &words, 4, &n));
    try testing.expectEqual(@as(u32, 9 + 12), n);
    try expectStatus(.ok, capi.spead_recv_heap_describe(heap, &words, words.len, &n));
    try testing.expectEqual(@as(u64, 0x123456), words[0]);
    try testing.expectEqual(@as(u64, 6), words[1]);
    try testing.expectEqual(@as(u64, 0b11), words[3]);
    try testing.expectEqual(@as(u64, 48), words[4]);
    try testing.expectEqual(@as(u64, 6), words[7]);
    try testing.expectEqual(@as(u64, 3), words[8]);
    const payload: [*]const u8 = @ptrFromInt(@as(usize, @intCast(words[6])));
    try testing.expectEqualStrings("abcdef", payload[0..6]);
    try testing.expectEqualSlices(u64, &.{ 0x2345, 0, 0, 4 }, words[9..13]);
    try testing.expectEqualSlices(u64, &.{ 0x2347, 0, 4, 2 }, words[13..17]);
    try testing.expectEqualSlices(u64, &.{ 0x2346, 1, 0xdeadbeef, 6 }, words[17..21]);
    try expectStatus(.ok, capi.spead_recv_heap_release(heap));
    try expectStatus(.invalid_handle, capi.spead_recv_heap_release(heap));
    try expectStatus(.invalid_handle, capi.spead_recv_heap_describe(heap, &words, words.len, &n));
    try expectStatus(.invalid_handle, capi.spead_recv_heap_release(0));

    try expectStatus(.stopped, capi.spead_recv_stream_pop(h, 5000, &heap));
    try expectStatus(.stopped, capi.spead_recv_stream_try_pop(h, &heap));
    try expectStatus(.ok, capi.spead_recv_stream_wait(h, 0));

    var values: [recv_stream.stat_count]u64 = undefined;
    try expectStatus(.buffer_too_small, capi.spead_recv_stream_stats(h, &values, 3, &n));
    try testing.expectEqual(@as(u32, recv_stream.stat_count), n);
    try expectStatus(.ok, capi.spead_recv_stream_stats(h, &values, values.len, &n));
    try testing.expectEqual(@as(u64, 1), values[0]); // heaps
    try testing.expectEqual(@as(u64, 1), values[3]); // packets
    try testing.expectEqual(@as(u64, 1), values[6]); // single_packet_heaps

    var name: [64]u8 = undefined;
    var len: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_stream_stat_name(8, &name, name.len, &len));
    try testing.expectEqualStrings("worker_blocked", name[0..len]);
    try expectStatus(.buffer_too_small, capi.spead_recv_stream_stat_name(0, &name, 2, &len));
    try testing.expectEqual(@as(u32, 5), len);
    try expectStatus(.invalid_argument, capi.spead_recv_stream_stat_name(recv_stream.stat_count, &name, name.len, &len));
    try expectStatus(.stopped, capi.spead_recv_stream_add_buffer(h, bytes.items.ptr, @intCast(bytes.items.len)));
}

test "exports: popped heaps outlive their stream; destroy wakes a blocked pop" {
    var h: u32 = 0;
    var config = defaultConfig();
    try expectStatus(.ok, create(&config, &h));
    var buf: [256]u8 = undefined;
    const bytes = packet_mod.buildTestPacket(&buf, 40, &.{ imm(1, 1), imm(2, 3), imm(3, 0), imm(4, 3), addr(0x1000, 0) }, "xyz");
    try expectStatus(.ok, capi.spead_recv_stream_add_buffer(h, bytes.ptr, @intCast(bytes.len)));
    var heap: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_stream_pop(h, 5000, &heap));
    try expectStatus(.ok, capi.spead_recv_stream_destroy(h));
    var words: [16]u64 = undefined;
    var n: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_heap_describe(heap, &words, words.len, &n));
    const payload: [*]const u8 = @ptrFromInt(@as(usize, @intCast(words[6])));
    try testing.expectEqualStrings("xyz", payload[0..3]);
    try expectStatus(.ok, capi.spead_recv_heap_release(heap));

    // a pop blocked on another thread returns when the stream is destroyed
    try expectStatus(.ok, create(&config, &h));
    const Popper = struct {
        fn run(handle: u32, result: *i32) void {
            var out: u32 = 0;
            result.* = capi.spead_recv_stream_pop(handle, 60_000, &out);
        }
    };
    var result: i32 = 1;
    const thread = try std.Thread.spawn(.{}, Popper.run, .{ h, &result });
    std.time.sleep(20 * std.time.ns_per_ms);
    try expectStatus(.ok, capi.spead_recv_stream_destroy(h));
    thread.join();
    try testing.expect(result == @intFromEnum(status.Status.stopped) or result == @intFromEnum(status.Status.invalid_handle));
}

test "exports: allocator flags (mmap payloads) and reader affinity" {
    var config = defaultConfig();
    var h: u32 = 0;
    try expectStatus(.ok, create(&config, &h));
    try expectStatus(.ok, capi.spead_recv_stream_destroy(h));
    // A pool plus allocator flags contradict each other.
    var pool: u32 = 0;
    var pool_config: records.MemoryPoolConfig = .{ .lower = 0, .upper = 4096, .free_max = 2, .initial = 1, .low_water = 0, .flags = 0 };
    try expectStatus(.ok, capi.spead_memory_pool_create(&pool_config, &pool));
    config[8] = pool;
    config[10] = allocator_flag_mmap;
    try expectStatus(.invalid_argument, create(&config, &h));
    try expectStatus(.ok, capi.spead_memory_pool_destroy(pool));

    var buf: [256]u8 = undefined;
    const bytes = packet_mod.buildTestPacket(&buf, 40, &.{ imm(1, 1), imm(2, 5), imm(3, 0), imm(4, 5), addr(0x1000, 0) }, "mmap!");
    const allowed = try std.posix.sched_getaffinity(0);
    for ([_]u32{ allocator_flag_mmap, allocator_flag_mmap_huge }) |flags| {
        config = defaultConfig();
        config[10] = flags;
        if (allowed[0] & 1 != 0) config[11] = 0;
        try expectStatus(.ok, create(&config, &h));
        try expectStatus(.ok, capi.spead_recv_stream_add_buffer(h, bytes.ptr, @intCast(bytes.len)));
        var heap: u32 = 0;
        try expectStatus(.ok, capi.spead_recv_stream_pop(h, 5000, &heap));
        var n: u32 = 0;
        try expectStatus(.ok, capi.spead_recv_stream_destroy(h));
        var words: [16]u64 = undefined;
        try expectStatus(.ok, capi.spead_recv_heap_describe(heap, &words, words.len, &n));
        const payload: [*]const u8 = @ptrFromInt(@as(usize, @intCast(words[6])));
        try testing.expectEqualStrings("mmap!", payload[0..5]);
        // mmap payloads are page aligned
        try testing.expect(std.mem.isAligned(@intCast(words[6]), std.heap.pageSize()));
        try expectStatus(.ok, capi.spead_recv_heap_release(heap));
    }
}

test "exports: reader affinity failures are counted in the stats" {
    const allowed = try std.posix.sched_getaffinity(0);
    if (allowed[0] & 1 == 0) return error.SkipZigTest;
    var config = defaultConfig();
    config[11] = 0;
    var h: u32 = 0;
    try expectStatus(.ok, create(&config, &h));
    defer _ = capi.spead_recv_stream_destroy(h);
    try expectStatus(.ok, capi.spead_recv_stream_add_buffer(h, "", 0));
    var heap: u32 = 0;
    try expectStatus(.stopped, capi.spead_recv_stream_pop(h, 5000, &heap));
    var values: [recv_stream.stat_count]u64 = undefined;
    var n: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_stream_stats(h, &values, values.len, &n));
    try testing.expectEqual(@as(u64, 0), values[@intFromEnum(recv_stream.Stat.affinity_failures)]);
    var name: [64]u8 = undefined;
    var len: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_stream_stat_name(@intFromEnum(recv_stream.Stat.affinity_failures), &name, name.len, &len));
    try testing.expectEqualStrings("affinity_failures", name[0..len]);
}
