//! C ABI of chunk streams (docs/ABI.md "Chunk streams"): chunks, chunk rings,
//! chunk ring streams and place rules. A chunk stream is a receive stream: its
//! handle lives in zig/abi/recv.zig's table, so readers, stats, stop and
//! destroy are the stream exports.
//!
//! A chunk is either held by JS (`held_by_js`: JS may read its memory and
//! free it) or by the library (in a ring, a stream's window or a graveyard).
//! Exports that touch chunk memory refuse chunks the library holds.
const std = @import("std");
const assert = std.debug.assert;
const status = @import("../core/status.zig");
const Error = status.Error;
const handles = @import("../core/handles.zig");
const reassembly = @import("../recv/reassembly.zig");
const chunk_mod = @import("../recv/chunk.zig");
const chunk_group = @import("../recv/chunk_group.zig");
const Chunk = chunk_mod.Chunk;
const Ring = chunk_mod.Ring;
const recv_stream = @import("../recv/stream.zig");
const exports_recv = @import("recv.zig");
const records = @import("records.zig");
const RecvStreamConfig = records.RecvStreamConfig;
const ChunkInfo = records.ChunkInfo;
const ChunkSizes = records.ChunkSizes;
const ChunkRingState = records.ChunkRingState;
const ChunkRuleInfo = records.ChunkRuleInfo;

pub const chunks_capacity = 65536;
pub const rings_capacity = 1024;
pub const placer_rule: u64 = 0;
pub const placer_function: u64 = 1;

const allocator = std.heap.c_allocator;

var chunk_table: handles.Table(Chunk, chunks_capacity) = .{};
var ring_table: handles.Table(Ring, rings_capacity) = .{};
/// Serialises chunk lookups, ownership changes and disposal.
var chunks_guard: std.Thread.Mutex = .{};
/// Serialises ring lookups with destroy (a ring lives on while streams hold it).
var rings_guard: std.Thread.Mutex = .{};

// ---------------------------------------------------------------------------
// Chunks

fn disposeChunk(chunk: *Chunk) void {
    chunks_guard.lock();
    _ = chunk_table.remove(chunk.handle) catch unreachable;
    chunks_guard.unlock();
    chunk.destroy(allocator);
}

pub fn createChunk(sizes: ?*const ChunkSizes, out_handle: ?*u32) Error!void {
    const out = out_handle orelse return error.InvalidArgument;
    const s = sizes orelse return error.InvalidArgument;
    const chunk = try Chunk.create(allocator, @intCast(@min(s.data_size, 1 << 41)), @intCast(@min(s.present_size, 1 << 41)), @intCast(@min(s.extra_size, 1 << 41)));
    errdefer chunk.destroy(allocator);
    chunk.on_dispose = disposeChunk;
    chunks_guard.lock();
    defer chunks_guard.unlock();
    chunk.handle = try chunk_table.insert(chunk);
    out.* = chunk.handle;
}

fn jsChunk(handle: u32) Error!*Chunk {
    const chunk = try chunk_table.get(handle);
    if (!chunk.held_by_js) return error.InvalidState;
    return chunk;
}

pub fn chunkInfo(handle: u32, out: ?*ChunkInfo) Error!void {
    const info = out orelse return error.InvalidArgument;
    chunks_guard.lock();
    defer chunks_guard.unlock();
    const c = try jsChunk(handle);
    info.* = .{
        .data_address = @intFromPtr(c.data.ptr),
        .data_size = c.data.len,
        .present_address = @intFromPtr(c.present.ptr),
        .present_size = c.present.len,
        .extra_address = if (c.extra.len > 0) @intFromPtr(c.extra.ptr) else 0,
        .extra_size = c.extra.len,
        .chunk_id = c.chunk_id,
        .stream_id = c.stream_id,
    };
}

pub fn destroyChunk(handle: u32) Error!void {
    chunks_guard.lock();
    const c = jsChunk(handle) catch |err| {
        chunks_guard.unlock();
        return err;
    };
    _ = chunk_table.remove(handle) catch unreachable;
    chunks_guard.unlock();
    c.destroy(allocator);
}

// ---------------------------------------------------------------------------
// Rings

pub fn createRing(capacity: u32, out_handle: ?*u32) Error!void {
    const out = out_handle orelse return error.InvalidArgument;
    const ring = try Ring.create(allocator, capacity);
    errdefer ring.release();
    rings_guard.lock();
    defer rings_guard.unlock();
    ring.handle = try ring_table.insert(ring);
    out.* = ring.handle;
}

/// A ring held for one call (JS's reference cannot go away meanwhile).
fn acquireRing(handle: u32) Error!*Ring {
    return ring_table.retainUnder(&rings_guard, handle);
}

pub fn destroyRing(handle: u32) Error!void {
    const ring = try ring_table.removeUnder(&rings_guard, handle);
    // Nobody can serve it from JS any more: stop it, so no reader waits on it.
    ring.setNotify(null);
    ring.stop();
    ring.release();
}

pub fn ringPut(handle: u32, chunk_handle: u32) Error!void {
    const ring = try acquireRing(handle);
    defer ring.release();
    chunks_guard.lock();
    defer chunks_guard.unlock();
    const c = try jsChunk(chunk_handle);
    c.held_by_js = false;
    ring.tryPush(c) catch |err| {
        c.held_by_js = true;
        return err;
    };
}

pub fn ringPop(handle: u32, timeout_ms: u32, out_chunk: ?*u32) Error!void {
    const out = out_chunk orelse return error.InvalidArgument;
    const ring = try acquireRing(handle);
    defer ring.release();
    const c = try ring.pop(@as(u64, timeout_ms) * std.time.ns_per_ms);
    chunks_guard.lock();
    defer chunks_guard.unlock();
    assert(!c.held_by_js);
    c.held_by_js = true;
    out.* = c.handle;
}

pub fn ringWait(handle: u32, timeout_ms: u32) Error!void {
    const ring = try acquireRing(handle);
    defer ring.release();
    try ring.wait(@as(u64, timeout_ms) * std.time.ns_per_ms);
}

pub fn ringSetNotify(handle: u32, callback: ?recv_stream.NotifyFn) Error!void {
    const ring = try acquireRing(handle);
    defer ring.release();
    ring.setNotify(callback);
}

pub fn ringArm(handle: u32) Error!void {
    const ring = try acquireRing(handle);
    defer ring.release();
    ring.arm();
}

pub fn ringStop(handle: u32) Error!void {
    const ring = try acquireRing(handle);
    defer ring.release();
    ring.stop();
}

pub fn ringSize(handle: u32, out: ?*ChunkRingState) Error!void {
    const o = out orelse return error.InvalidArgument;
    const ring = try acquireRing(handle);
    defer ring.release();
    o.* = .{ .chunk_count = @intCast(ring.size()), .capacity = @intCast(ring.capacity()), .stopped = @intFromBool(ring.isStopped()) };
}

// ---------------------------------------------------------------------------
// Chunk streams

/// The chunk config words: [chunks_max, heap_extra_max, placer, ...] then for
/// placer 0 the rule words (`PlaceRule.fromWords`), for placer 1
/// [function address, item_count, item ids...].
pub const ParsedConfig = struct {
    config: chunk_mod.Config,
    items: [chunk_mod.items_max]u64,
};

fn parseChunkConfig(words_ptr: ?[*]const u64, word_count: u32) Error!ParsedConfig {
    const p = words_ptr orelse return error.InvalidArgument;
    if (word_count < 4 or word_count > 1024) return error.InvalidArgument;
    const words = p[0..word_count];
    var parsed: ParsedConfig = .{ .config = .{ .placer = undefined }, .items = undefined };
    if (words[0] == 0 or words[0] > 1 << 16 or words[1] > 1 << 20) return error.InvalidArgument;
    parsed.config.chunks_max = @intCast(words[0]);
    parsed.config.heap_extra_max = @intCast(words[1]);
    var item_count: usize = 0;
    switch (words[2]) {
        placer_rule => {
            var used: usize = 0;
            const rule = try chunk_mod.PlaceRule.fromWords(words[3..], &used);
            if (3 + used != words.len) return error.InvalidArgument;
            item_count = rule.item_count;
            @memcpy(parsed.items[0..item_count], rule.items[0..item_count]);
            parsed.config.placer = .{ .rule = rule };
        },
        placer_function => {
            if (words[3] == 0 or words.len < 5) return error.InvalidArgument;
            item_count = @intCast(@min(words[4], chunk_mod.items_max + 1));
            if (item_count > chunk_mod.items_max or words.len != 5 + item_count) return error.InvalidArgument;
            @memcpy(parsed.items[0..item_count], words[5..][0..item_count]);
            parsed.config.placer = .{ .function = .{ .place = @ptrFromInt(@as(usize, @intCast(words[3]))), .user_data = null } };
        },
        else => return error.InvalidArgument,
    }
    parsed.config.items = parsed.items[0..item_count];
    return parsed;
}

/// Everything a chunk stream is made from, read from JS's words.
const StreamArgs = struct {
    stream_config: recv_stream.Config,
    parsed: ParsedConfig,
    user: []const u8,

    fn read(
        stream_config: ?*const RecvStreamConfig,
        chunk_words: ?[*]const u64,
        chunk_word_count: u32,
        user_data: ?[*]const u8,
        user_len: u32,
    ) Error!StreamArgs {
        const config = stream_config orelse return error.InvalidArgument;
        // Payloads go into chunks: a memory pool or allocator flags mean nothing here.
        if (config.memory_pool != 0 or config.allocator_flags != 0) return error.InvalidArgument;
        if (user_data == null and user_len > 0) return error.InvalidArgument;
        if (user_len > 1 << 20) return error.InvalidArgument;
        return .{
            .stream_config = try exports_recv.parseConfig(config),
            .parsed = try parseChunkConfig(chunk_words, chunk_word_count),
            .user = if (user_len == 0) &.{} else user_data.?[0..user_len],
        };
    }

    /// The chunk config, its item list pointing into these args (they were copied on return).
    fn chunkConfig(self: *StreamArgs) chunk_mod.Config {
        self.parsed.config.items = self.parsed.items[0..self.parsed.config.items.len];
        return self.parsed.config;
    }
};

/// The payload allocator chunk streams are created with (malloc, as spead_recv_stream_create without a pool).
const payload_allocator = reassembly.c_payload_allocator.payloadAllocator();

/// Points a place function at the stream's copy of the user data, then gives
/// the stream a handle (or destroys it).
fn registerChunkStream(cs: *chunk_mod.ChunkStream, out: *u32) Error!void {
    errdefer cs.stream.destroy();
    switch (cs.config.placer) {
        .function => |*f| f.user_data = cs.userData(),
        .rule => {},
    }
    out.* = try exports_recv.registerStream(cs.stream);
}

pub fn createChunkStream(
    stream_config: ?*const RecvStreamConfig,
    chunk_words: ?[*]const u64,
    chunk_word_count: u32,
    user_data: ?[*]const u8,
    user_len: u32,
    data_ring_handle: u32,
    free_ring_handle: u32,
    out_handle: ?*u32,
) Error!void {
    const out = out_handle orelse return error.InvalidArgument;
    var args = try StreamArgs.read(stream_config, chunk_words, chunk_word_count, user_data, user_len);
    const data_ring = try acquireRing(data_ring_handle);
    defer data_ring.release();
    const free_ring = try acquireRing(free_ring_handle);
    defer free_ring.release();
    if (data_ring == free_ring) return error.InvalidArgument;
    const cs = try chunk_mod.createRingStream(allocator, payload_allocator, args.stream_config, args.chunkConfig(), args.user, data_ring, free_ring);
    try registerChunkStream(cs, out);
}

// ---------------------------------------------------------------------------
// Chunk stream groups

pub const groups_capacity = 256;
var group_table: handles.Table(chunk_group.Group, groups_capacity) = .{};
var groups_guard: std.Thread.Mutex = .{};

fn acquireGroup(handle: u32) Error!*chunk_group.Group {
    return group_table.retainUnder(&groups_guard, handle);
}

pub fn createGroup(chunks_max: u32, eviction_mode: u32, data_ring_handle: u32, free_ring_handle: u32, out_handle: ?*u32) Error!void {
    const out = out_handle orelse return error.InvalidArgument;
    if (eviction_mode > 1) return error.InvalidArgument;
    const data_ring = try acquireRing(data_ring_handle);
    defer data_ring.release();
    const free_ring = try acquireRing(free_ring_handle);
    defer free_ring.release();
    const group = try chunk_group.Group.create(allocator, .{ .chunks_max = chunks_max, .eviction_mode = @enumFromInt(eviction_mode) }, data_ring, free_ring);
    errdefer {
        group.stop();
        group.release();
    }
    groups_guard.lock();
    defer groups_guard.unlock();
    out.* = try group_table.insert(group);
}

pub fn groupAddStream(
    group_handle: u32,
    stream_config: ?*const RecvStreamConfig,
    chunk_words: ?[*]const u64,
    chunk_word_count: u32,
    user_data: ?[*]const u8,
    user_len: u32,
    out_handle: ?*u32,
) Error!void {
    const out = out_handle orelse return error.InvalidArgument;
    var args = try StreamArgs.read(stream_config, chunk_words, chunk_word_count, user_data, user_len);
    const group = try acquireGroup(group_handle);
    defer group.release();
    const cs = try group.addMember(payload_allocator, args.stream_config, args.chunkConfig(), args.user);
    try registerChunkStream(cs, out);
}

pub fn groupStop(handle: u32) Error!void {
    const group = try acquireGroup(handle);
    defer group.release();
    group.stop();
}

pub fn groupDestroy(handle: u32) Error!void {
    const group = try group_table.removeUnder(&groups_guard, handle);
    group.stop();
    group.release();
}

fn readChunkStreamStats(handle: u32, values: *[chunk_mod.stat_count]u64) Error!void {
    const a = try exports_recv.acquire(handle);
    defer a.release();
    const cs = chunk_mod.ChunkStream.fromStream(a.stream) orelse return error.InvalidHandle;
    for (values, 0..) |*value, i| value.* = cs.stat(@enumFromInt(i));
}

/// `spead_chunk_stream_stats` and `spead_chunk_stream_stat_name`.
pub const chunk_stream_stats = @import("stats.zig").Stats(&chunk_mod.stat_names, readChunkStreamStats);

pub fn ruleCheck(words: ?[*]const u64, word_count: u32, out: ?*ChunkRuleInfo) Error!void {
    const w = words orelse return error.InvalidArgument;
    const o = out orelse return error.InvalidArgument;
    if (word_count > 1024) return error.InvalidArgument;
    var used: usize = 0;
    const rule = try chunk_mod.PlaceRule.fromWords(w[0..word_count], &used);
    if (used != word_count) return error.InvalidArgument;
    o.* = .{ .heap_count = rule.heaps, .data_size = rule.chunk_bytes, .extra_size = rule.extra_bytes };
}

pub fn placeLookup(path: ?[*]const u8, path_len: u32, symbol: ?[*]const u8, symbol_len: u32, out: ?*u64) Error!void {
    const o = out orelse return error.InvalidArgument;
    const p = path orelse return error.InvalidArgument;
    const s = symbol orelse return error.InvalidArgument;
    if (path_len == 0 or path_len > 4096 or symbol_len == 0 or symbol_len > 256) return error.InvalidArgument;
    var path_z: [4097]u8 = undefined;
    var symbol_z: [257]u8 = undefined;
    @memcpy(path_z[0..path_len], p[0..path_len]);
    path_z[path_len] = 0;
    @memcpy(symbol_z[0..symbol_len], s[0..symbol_len]);
    symbol_z[symbol_len] = 0;
    if (std.mem.indexOfScalar(u8, path_z[0..path_len], 0) != null) return error.InvalidArgument;
    if (std.mem.indexOfScalar(u8, symbol_z[0..symbol_len], 0) != null) return error.InvalidArgument;
    // Never closed: a stream may call the function until the process ends.
    const lib = std.c.dlopen(@ptrCast(&path_z), .{ .NOW = true }) orelse return error.SystemError;
    const address = std.c.dlsym(lib, @ptrCast(&symbol_z)) orelse return error.InvalidArgument;
    o.* = @intFromPtr(address);
}

// ---------------------------------------------------------------------------
// Tests (through the exports)

const testing = std.testing;
const abi = @import("table.zig");
const capi = abi.fns;

const expectStatus = abi.expectStatus;

test "exports: chunks and rings, ownership is checked" {
    var chunk: u32 = 0;
    try expectStatus(.invalid_argument, capi.spead_chunk_create(&ChunkSizes{ .data_size = 0, .present_size = 1, .extra_size = 0 }, &chunk));
    try expectStatus(.ok, capi.spead_chunk_create(&ChunkSizes{ .data_size = 4096, .present_size = 4, .extra_size = 16 }, &chunk));
    var info: ChunkInfo = undefined;
    try expectStatus(.ok, capi.spead_chunk_info(chunk, &info));
    try testing.expectEqual(@as(u64, 4096), info.data_size);
    try testing.expectEqual(@as(u64, 4), info.present_size);
    try testing.expectEqual(@as(u64, 16), info.extra_size);
    var ring: u32 = 0;
    try expectStatus(.invalid_argument, capi.spead_chunk_ring_create(0, &ring));
    try expectStatus(.ok, capi.spead_chunk_ring_create(1, &ring));
    try expectStatus(.ok, capi.spead_chunk_ring_put(ring, chunk));
    try expectStatus(.invalid_state, capi.spead_chunk_info(chunk, &info));
    try expectStatus(.invalid_state, capi.spead_chunk_destroy(chunk));
    try expectStatus(.invalid_state, capi.spead_chunk_ring_put(ring, chunk));
    var size: ChunkRingState = undefined;
    try expectStatus(.ok, capi.spead_chunk_ring_size(ring, &size));
    try testing.expectEqual(ChunkRingState{ .chunk_count = 1, .capacity = 1, .stopped = 0 }, size);
    var popped: u32 = 0;
    try expectStatus(.ok, capi.spead_chunk_ring_pop(ring, 0, &popped));
    try testing.expectEqual(chunk, popped);
    try expectStatus(.empty, capi.spead_chunk_ring_pop(ring, 1, &popped));
    try expectStatus(.ok, capi.spead_chunk_ring_stop(ring));
    try expectStatus(.stopped, capi.spead_chunk_ring_pop(ring, 0, &popped));
    try expectStatus(.stopped, capi.spead_chunk_ring_put(ring, chunk));
    try expectStatus(.ok, capi.spead_chunk_info(chunk, &info));
    // A chunk left in a destroyed ring is freed with it; its handle goes stale.
    var ring2: u32 = 0;
    try expectStatus(.ok, capi.spead_chunk_ring_create(2, &ring2));
    try expectStatus(.ok, capi.spead_chunk_ring_put(ring2, chunk));
    try expectStatus(.ok, capi.spead_chunk_ring_destroy(ring2));
    try expectStatus(.invalid_handle, capi.spead_chunk_info(chunk, &info));
    try expectStatus(.invalid_handle, capi.spead_chunk_ring_put(ring2, chunk));
    try expectStatus(.ok, capi.spead_chunk_ring_destroy(ring));
}

test "exports: rule check and chunk stream config" {
    // tutorial 12: items [HEAP_LENGTH, 0x1600], heap 1024, 8 heaps per chunk
    const rule = [_]u64{ 2, 2, 0x1600, 1024, 1024, 1, 1024, 8, 1, 0, 0, 0, 0 };
    var out: ChunkRuleInfo = undefined;
    try expectStatus(.ok, capi.spead_chunk_rule_check(&rule, rule.len, &out));
    try testing.expectEqual(ChunkRuleInfo{ .heap_count = 8, .data_size = 8192, .extra_size = 0 }, out);
    var bad = rule;
    bad[6] = 0; // time_step
    try expectStatus(.invalid_argument, capi.spead_chunk_rule_check(&bad, bad.len, &out));
    try expectStatus(.invalid_argument, capi.spead_chunk_rule_check(&rule, rule.len - 1, &out));

    var data_ring: u32 = 0;
    var free_ring: u32 = 0;
    try expectStatus(.ok, capi.spead_chunk_ring_create(2, &data_ring));
    try expectStatus(.ok, capi.spead_chunk_ring_create(4, &free_ring));
    var words: [3 + rule.len]u64 = undefined;
    words[0] = 1;
    words[1] = 0;
    words[2] = placer_rule;
    @memcpy(words[3..], &rule);
    const stream_words = [_]u32{ 2, 1, 0, 0, 0, 1, 4, 1, 0, 0, 0, 0xFFFF_FFFF, 0 };
    var h: u32 = 0;
    try expectStatus(.ok, capi.spead_chunk_stream_create(@ptrCast(&stream_words), &words, words.len, null, 0, data_ring, free_ring, &h));
    var stats: [chunk_mod.stat_count]u64 = undefined;
    var n: u32 = 0;
    try expectStatus(.ok, capi.spead_chunk_stream_stats(h, &stats, stats.len, &n));
    try testing.expectEqual(@as(u32, 2), n);
    try expectStatus(.invalid_argument, capi.spead_chunk_stream_create(@ptrCast(&stream_words), &words, words.len, null, 0, data_ring, data_ring, &h));
    words[0] = 0;
    try expectStatus(.invalid_argument, capi.spead_chunk_stream_create(@ptrCast(&stream_words), &words, words.len, null, 0, data_ring, free_ring, &h));
    try expectStatus(.ok, capi.spead_recv_stream_destroy(h));
    try expectStatus(.ok, capi.spead_chunk_ring_destroy(data_ring));
    try expectStatus(.ok, capi.spead_chunk_ring_destroy(free_ring));
    var addr: u64 = undefined;
    try expectStatus(.system_error, capi.spead_chunk_place_lookup("/nonexistent.so", 15, "f", 1, &addr));
}

test "exports: a group with two members; adding after data is refused" {
    var data_ring: u32 = 0;
    var free_ring: u32 = 0;
    try expectStatus(.ok, capi.spead_chunk_ring_create(4, &data_ring));
    try expectStatus(.ok, capi.spead_chunk_ring_create(4, &free_ring));
    var g: u32 = 0;
    try expectStatus(.invalid_argument, capi.spead_chunk_group_create(2, 2, data_ring, free_ring, &g));
    try expectStatus(.invalid_argument, capi.spead_chunk_group_create(0, 0, data_ring, free_ring, &g));
    try expectStatus(.ok, capi.spead_chunk_group_create(2, 1, data_ring, free_ring, &g));
    const rule = [_]u64{ 2, 2, 0x1600, 1024, 1024, 1, 1024, 8, 1, 0, 0, 0, 0 };
    var words: [3 + rule.len]u64 = undefined;
    words[0] = 2;
    words[1] = 0;
    words[2] = placer_rule;
    @memcpy(words[3..], &rule);
    const stream_words = [_]u32{ 2, 1, 0, 0, 0, 1, 4, 1, 0, 0, 0, 0xFFFF_FFFF, 0 };
    var members: [2]u32 = undefined;
    for (&members) |*m| try expectStatus(.ok, capi.spead_chunk_group_add_stream(g, @ptrCast(&stream_words), &words, words.len, null, 0, m));
    words[0] = 3; // more chunks than the group
    var h: u32 = 0;
    try expectStatus(.invalid_argument, capi.spead_chunk_group_add_stream(g, @ptrCast(&stream_words), &words, words.len, null, 0, &h));
    try expectStatus(.ok, capi.spead_chunk_group_stop(g));
    try expectStatus(.stopped, capi.spead_chunk_ring_pop(data_ring, 0, &h));
    for (members) |m| try expectStatus(.ok, capi.spead_recv_stream_destroy(m));
    try expectStatus(.ok, capi.spead_chunk_group_destroy(g));
    try expectStatus(.invalid_handle, capi.spead_chunk_group_stop(g));
    try expectStatus(.ok, capi.spead_chunk_ring_destroy(data_ring));
    try expectStatus(.ok, capi.spead_chunk_ring_destroy(free_ring));
}
