//! C ABI of stable send buffers (docs/ABI.md "Send buffers"): native memory
//! for item bytes that JS writes through a view and passes to `send` by
//! address. Handles are generation-checked, so a double or stale free is
//! `invalid_handle`, never a second munmap.
const std = @import("std");
const status = @import("../core/status.zig");
const Error = status.Error;
const handles = @import("../core/handles.zig");
const memory_pool = @import("../core/memory_pool.zig");
const send_buffer = @import("../send/buffer.zig");
const Buffer = send_buffer.Buffer;
const BufferInfo = @import("records.zig").BufferInfo;

/// Table slots; slot 0 is never used, so at most `buffers_capacity - 1` live buffers.
pub const buffers_capacity = 4096;
pub const flag_prefer_huge: u32 = 1 << 0;

var buffer_table: handles.Table(Buffer, buffers_capacity) = .{};
const allocator = std.heap.c_allocator;
/// Makes "look up and take a reference" atomic with respect to free, so a
/// reader can never take a reference on a buffer whose last one is going.
var retain_guard: std.Thread.Mutex = .{};

pub fn alloc(size_lo: u32, size_hi: u32, flags: u32, out: ?*BufferInfo) Error!void {
    const info = out orelse return error.InvalidArgument;
    if (flags & ~flag_prefer_huge != 0) return error.InvalidArgument;
    const size = @as(u64, size_hi) << 32 | size_lo;
    const huge_page_size = if (flags & flag_prefer_huge != 0) memory_pool.hugePageSize() else 0;
    const buffer = try Buffer.create(allocator, size, huge_page_size);
    errdefer buffer.destroy(allocator);
    const handle = try buffer_table.insert(buffer);
    info.* = .{ .address = buffer.address(), .mapped_size = buffer.bytes.len, .handle = handle, .huge = @intFromBool(buffer.huge) };
}

pub fn free(handle: u32) Error!void {
    const buffer = try buffer_table.removeUnder(&retain_guard, handle);
    buffer.destroy(allocator);
}

/// A live buffer with a reference taken for the caller (`Buffer.release` it).
pub fn retain(handle: u32) Error!*Buffer {
    return buffer_table.retainUnder(&retain_guard, handle);
}

// ---------------------------------------------------------------------------
// Tests (through the exports)

const testing = std.testing;
const abi = @import("table.zig");
const capi = abi.fns;

const expectStatus = abi.expectStatus;

test "exports: alloc, write, read, free, double free" {
    var out: BufferInfo = undefined;
    try expectStatus(.ok, capi.spead_buffer_alloc(5000, 0, 0, &out));
    const page = std.heap.pageSize();
    try testing.expect(out.address != 0);
    try testing.expect(std.mem.isAligned(@intCast(out.address), page));
    try testing.expect(out.handle != 0);
    try testing.expectEqual(@as(u64, std.mem.alignForward(usize, 5000, page)), out.mapped_size);
    try testing.expectEqual(@as(u32, 0), out.huge);
    const bytes: [*]u8 = @ptrFromInt(@as(usize, @intCast(out.address)));
    for (bytes[0..@intCast(out.mapped_size)], 0..) |*b, i| b.* = @truncate(i * 3);
    try testing.expectEqual(@as(u8, @truncate(4999 * 3)), bytes[4999]);
    const handle = out.handle;
    try expectStatus(.ok, capi.spead_buffer_free(handle));
    try expectStatus(.invalid_handle, capi.spead_buffer_free(handle));
    try expectStatus(.invalid_handle, capi.spead_buffer_free(0));
    try expectStatus(.invalid_handle, capi.spead_buffer_free(0xffff_ffff));
}

test "exports: bad arguments" {
    var out: BufferInfo = .{ .address = 7, .mapped_size = 7, .handle = 7, .huge = 7 };
    try expectStatus(.invalid_argument, capi.spead_buffer_alloc(0, 0, 0, &out));
    try expectStatus(.invalid_argument, capi.spead_buffer_alloc(1, 256, 0, &out)); // 2^40 + 1
    try expectStatus(.invalid_argument, capi.spead_buffer_alloc(4096, 0, 2, &out));
    try expectStatus(.invalid_argument, capi.spead_buffer_alloc(4096, 0, 0, null));
    try testing.expectEqual(BufferInfo{ .address = 7, .mapped_size = 7, .handle = 7, .huge = 7 }, out); // untouched on error
    const total = memory_pool.memTotal();
    if (total > 0 and total < send_buffer.size_limit) {
        const size = total + 4096;
        try expectStatus(.out_of_memory, capi.spead_buffer_alloc(@truncate(size), @intCast(size >> 32), 0, &out));
    }
}

test "exports: prefer huge pages, with fallback" {
    var out: BufferInfo = undefined;
    const size: u64 = 5 << 20;
    try expectStatus(.ok, capi.spead_buffer_alloc(@truncate(size), @intCast(size >> 32), flag_prefer_huge, &out));
    try testing.expect(out.huge <= 1);
    if (memory_pool.hugePageSize() == 0) try testing.expectEqual(@as(u32, 0), out.huge);
    try testing.expectEqual(@as(u64, memory_pool.mappedLength(size, out.huge == 1)), out.mapped_size);
    const bytes: [*]u8 = @ptrFromInt(@as(usize, @intCast(out.address)));
    @memset(bytes[0..size], 0x5a);
    try testing.expectEqual(@as(u8, 0x5a), bytes[size - 1]);
    try expectStatus(.ok, capi.spead_buffer_free(out.handle));
}

test "exports: the table is bounded" {
    var handles_held: [buffers_capacity]u32 = undefined;
    var n: usize = 0;
    defer for (handles_held[0..n]) |h| {
        _ = capi.spead_buffer_free(h);
    };
    var out: BufferInfo = undefined;
    var result: i32 = 0;
    while (n < buffers_capacity) : (n += 1) {
        result = capi.spead_buffer_alloc(1, 0, 0, &out);
        if (result != 0) break;
        handles_held[n] = out.handle;
    }
    try expectStatus(.capacity_exceeded, result);
    try testing.expectEqual(@as(usize, buffers_capacity - 1), n);
}
