//! Stable send buffers: native memory that JS fills and hands to `send` by
//! address. Each buffer is its own anonymous mapping, populated when it is made
//! (MAP_POPULATE, so the first send does not take page faults), optionally on
//! huge pages: MAP_HUGETLB, else (no hugetlb pages reserved, the usual case) a
//! huge-page-aligned mapping with transparent huge pages requested
//! (MADV_HUGEPAGE, which THP's default "madvise" mode honours), else normal
//! pages. Huge pages make both the refill and the kernel's copy out of the
//! buffer cheaper (fewer TLB misses; bench/send.ts). The memory never
//! moves and is never touched by the garbage collector. It is reference
//! counted: JS's handle holds one reference and a receive stream's buffer
//! reader reading it in place holds another, so the mapping lives until JS
//! has freed it and every reader is done (see abi/buffer.zig).
const std = @import("std");
const assert = std.debug.assert;
const Error = @import("../core/status.zig").Error;
const memory_pool = @import("../core/memory_pool.zig");

/// madvise advice that faults every page in for writing (Linux 5.14).
const madv_populate_write = 23;

/// Largest buffer JS may ask for (as pool buffers).
pub const size_limit: u64 = memory_pool.upper_limit;

pub const Buffer = struct {
    /// The whole mapping: page-rounded, or huge-page-rounded when `huge`.
    bytes: []u8,
    /// On hugetlb pages, or a huge-page-aligned mapping with transparent huge pages requested.
    huge: bool,
    refs: std.atomic.Value(u32) = std.atomic.Value(u32).init(1),
    allocator: std.mem.Allocator,

    /// Maps `size` bytes. `huge_page_size` 0 means normal pages only;
    /// otherwise huge pages of that size are tried first (hugetlb, then
    /// transparent ones for buffers of at least one huge page).
    /// `InvalidArgument` for 0 or more than `size_limit`; `OutOfMemory` when
    /// nothing can be mapped (or `size` exceeds physical memory).
    pub fn create(allocator: std.mem.Allocator, size: u64, huge_page_size: usize) Error!*Buffer {
        if (size == 0 or size > size_limit) return error.InvalidArgument;
        // Populating more than physical memory could only end in the OOM killer.
        if (size > total(memory_pool.memTotal())) return error.OutOfMemory;
        const self = allocator.create(Buffer) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        if (huge_page_size > 0) {
            const len = std.mem.alignForward(usize, @intCast(size), huge_page_size);
            if (memory_pool.mmapRaw(len, true)) |bytes| {
                self.* = .{ .bytes = bytes, .huge = true, .allocator = allocator };
                return self;
            }
            if (size >= huge_page_size) {
                if (mapTransparentHuge(@intCast(size), huge_page_size)) |bytes| {
                    self.* = .{ .bytes = bytes, .huge = true, .allocator = allocator };
                    return self;
                }
            }
        }
        const mapping = memory_pool.mapWith(@intCast(size), 0) orelse return error.OutOfMemory;
        assert(mapping.bytes.len >= size);
        self.* = .{ .bytes = mapping.bytes, .huge = mapping.huge, .allocator = allocator };
        return self;
    }

    /// Physical memory, or "unknown" (0) as no limit.
    fn total(mem_total: u64) u64 {
        return if (mem_total == 0) std.math.maxInt(u64) else mem_total;
    }

    /// A huge-page-aligned mapping of `size` rounded up to whole huge pages,
    /// with transparent huge pages requested and every page populated now
    /// (MADV_POPULATE_WRITE, else by writing it); null if it cannot be mapped.
    fn mapTransparentHuge(size: usize, huge_page_size: usize) ?[]u8 {
        const linux = std.os.linux;
        assert(std.math.isPowerOfTwo(huge_page_size));
        const len = std.mem.alignForward(usize, size, huge_page_size);
        // Over-map by one huge page, then trim both ends to an aligned range.
        const flags: linux.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true };
        const rc = linux.mmap(null, len + huge_page_size, linux.PROT.READ | linux.PROT.WRITE, flags, -1, 0);
        if (linux.E.init(rc) != .SUCCESS) return null;
        const start = std.mem.alignForward(usize, rc, huge_page_size);
        const end = rc + len + huge_page_size;
        if (start > rc) assert(linux.E.init(linux.munmap(@ptrFromInt(rc), start - rc)) == .SUCCESS);
        if (end > start + len) assert(linux.E.init(linux.munmap(@ptrFromInt(start + len), end - (start + len))) == .SUCCESS);
        const ptr: [*]u8 = @ptrFromInt(start);
        // Advice only: without THP the mapping is simply made of normal pages.
        _ = linux.madvise(ptr, len, linux.MADV.HUGEPAGE);
        if (linux.E.init(linux.madvise(ptr, len, madv_populate_write)) != .SUCCESS) @memset(ptr[0..len], 0);
        return ptr[0..len];
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

test "buffers: transparent huge page mappings are aligned, rounded, populated and unmapped whole" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const huge: usize = 2 << 20;
    const bytes = Buffer.mapTransparentHuge(3 << 20, huge) orelse return error.SkipZigTest;
    try testing.expectEqual(@as(usize, 4 << 20), bytes.len);
    try testing.expect(std.mem.isAligned(@intFromPtr(bytes.ptr), huge));
    try testing.expectEqual(@as(u8, 0), bytes[bytes.len - 1]);
    @memset(bytes, 0x22);
    try testing.expectEqual(@as(u8, 0x22), bytes[(3 << 20) + 1]);
    const self = try testing.allocator.create(Buffer);
    self.* = .{ .bytes = bytes, .huge = true, .allocator = testing.allocator };
    self.release();
}

test "buffers: bad sizes" {
    try testing.expectError(error.InvalidArgument, Buffer.create(testing.allocator, 0, 0));
    try testing.expectError(error.InvalidArgument, Buffer.create(testing.allocator, size_limit + 1, 0));
    if (memory_pool.memTotal() > 0 and memory_pool.memTotal() < size_limit) {
        try testing.expectError(error.OutOfMemory, Buffer.create(testing.allocator, memory_pool.memTotal() + 1, 0));
    }
}
