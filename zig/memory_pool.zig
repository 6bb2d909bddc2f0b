//! spead2's MemoryPool (SPEAD-NOTES §2 "Memory pool behaviour") as a heap
//! payload allocator:
//! * requests in [lower, upper] get an `upper`-byte buffer from the pool; other
//!   sizes bypass it and go straight to the system;
//! * `initial` buffers are allocated and prefaulted up front;
//! * a freed pool buffer returns to the pool while it holds fewer than
//!   `max_free`, else it is released;
//! * an empty pool allocates a new buffer and counts a miss (spead2 warns);
//! * with `low_water > 0` a background thread refills the pool up to `initial`
//!   whenever a take leaves fewer than `low_water` buffers.
//!
//! Lifetime: the pool is reference counted. JS's handle holds one reference,
//! every stream using it one, and every buffer handed out one, so destroying
//! the handle while heaps are still out defers the free until the last buffer
//! comes back (a JS view may still reach it).
const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const reassembly = @import("reassembly.zig");
const PayloadAllocator = reassembly.PayloadAllocator;

/// Bounds on what JS may ask for.
pub const free_max_limit: u64 = 65536;
pub const upper_limit: u64 = 1 << 40;
/// How long the refill thread sleeps between checks when idle; it is woken
/// early by takes and by destroy.
const refill_idle_ns: u64 = 500 * std.time.ns_per_ms;

pub const Config = struct {
    lower: u64,
    upper: u64,
    max_free: u64,
    initial: u64,
    low_water: u64 = 0,

    pub fn validate(self: Config) Error!void {
        if (self.upper == 0 or self.upper > upper_limit) return error.InvalidArgument;
        if (self.lower > self.upper) return error.InvalidArgument;
        if (self.max_free > free_max_limit) return error.InvalidArgument;
        if (self.initial > self.max_free) return error.InvalidArgument;
        if (self.low_water > self.initial) return error.InvalidArgument;
    }
};

pub const Stat = enum(u8) {
    /// Buffers in the pool now.
    free,
    /// Buffers handed out and not yet freed (pool and bypass).
    outstanding,
    /// `upper`-sized buffers obtained from the system (initial, refill, misses).
    allocated,
    /// Takes that found the pool empty.
    misses,
    /// Requests outside [lower, upper].
    bypassed,
    /// Frees that went back into the pool.
    returned,
    /// Frees that went back to the system (pool full, bypass, or destroyed).
    released,
    /// Buffers added by the refill thread.
    refilled,
    /// Allocations that failed.
    failures,
};

pub const stat_count = @typeInfo(Stat).@"enum".fields.len;

pub const MemoryPool = struct {
    /// Bookkeeping memory (this struct, the free list).
    allocator: std.mem.Allocator,
    /// Where buffers come from; each one is prefaulted.
    backing: std.mem.Allocator,
    config: Config,

    mutex: std.Thread.Mutex = .{},
    free_list: [][]u8,
    free_len: usize = 0,
    /// References: the handle, streams, and buffers out.
    refs: u64 = 1,
    destroyed: bool = false,
    stats: [stat_count]u64 = [_]u64{0} ** stat_count,

    refill_thread: ?std.Thread = null,
    refill_wake: std.Thread.Condition = .{},
    refill_wanted: bool = false,
    refill_quit: bool = false,

    /// Creates the pool holding `initial` prefaulted buffers (refs = 1).
    pub fn create(allocator: std.mem.Allocator, backing: std.mem.Allocator, config: Config) Error!*MemoryPool {
        try config.validate();
        const self = allocator.create(MemoryPool) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const free_list = allocator.alloc([]u8, @intCast(config.max_free)) catch return error.OutOfMemory;
        errdefer allocator.free(free_list);
        self.* = .{ .allocator = allocator, .backing = backing, .config = config, .free_list = free_list };
        errdefer self.releaseFreeList();
        var i: u64 = 0;
        while (i < config.initial) : (i += 1) {
            const buffer = self.allocBacking(@intCast(config.upper)) orelse return error.OutOfMemory;
            self.stats[@intFromEnum(Stat.allocated)] += 1;
            self.free_list[self.free_len] = buffer;
            self.free_len += 1;
        }
        if (config.low_water > 0) {
            self.refill_thread = std.Thread.spawn(.{ .stack_size = 64 * 1024 }, refillRun, .{self}) catch return error.SystemError;
        }
        return self;
    }

    pub fn payloadAllocator(self: *MemoryPool) PayloadAllocator {
        return .{ .ctx = self, .vtable = &vtable };
    }

    /// The pool behind a payload allocator made by `payloadAllocator`.
    pub fn fromPayloadAllocator(payload_allocator: PayloadAllocator) *MemoryPool {
        assert(payload_allocator.vtable == &vtable);
        return @ptrCast(@alignCast(payload_allocator.ctx));
    }

    const vtable: PayloadAllocator.VTable = .{ .alloc = allocFn, .free = freeFn };

    /// Takes a reference (a stream that will allocate from the pool).
    pub fn retain(self: *MemoryPool) Error!void {
        self.mutex.lock();
        defer self.mutex.unlock();
        if (self.destroyed) return error.InvalidHandle;
        self.refs += 1;
    }

    /// Drops a reference; frees the pool when it was the last one.
    pub fn release(self: *MemoryPool) void {
        self.mutex.lock();
        assert(self.refs > 0);
        self.refs -= 1;
        const last = self.refs == 0;
        self.mutex.unlock();
        if (last) self.free();
    }

    /// JS's destroy: stops the refill thread, gives back the free buffers and
    /// drops the handle's reference. Buffers still out keep the pool alive.
    pub fn destroy(self: *MemoryPool) void {
        self.mutex.lock();
        assert(!self.destroyed);
        self.destroyed = true;
        self.refill_quit = true;
        self.refill_wake.signal();
        const thread = self.refill_thread;
        self.refill_thread = null;
        self.mutex.unlock();
        if (thread) |t| t.join();
        self.mutex.lock();
        self.releaseFreeList();
        self.mutex.unlock();
        self.release();
    }

    fn free(self: *MemoryPool) void {
        assert(self.refs == 0);
        assert(self.destroyed);
        assert(self.refill_thread == null);
        assert(self.stats[@intFromEnum(Stat.outstanding)] == 0);
        self.releaseFreeList();
        self.allocator.free(self.free_list);
        const allocator = self.allocator;
        allocator.destroy(self);
    }

    fn releaseFreeList(self: *MemoryPool) void {
        while (self.free_len > 0) {
            self.free_len -= 1;
            self.backing.free(self.free_list[self.free_len]);
        }
    }

    fn allocBacking(self: *MemoryPool, size: usize) ?[]u8 {
        const buffer = self.backing.alloc(u8, size) catch return null;
        reassembly.prefault(buffer);
        return buffer;
    }

    fn count(self: *MemoryPool, which: Stat) void {
        self.stats[@intFromEnum(which)] += 1;
    }

    pub fn readStats(self: *MemoryPool, out: *[stat_count]u64) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        out.* = self.stats;
        out[@intFromEnum(Stat.free)] = self.free_len;
    }

    pub fn stat(self: *MemoryPool, which: Stat) u64 {
        var values: [stat_count]u64 = undefined;
        self.readStats(&values);
        return values[@intFromEnum(which)];
    }

    fn allocFn(ctx: *anyopaque, size: usize) ?[]u8 {
        const self: *MemoryPool = @ptrCast(@alignCast(ctx));
        const pooled = size >= self.config.lower and size <= self.config.upper;
        self.mutex.lock();
        // The caller (a stream) holds a reference, so the pool is alive.
        assert(self.refs > 0);
        if (pooled and self.free_len > 0) {
            self.free_len -= 1;
            const buffer = self.free_list[self.free_len];
            self.refs += 1;
            self.count(.outstanding);
            if (self.free_len < self.config.low_water and !self.refill_wanted) {
                self.refill_wanted = true;
                self.refill_wake.signal();
            }
            self.mutex.unlock();
            assert(buffer.len == self.config.upper);
            return buffer;
        }
        self.count(if (pooled) .misses else .bypassed);
        self.mutex.unlock();

        const buffer = self.allocBacking(if (pooled) @intCast(self.config.upper) else size);
        self.mutex.lock();
        defer self.mutex.unlock();
        if (buffer == null) {
            self.count(.failures);
            return null;
        }
        if (pooled) self.count(.allocated);
        self.refs += 1;
        self.count(.outstanding);
        return buffer;
    }

    fn freeFn(ctx: *anyopaque, buffer: []u8) void {
        const self: *MemoryPool = @ptrCast(@alignCast(ctx));
        self.mutex.lock();
        assert(self.stats[@intFromEnum(Stat.outstanding)] > 0);
        self.stats[@intFromEnum(Stat.outstanding)] -= 1;
        // Pool buffers are exactly `upper` long; bypass sizes never are.
        const keep = buffer.len == self.config.upper and !self.destroyed and self.free_len < self.free_list.len;
        if (keep) {
            self.free_list[self.free_len] = buffer;
            self.free_len += 1;
            self.count(.returned);
        } else {
            self.count(.released);
        }
        self.mutex.unlock();
        if (!keep) self.backing.free(buffer);
        self.release();
    }

    fn refillRun(self: *MemoryPool) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        // Ends when destroy sets refill_quit; each pass is bounded by `initial`.
        while (!self.refill_quit) {
            if (!self.refill_wanted) {
                self.refill_wake.timedWait(&self.mutex, refill_idle_ns) catch {};
                continue;
            }
            while (!self.refill_quit and self.free_len < self.config.initial) {
                self.mutex.unlock();
                const buffer = self.allocBacking(@intCast(self.config.upper));
                self.mutex.lock();
                const b = buffer orelse {
                    self.count(.failures);
                    break;
                };
                self.count(.allocated);
                if (self.refill_quit or self.free_len >= self.free_list.len) {
                    self.backing.free(b);
                    break;
                }
                self.free_list[self.free_len] = b;
                self.free_len += 1;
                self.count(.refilled);
            }
            self.refill_wanted = false;
        }
    }
};

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;

test "pool reuse: upper-sized buffers come back; misses allocate; max_free bounds the pool" {
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 100, .upper = 1000, .max_free = 2, .initial = 2 });
    defer pool.destroy();
    const pa = pool.payloadAllocator();
    const a = pa.alloc(500).?;
    const b = pa.alloc(100).?;
    try testing.expectEqual(@as(usize, 1000), a.len);
    try testing.expectEqual(@as(usize, 1000), b.len);
    try testing.expectEqual(@as(u64, 2), pool.stat(.allocated));
    try testing.expectEqual(@as(u64, 0), pool.stat(.free));
    const c = pa.alloc(1000).?; // empty: a miss
    try testing.expectEqual(@as(u64, 1), pool.stat(.misses));
    try testing.expectEqual(@as(u64, 3), pool.stat(.allocated));
    try testing.expectEqual(@as(u64, 3), pool.stat(.outstanding));
    pa.free(a);
    pa.free(b);
    pa.free(c); // pool already holds max_free
    try testing.expectEqual(@as(u64, 2), pool.stat(.returned));
    try testing.expectEqual(@as(u64, 1), pool.stat(.released));
    try testing.expectEqual(@as(u64, 2), pool.stat(.free));
    const d = pa.alloc(700).?;
    try testing.expect(d.ptr == b.ptr or d.ptr == a.ptr); // reused
    pa.free(d);
    try testing.expectEqual(@as(u64, 3), pool.stat(.allocated));
}

test "pool bypass for sizes outside [lower, upper]" {
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 100, .upper = 1000, .max_free = 4, .initial = 1 });
    defer pool.destroy();
    const pa = pool.payloadAllocator();
    const small = pa.alloc(50).?;
    const big = pa.alloc(5000).?;
    try testing.expectEqual(@as(usize, 50), small.len);
    try testing.expectEqual(@as(usize, 5000), big.len);
    try testing.expectEqual(@as(u64, 2), pool.stat(.bypassed));
    try testing.expectEqual(@as(u64, 1), pool.stat(.free));
    pa.free(small);
    pa.free(big);
    try testing.expectEqual(@as(u64, 2), pool.stat(.released));
    try testing.expectEqual(@as(u64, 1), pool.stat(.free));
    try testing.expectEqual(@as(u64, 0), pool.stat(.outstanding));
}

test "deferred destroy: the pool lives until its last buffer returns" {
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 0, .upper = 4096, .max_free = 4, .initial = 2 });
    const pa = pool.payloadAllocator();
    const a = pa.alloc(10).?;
    const b = pa.alloc(9000).?; // bypass
    try pool.retain(); // a stream
    pool.destroy();
    try testing.expectError(error.InvalidHandle, pool.retain());
    @memset(a, 0x5a); // still valid memory
    pa.free(a); // not kept: destroyed
    pa.free(b);
    pool.release(); // the stream goes: last reference, freed (the testing allocator checks)
}

test "background refill up to initial when a take leaves fewer than low_water" {
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 0, .upper = 8192, .max_free = 8, .initial = 4, .low_water = 2 });
    defer pool.destroy();
    const pa = pool.payloadAllocator();
    var taken: [3][]u8 = undefined;
    for (&taken) |*t| t.* = pa.alloc(8192).?;
    var spins: usize = 0;
    while (pool.stat(.free) < 4) : (spins += 1) {
        try testing.expect(spins < 5000);
        std.time.sleep(std.time.ns_per_ms);
    }
    try testing.expect(pool.stat(.refilled) >= 3);
    try testing.expectEqual(@as(u64, 0), pool.stat(.misses));
    for (taken) |t| pa.free(t);
    try testing.expectEqual(@as(u64, 7), pool.stat(.free));
}

test "config validation" {
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 10, .upper = 5, .max_free = 1, .initial = 1 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 0, .max_free = 1, .initial = 1 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 5, .max_free = 1, .initial = 2 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 5, .max_free = 4, .initial = 2, .low_water = 3 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 5, .max_free = 1 << 20, .initial = 2 }).validate());
}

test "heaps received through a stream use pool buffers and return them on release" {
    const recv_stream = @import("recv_stream.zig");
    const packet_mod = @import("packet.zig");
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 16, .upper = 4096, .max_free = 8, .initial = 4 });
    defer pool.destroy();
    try pool.retain();
    const stream = try recv_stream.Stream.create(testing.allocator, pool.payloadAllocator(), .{ .ring_heaps = 8 });
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var buf: [256]u8 = undefined;
    var cnt: u64 = 1;
    while (cnt <= 3) : (cnt += 1) {
        try bytes.appendSlice(packet_mod.buildTestPacket(&buf, 40, &.{
            packet_mod.imm(1, cnt), packet_mod.imm(2, 20), packet_mod.imm(3, 0), packet_mod.imm(4, 20), packet_mod.addr(0x1000, 0),
        }, "twenty bytes of data"));
    }
    // a heap below `lower` bypasses the pool
    try bytes.appendSlice(packet_mod.buildTestPacket(&buf, 40, &.{
        packet_mod.imm(1, 9), packet_mod.imm(2, 4), packet_mod.imm(3, 0), packet_mod.imm(4, 4), packet_mod.addr(0x1000, 0),
    }, "tiny"));
    try recv_stream.BufferReader.add(stream, bytes.items);
    var heaps: [4]*reassembly.FrozenHeap = undefined;
    for (&heaps) |*h| h.* = try stream.pop(5000);
    try testing.expectError(error.Stopped, stream.pop(5000));
    stream.destroy();
    pool.release(); // the stream's reference
    try testing.expectEqual(@as(usize, 4096), heaps[0].payload.len);
    try testing.expectEqualStrings("twenty bytes of data", heaps[0].itemBytes(heaps[0].items[0]));
    try testing.expectEqual(@as(usize, 4), heaps[3].payload.len);
    try testing.expectEqual(@as(u64, 1), pool.stat(.free));
    try testing.expectEqual(@as(u64, 4), pool.stat(.outstanding));
    for (heaps) |h| h.deinit();
    try testing.expectEqual(@as(u64, 4), pool.stat(.free));
    try testing.expectEqual(@as(u64, 3), pool.stat(.returned));
    try testing.expectEqual(@as(u64, 1), pool.stat(.bypassed));
}
