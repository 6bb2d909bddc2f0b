//! spead2's MemoryPool (docs/PROTOCOL.md §12) as a heap
//! payload allocator:
//! * requests in [lower, upper] get an `upper`-byte buffer from the pool; other
//!   sizes bypass it and go straight to the system;
//! * `initial` buffers are allocated and prefaulted up front;
//! * a freed pool buffer returns to the pool while it holds fewer than
//!   `free_max`, else it is released;
//! * an empty pool allocates a new buffer and counts a miss (spead2 warns);
//! * with `low_water > 0` a background thread refills the pool up to `initial`
//!   whenever a take leaves fewer than `low_water` buffers;
//! * flags (spead2's `MmapAllocator(prefer_huge)` base allocator and
//!   `MemoryPool.warn_on_empty`): `prefer_huge` takes every buffer from an
//!   anonymous mapping, with MAP_HUGETLB first and normal pages when that
//!   fails; `warn_on_empty` writes spead2's "memory pool is empty" warning to
//!   stderr, at most once a second per pool.
//!
//! Lifetime: the pool is reference counted. JS's handle holds one reference,
//! every stream using it one, and every buffer handed out one, so destroying
//! the handle while heaps are still out defers the free until the last buffer
//! comes back (a JS view may still reach it).
const std = @import("std");
const affinity = @import("affinity.zig");
const builtin = @import("builtin");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;
const reassembly = @import("../recv/reassembly.zig");
const PayloadAllocator = reassembly.PayloadAllocator;

/// Bounds on what JS may ask for.
pub const free_max_limit: u64 = 65536;
pub const upper_limit: u64 = 1 << 40;
/// How long the refill thread sleeps between checks when idle; it is woken
/// early by takes and by destroy.
const refill_idle_ns: u64 = 500 * std.time.ns_per_ms;
/// `warn_on_empty` writes at most one line per pool per this interval.
pub const warn_interval_ns: u64 = std.time.ns_per_s;

pub const flag_prefer_huge: u64 = 1 << 0;
pub const flag_warn_on_empty: u64 = 1 << 1;
const flags_known: u64 = flag_prefer_huge | flag_warn_on_empty;

pub const Config = struct {
    lower: u64,
    upper: u64,
    free_max: u64,
    initial: u64,
    low_water: u64 = 0,
    /// `flag_prefer_huge`, `flag_warn_on_empty`.
    flags: u64 = 0,

    pub fn preferHuge(self: Config) bool {
        return self.flags & flag_prefer_huge != 0;
    }

    pub fn warnOnEmpty(self: Config) bool {
        return self.flags & flag_warn_on_empty != 0;
    }

    pub fn validate(self: Config) Error!void {
        if (self.flags & ~flags_known != 0) return error.InvalidArgument;
        if (self.upper == 0 or self.upper > upper_limit) return error.InvalidArgument;
        if (self.lower > self.upper) return error.InvalidArgument;
        if (self.free_max > free_max_limit) return error.InvalidArgument;
        if (self.initial > self.free_max) return error.InvalidArgument;
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
    /// Buffers obtained with MAP_HUGETLB (`prefer_huge`; the rest of
    /// `allocated` and the bypass buffers got normal pages).
    huge_pages,
};

pub const stat_count = @typeInfo(Stat).@"enum".fields.len;

// ---------------------------------------------------------------------------
// Anonymous mappings (spead2's MmapAllocator)

pub const Mapping = struct {
    /// The whole mapping: its length is rounded up to the page size, or to
    /// the huge page size when `huge`. `unmap` takes exactly this slice.
    bytes: []u8,
    huge: bool,
};

const MemInfo = struct {
    /// Default huge page size in bytes; 0 when unknown (no MAP_HUGETLB tries).
    huge_page_size: usize = 0,
    /// Physical memory in bytes; 0 when unknown.
    mem_total: u64 = 0,
};

var meminfo: MemInfo = .{};
var meminfo_once = std.once(readMemInfo);

fn readMemInfo() void {
    if (builtin.os.tag != .linux) return;
    const file = std.fs.openFileAbsolute("/proc/meminfo", .{}) catch return;
    defer file.close();
    var buffer: [8192]u8 = undefined;
    const n = file.readAll(&buffer) catch return;
    meminfo = parseMemInfo(buffer[0..n]);
}

/// Reads "Hugepagesize:" and "MemTotal:" (kB) from /proc/meminfo text.
pub fn parseMemInfo(text: []const u8) MemInfo {
    var info: MemInfo = .{};
    var lines = std.mem.splitScalar(u8, text, '\n');
    while (lines.next()) |line| {
        const colon = std.mem.indexOfScalar(u8, line, ':') orelse continue;
        const key = line[0..colon];
        var fields = std.mem.tokenizeAny(u8, line[colon + 1 ..], " \t");
        const value_text = fields.next() orelse continue;
        const kb = std.fmt.parseInt(u64, value_text, 10) catch continue;
        if (kb > (1 << 50)) continue;
        if (std.mem.eql(u8, key, "Hugepagesize")) {
            const bytes = kb * 1024;
            if (std.math.isPowerOfTwo(bytes) and bytes >= std.heap.pageSize()) info.huge_page_size = @intCast(bytes);
        } else if (std.mem.eql(u8, key, "MemTotal")) {
            info.mem_total = kb * 1024;
        }
    }
    return info;
}

pub fn hugePageSize() usize {
    meminfo_once.call();
    return meminfo.huge_page_size;
}

/// Physical memory, or 0 when unknown.
pub fn memTotal() u64 {
    meminfo_once.call();
    return meminfo.mem_total;
}

/// Length of the mapping `mapAnonymous` makes for `size` bytes.
pub fn mappedLength(size: usize, huge: bool) usize {
    const huge_size = hugePageSize();
    const granule = if (huge and huge_size > 0) huge_size else std.heap.pageSize();
    return std.mem.alignForward(usize, size, granule);
}

/// A private anonymous mapping of at least `size` bytes, populated at once
/// (MAP_POPULATE). With `prefer_huge`, MAP_HUGETLB is tried first (default
/// huge page size) and normal pages are the fallback. Null if neither works
/// or `size` exceeds physical memory (populating it could only end in the
/// OOM killer).
pub fn mapAnonymous(size: usize, prefer_huge: bool) ?Mapping {
    return mapWith(size, if (prefer_huge) hugePageSize() else 0);
}

/// `mapAnonymous` with the huge page size given (0: normal pages only), so
/// tests can exercise the fallback on machines that do have huge pages.
pub fn mapWith(size: usize, huge_page_size: usize) ?Mapping {
    assert(size > 0);
    if (builtin.os.tag != .linux) return null;
    if (size > upper_limit) return null;
    const total = memTotal();
    if (total > 0 and size > total) return null;
    if (huge_page_size > 0) {
        assert(std.math.isPowerOfTwo(huge_page_size));
        if (mmapRaw(std.mem.alignForward(usize, size, huge_page_size), true)) |bytes| {
            return .{ .bytes = bytes, .huge = true };
        }
    }
    const bytes = mmapRaw(std.mem.alignForward(usize, size, std.heap.pageSize()), false) orelse return null;
    return .{ .bytes = bytes, .huge = false };
}

/// A populated private anonymous mapping of `len` bytes (MAP_HUGETLB when `huge`), or null.
pub fn mmapRaw(len: usize, huge: bool) ?[]u8 {
    const linux = std.os.linux;
    const flags: linux.MAP = .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .POPULATE = true, .HUGETLB = huge };
    const rc = linux.mmap(null, len, linux.PROT.READ | linux.PROT.WRITE, flags, -1, 0);
    if (linux.E.init(rc) != .SUCCESS) return null;
    const ptr: [*]u8 = @ptrFromInt(rc);
    return ptr[0..len];
}

/// Gives back a mapping made by `mapAnonymous` (the whole `Mapping.bytes`).
pub fn unmap(bytes: []u8) void {
    assert(bytes.len > 0);
    assert(std.mem.isAligned(@intFromPtr(bytes.ptr), std.heap.pageSize()));
    if (builtin.os.tag != .linux) unreachable;
    const rc = std.os.linux.munmap(bytes.ptr, bytes.len);
    // A failure means we passed a length that is not the mapping's: a bug here.
    assert(std.os.linux.E.init(rc) == .SUCCESS);
}

/// Heap payloads straight from mmap (stream config word 10: spead2's
/// `MmapAllocator`, with or without `prefer_huge`). Process-wide, like
/// `reassembly.c_payload_allocator`, because popped heaps outlive their stream.
pub const MmapPayloadAllocator = struct {
    prefer_huge: bool,
    /// Buffers that got huge pages / normal pages (not in the ABI; for tests).
    huge_pages: std.atomic.Value(u64) = std.atomic.Value(u64).init(0),
    normal_pages: std.atomic.Value(u64) = std.atomic.Value(u64).init(0),

    pub fn payloadAllocator(self: *MmapPayloadAllocator) PayloadAllocator {
        return .{ .ctx = self, .vtable = &vtable };
    }

    const vtable: PayloadAllocator.VTable = .{ .alloc = allocFn, .free = freeFn };

    fn allocFn(ctx: *anyopaque, size: usize) ?[]u8 {
        const self: *MmapPayloadAllocator = @ptrCast(@alignCast(ctx));
        const mapping = mapAnonymous(size, self.prefer_huge) orelse return null;
        const counter = if (mapping.huge) &self.huge_pages else &self.normal_pages;
        _ = counter.fetchAdd(1, .monotonic);
        return mapping.bytes;
    }

    fn freeFn(ctx: *anyopaque, buffer: []u8) void {
        _ = ctx;
        unmap(buffer);
    }
};

pub var mmap_payload_allocator: MmapPayloadAllocator = .{ .prefer_huge = false };
pub var mmap_huge_payload_allocator: MmapPayloadAllocator = .{ .prefer_huge = true };

// ---------------------------------------------------------------------------
// Empty-pool warnings

/// Receives one complete warning line (ending in a newline).
pub const WarnSink = *const fn (line: []const u8) void;

fn writeStderr(line: []const u8) void {
    std.io.getStdErr().writeAll(line) catch {};
}

/// The rate limit of `warn_on_empty`: a line is due if none was written yet
/// or the last one is at least `warn_interval_ns` old.
pub fn warnAllowed(last_ns: ?u64, now_ns: u64) bool {
    const last = last_ns orelse return true;
    return now_ns -| last >= warn_interval_ns;
}

fn monotonicNs() u64 {
    const ts = std.posix.clock_gettime(.MONOTONIC) catch return 0;
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

// ---------------------------------------------------------------------------
// The pool

pub const MemoryPool = struct {
    /// Bookkeeping memory (this struct, the free list).
    allocator: std.mem.Allocator,
    /// Where buffers come from unless `prefer_huge` (then mmap); each one is
    /// prefaulted.
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

    /// Where `warn_on_empty` lines go (stderr; tests capture them).
    warn_sink: WarnSink = writeStderr,
    /// Monotonic time of the last warning line, under `mutex`.
    warn_last_ns: ?u64 = null,

    /// Creates the pool holding `initial` prefaulted buffers (refs = 1).
    pub fn create(allocator: std.mem.Allocator, backing: std.mem.Allocator, config: Config) Error!*MemoryPool {
        try config.validate();
        const self = allocator.create(MemoryPool) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const free_list = allocator.alloc([]u8, @intCast(config.free_max)) catch return error.OutOfMemory;
        errdefer allocator.free(free_list);
        self.* = .{ .allocator = allocator, .backing = backing, .config = config, .free_list = free_list };
        errdefer self.releaseFreeList();
        var i: u64 = 0;
        while (i < config.initial) : (i += 1) {
            const obtained = self.allocBacking(@intCast(config.upper)) orelse return error.OutOfMemory;
            self.countObtained(obtained, true);
            self.free_list[self.free_len] = obtained.buffer;
            self.free_len += 1;
        }
        if (config.low_water > 0) {
            self.refill_thread = affinity.spawnNamed(.{ .stack_size = 64 * 1024 }, "spead-pool-fill", refillRun, .{self}) catch return error.SystemError;
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
        self.mutex.unlock();
        self.stopRefill();
        self.mutex.lock();
        self.releaseFreeList();
        self.mutex.unlock();
        self.release();
    }

    /// Stops and joins the refill thread, if any (destroy, and process shutdown,
    /// which leaves the pool usable without refills). Idempotent.
    pub fn stopRefill(self: *MemoryPool) void {
        self.mutex.lock();
        self.refill_quit = true;
        self.refill_wake.signal();
        const thread = self.refill_thread;
        self.refill_thread = null;
        self.mutex.unlock();
        if (thread) |t| t.join();
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
            self.freeBacking(self.free_list[self.free_len]);
        }
    }

    const Obtained = struct { buffer: []u8, huge: bool };

    fn allocBacking(self: *MemoryPool, size: usize) ?Obtained {
        if (self.config.preferHuge()) {
            const mapping = mapAnonymous(size, true) orelse return null;
            return .{ .buffer = mapping.bytes, .huge = mapping.huge };
        }
        const buffer = self.backing.alloc(u8, size) catch return null;
        reassembly.prefault(buffer);
        return .{ .buffer = buffer, .huge = false };
    }

    fn freeBacking(self: *MemoryPool, buffer: []u8) void {
        if (self.config.preferHuge()) {
            unmap(buffer);
        } else {
            reassembly.freeWithoutPoisoning(self.backing, buffer);
        }
    }

    /// Whether a buffer of this length is a pool buffer. Mapped buffers are
    /// the whole (rounded) mapping; a bypass buffer that happens to have the
    /// same length is interchangeable with a pool buffer and may join it.
    fn isPoolLength(self: *const MemoryPool, len: usize) bool {
        const upper: usize = @intCast(self.config.upper);
        if (!self.config.preferHuge()) return len == upper;
        return len == mappedLength(upper, false) or len == mappedLength(upper, true);
    }

    /// Counts a buffer just obtained from the system (mutex held, or create).
    fn countObtained(self: *MemoryPool, obtained: Obtained, pool_buffer: bool) void {
        if (pool_buffer) self.count(.allocated);
        if (obtained.huge) self.count(.huge_pages);
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
            assert(self.isPoolLength(buffer.len));
            return buffer;
        }
        self.count(if (pooled) .misses else .bypassed);
        const warn = pooled and self.config.warnOnEmpty() and self.warnDueLocked(monotonicNs());
        self.mutex.unlock();
        if (warn) self.warnEmpty(size);

        const obtained = self.allocBacking(if (pooled) @intCast(self.config.upper) else size);
        self.mutex.lock();
        defer self.mutex.unlock();
        const o = obtained orelse {
            self.count(.failures);
            return null;
        };
        self.countObtained(o, pooled);
        self.refs += 1;
        self.count(.outstanding);
        return o.buffer;
    }

    /// Rate limit of the empty-pool warning (mutex held): records the line
    /// as written when it is due.
    fn warnDueLocked(self: *MemoryPool, now_ns: u64) bool {
        if (!warnAllowed(self.warn_last_ns, now_ns)) return false;
        self.warn_last_ns = now_ns;
        return true;
    }

    /// spead2's `log_warning("memory pool is empty when allocating %d bytes")`.
    fn warnEmpty(self: *MemoryPool, size: usize) void {
        var buffer: [96]u8 = undefined;
        const line = std.fmt.bufPrint(&buffer, "spead: memory pool is empty when allocating {d} bytes\n", .{size}) catch unreachable;
        self.warn_sink(line);
    }

    fn freeFn(ctx: *anyopaque, buffer: []u8) void {
        const self: *MemoryPool = @ptrCast(@alignCast(ctx));
        self.mutex.lock();
        assert(self.stats[@intFromEnum(Stat.outstanding)] > 0);
        self.stats[@intFromEnum(Stat.outstanding)] -= 1;
        // Pool buffers are exactly `upper` long (or its mapping); bypass sizes are not.
        const keep = self.isPoolLength(buffer.len) and !self.destroyed and self.free_len < self.free_list.len;
        if (keep) {
            self.free_list[self.free_len] = buffer;
            self.free_len += 1;
            self.count(.returned);
        } else {
            self.count(.released);
        }
        self.mutex.unlock();
        if (!keep) self.freeBacking(buffer);
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
                const obtained = self.allocBacking(@intCast(self.config.upper));
                self.mutex.lock();
                const o = obtained orelse {
                    self.count(.failures);
                    break;
                };
                self.countObtained(o, true);
                if (self.refill_quit or self.free_len >= self.free_list.len) {
                    self.freeBacking(o.buffer);
                    break;
                }
                self.free_list[self.free_len] = o.buffer;
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

test "pool reuse: upper-sized buffers come back; misses allocate; free_max bounds the pool" {
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 100, .upper = 1000, .free_max = 2, .initial = 2 });
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
    pa.free(c); // pool already holds free_max
    try testing.expectEqual(@as(u64, 2), pool.stat(.returned));
    try testing.expectEqual(@as(u64, 1), pool.stat(.released));
    try testing.expectEqual(@as(u64, 2), pool.stat(.free));
    const d = pa.alloc(700).?;
    try testing.expect(d.ptr == b.ptr or d.ptr == a.ptr); // reused
    pa.free(d);
    try testing.expectEqual(@as(u64, 3), pool.stat(.allocated));
}

test "pool bypass for sizes outside [lower, upper]" {
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 100, .upper = 1000, .free_max = 4, .initial = 1 });
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
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 0, .upper = 4096, .free_max = 4, .initial = 2 });
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
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 0, .upper = 8192, .free_max = 8, .initial = 4, .low_water = 2 });
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

test "stopRefill joins the refill thread; the pool still serves and is destroyed after" {
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 0, .upper = 4096, .free_max = 4, .initial = 2, .low_water = 1 });
    pool.stopRefill();
    try testing.expect(pool.refill_thread == null);
    pool.stopRefill();
    const pa = pool.payloadAllocator();
    const a = pa.alloc(4096).?;
    pa.free(a);
    pool.destroy();
}

test "config validation" {
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 10, .upper = 5, .free_max = 1, .initial = 1 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 0, .free_max = 1, .initial = 1 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 5, .free_max = 1, .initial = 2 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 5, .free_max = 4, .initial = 2, .low_water = 3 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 5, .free_max = 1 << 20, .initial = 2 }).validate());
}

test "heaps received through a stream use pool buffers and return them on release" {
    const recv_stream = @import("../recv/stream.zig");
    const packet_mod = @import("../recv/packet.zig");
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 16, .upper = 4096, .free_max = 8, .initial = 4 });
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

test "config flags: unknown bits are refused" {
    try (Config{ .lower = 0, .upper = 5, .free_max = 1, .initial = 1, .flags = flag_prefer_huge | flag_warn_on_empty }).validate();
    try testing.expectError(error.InvalidArgument, (Config{ .lower = 0, .upper = 5, .free_max = 1, .initial = 1, .flags = 4 }).validate());
}

test "meminfo parsing" {
    const info = parseMemInfo("MemTotal:       16312340 kB\nMemFree: 1 kB\nHugepagesize:       2048 kB\nHugetlb: 0 kB\n");
    try testing.expectEqual(@as(usize, 2 << 20), info.huge_page_size);
    try testing.expectEqual(@as(u64, 16312340 * 1024), info.mem_total);
    const odd = parseMemInfo("Hugepagesize: 3 kB\nMemTotal: x kB\ngarbage");
    try testing.expectEqual(@as(usize, 0), odd.huge_page_size);
    try testing.expectEqual(@as(u64, 0), odd.mem_total);
}

test "anonymous mappings: normal pages, huge pages with fallback" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const page = std.heap.pageSize();
    // No huge page size: normal pages only (the fallback path).
    const plain = mapWith(10_000, 0).?;
    try testing.expect(!plain.huge);
    try testing.expectEqual(std.mem.alignForward(usize, 10_000, page), plain.bytes.len);
    try testing.expectEqual(mappedLength(10_000, false), plain.bytes.len);
    @memset(plain.bytes, 0xa5);
    try testing.expectEqual(@as(u8, 0xa5), plain.bytes[plain.bytes.len - 1]);
    unmap(plain.bytes);
    // Huge pages if the machine has some free, else the clean fallback.
    const preferred = mapAnonymous(3 * page + 1, true).?;
    try testing.expectEqual(mappedLength(3 * page + 1, preferred.huge), preferred.bytes.len);
    if (preferred.huge) try testing.expect(std.mem.isAligned(preferred.bytes.len, hugePageSize()));
    if (hugePageSize() == 0) try testing.expect(!preferred.huge);
    preferred.bytes[0] = 1;
    preferred.bytes[preferred.bytes.len - 1] = 2;
    unmap(preferred.bytes);
    // Beyond physical memory: refused instead of populated.
    if (memTotal() > 0 and memTotal() < upper_limit) try testing.expectEqual(@as(?Mapping, null), mapAnonymous(@intCast(memTotal() + page), false));
}

test "mmap payload allocators count huge and normal buffers" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    var allocator: MmapPayloadAllocator = .{ .prefer_huge = true };
    const pa = allocator.payloadAllocator();
    const buffer = pa.alloc(5000).?;
    try testing.expect(buffer.len >= 5000);
    @memset(buffer[0..5000], 7);
    pa.free(buffer);
    try testing.expectEqual(@as(u64, 1), allocator.huge_pages.load(.monotonic) + allocator.normal_pages.load(.monotonic));
}

test "prefer_huge pool: mapped buffers, huge or fallback counted, reused and unmapped" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const upper = 10_000; // not a page multiple: buffers are the rounded mapping
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 100, .upper = upper, .free_max = 2, .initial = 2, .flags = flag_prefer_huge });
    defer pool.destroy();
    try testing.expectEqual(@as(u64, 2), pool.stat(.allocated));
    const huge_initial = pool.stat(.huge_pages);
    try testing.expect(huge_initial <= 2);
    if (hugePageSize() == 0) try testing.expectEqual(@as(u64, 0), huge_initial);
    const pa = pool.payloadAllocator();
    const a = pa.alloc(upper).?;
    const b = pa.alloc(200).?;
    const c = pa.alloc(300).?; // a miss: mapped too
    const d = pa.alloc(50).?; // bypass: mapped too
    for ([_][]u8{ a, b, c }) |buffer| {
        try testing.expect(buffer.len == mappedLength(upper, false) or buffer.len == mappedLength(upper, true));
        @memset(buffer[0..upper], 0x3c);
    }
    try testing.expect(d.len >= 50);
    try testing.expectEqual(@as(u64, 1), pool.stat(.misses));
    try testing.expectEqual(@as(u64, 3), pool.stat(.allocated));
    pa.free(a);
    pa.free(b);
    pa.free(c); // beyond free_max: unmapped
    pa.free(d);
    try testing.expectEqual(@as(u64, 2), pool.stat(.returned));
    try testing.expectEqual(@as(u64, 2), pool.stat(.released));
    const e = pa.alloc(150).?;
    try testing.expect(e.ptr == a.ptr or e.ptr == b.ptr);
    pa.free(e);
    try testing.expectEqual(@as(u64, 0), pool.stat(.outstanding));
}

test "warning rate limit decision" {
    try testing.expect(warnAllowed(null, 0));
    try testing.expect(warnAllowed(null, 5));
    try testing.expect(!warnAllowed(100, 100));
    try testing.expect(!warnAllowed(100, 100 + warn_interval_ns - 1));
    try testing.expect(warnAllowed(100, 100 + warn_interval_ns));
    try testing.expect(!warnAllowed(500, 100)); // a clock that went back: stay quiet
}

var test_warn_lines: [4][96]u8 = undefined;
var test_warn_lens: [4]usize = undefined;
var test_warn_count: usize = 0;

fn testWarnSink(line: []const u8) void {
    if (test_warn_count < test_warn_lines.len) {
        @memcpy(test_warn_lines[test_warn_count][0..line.len], line);
        test_warn_lens[test_warn_count] = line.len;
    }
    test_warn_count += 1;
}

test "warn_on_empty: spead2's line, at most one a second, every miss counted" {
    test_warn_count = 0;
    const pool = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 0, .upper = 1000, .free_max = 4, .initial = 0, .flags = flag_warn_on_empty });
    defer pool.destroy();
    pool.warn_sink = testWarnSink;
    const pa = pool.payloadAllocator();
    var taken: [4][]u8 = undefined;
    for (taken[0..3]) |*t| t.* = pa.alloc(700).?;
    try testing.expectEqual(@as(u64, 3), pool.stat(.misses));
    try testing.expectEqual(@as(usize, 1), test_warn_count);
    try testing.expectEqualStrings("spead: memory pool is empty when allocating 700 bytes\n", test_warn_lines[0][0..test_warn_lens[0]]);
    // A second later the next miss warns again.
    pool.mutex.lock();
    pool.warn_last_ns = monotonicNs() -| (warn_interval_ns + 1);
    pool.mutex.unlock();
    taken[3] = pa.alloc(12).?;
    try testing.expectEqual(@as(usize, 2), test_warn_count);
    try testing.expectEqualStrings("spead: memory pool is empty when allocating 12 bytes\n", test_warn_lines[1][0..test_warn_lens[1]]);
    try testing.expectEqual(@as(u64, 4), pool.stat(.misses));
    for (taken) |t| pa.free(t);
    // A pool without the flag never writes.
    const quiet = try MemoryPool.create(testing.allocator, testing.allocator, .{ .lower = 0, .upper = 100, .free_max = 1, .initial = 0 });
    defer quiet.destroy();
    quiet.warn_sink = testWarnSink;
    const q = quiet.payloadAllocator().alloc(10).?;
    quiet.payloadAllocator().free(q);
    try testing.expectEqual(@as(usize, 2), test_warn_count);
    try testing.expectEqual(@as(u64, 1), quiet.stat(.misses));
}
