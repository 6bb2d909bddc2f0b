//! Stable send buffers: native memory that JS fills and hands to `send` by
//! address. Each buffer is its own anonymous mapping, populated when it is made
//! (MAP_POPULATE, so the first send does not take page faults), optionally on
//! huge pages (MAP_HUGETLB, falling back to normal pages). The memory never
//! moves and is never touched by the garbage collector. It is reference
//! counted: JS's handle holds one reference and a receive stream's buffer
//! reader reading it in place holds another, so the mapping lives until JS
//! has freed it and every reader is done (see abi/buffer.zig).
const std = @import("std");
const assert = std.debug.assert;
const Error = @import("../core/status.zig").Error;
const memory_pool = @import("../core/memory_pool.zig");

/// Largest buffer JS may ask for (as pool buffers).
pub const size_limit: u64 = memory_pool.upper_limit;

pub const Buffer = struct {
    /// The whole mapping: page-rounded, or huge-page-rounded when `huge`.
    bytes: []u8,
    huge: bool,
    refs: std.atomic.Value(u32) = std.atomic.Value(u32).init(1),
    allocator: std.mem.Allocator,

    /// Maps `size` bytes. `huge_page_size` 0 means normal pages only;
    /// otherwise huge pages of that size are tried first.
    /// `InvalidArgument` for 0 or more than `size_limit`; `OutOfMemory` when
    /// nothing can be mapped (or `size` exceeds physical memory).
    pub fn create(allocator: std.mem.Allocator, size: u64, huge_page_size: usize) Error!*Buffer {
        if (size == 0 or size > size_limit) return error.InvalidArgument;
        const self = allocator.create(Buffer) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const mapping = memory_pool.mapWith(@intCast(size), huge_page_size) orelse return error.OutOfMemory;
        assert(mapping.bytes.len >= size);
        self.* = .{ .bytes = mapping.bytes, .huge = mapping.huge, .allocator = allocator };
        return self;
    }

    /// Drops the creator's reference (see `release`); the memory goes back to
    /// the allocator it was created with.
    pub fn destroy(self: *Buffer, _: std.mem.Allocator) void {
        self.release();
    }

    /// Takes another reference (a reader reading the memory in place).
    pub fn retain(self: *Buffer) void {
        const before = self.refs.fetchAdd(1, .monotonic);
        assert(before > 0);
    }

    /// Drops a reference; the last one unmaps the memory.
    pub fn release(self: *Buffer) void {
        const before = self.refs.fetchSub(1, .acq_rel);
        assert(before > 0);
        if (before > 1) return;
        memory_pool.unmap(self.bytes);
        self.allocator.destroy(self);
    }

    pub fn address(self: *const Buffer) u64 {
        return @intFromPtr(self.bytes.ptr);
    }
};

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;
const builtin = @import("builtin");

test "buffers: page-rounded, writable, stable, unmapped on destroy" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const page = std.heap.pageSize();
    const buffer = try Buffer.create(testing.allocator, 10_001, 0);
    defer buffer.destroy(testing.allocator);
    try testing.expect(!buffer.huge);
    try testing.expectEqual(std.mem.alignForward(usize, 10_001, page), buffer.bytes.len);
    try testing.expect(std.mem.isAligned(@intCast(buffer.address()), page));
    for (buffer.bytes, 0..) |*b, i| b.* = @truncate(i);
    try testing.expectEqual(@as(u8, 0xff), buffer.bytes[255]);
    try testing.expectEqual(@as(u8, @truncate(buffer.bytes.len - 1)), buffer.bytes[buffer.bytes.len - 1]);
}

test "buffers: huge pages when the machine has them, else the fallback" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const size = 3 << 20;
    const buffer = try Buffer.create(testing.allocator, size, memory_pool.hugePageSize());
    defer buffer.destroy(testing.allocator);
    try testing.expectEqual(memory_pool.mappedLength(size, buffer.huge), buffer.bytes.len);
    if (memory_pool.hugePageSize() == 0) try testing.expect(!buffer.huge);
    @memset(buffer.bytes, 0x11);
    try testing.expectEqual(@as(u8, 0x11), buffer.bytes[size - 1]);
}

test "buffers: the memory lives until the last reference is dropped" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const buffer = try Buffer.create(testing.allocator, 4096, 0);
    buffer.retain();
    buffer.destroy(testing.allocator); // the creator lets go; a reader still holds it
    buffer.bytes[4095] = 7;
    try testing.expectEqual(@as(u8, 7), buffer.bytes[4095]);
    buffer.release(); // testing.allocator reports a leak if this did not free
}

test "buffers: bad sizes" {
    try testing.expectError(error.InvalidArgument, Buffer.create(testing.allocator, 0, 0));
    try testing.expectError(error.InvalidArgument, Buffer.create(testing.allocator, size_limit + 1, 0));
    if (memory_pool.memTotal() > 0 and memory_pool.memTotal() < size_limit) {
        try testing.expectError(error.OutOfMemory, Buffer.create(testing.allocator, memory_pool.memTotal() + 1, 0));
    }
}
