//! Chunk streams (spead2's chunk_stream / chunk_ring_stream): heap payloads
//! are written straight into large pre-allocated chunks, one chunk holding many
//! heaps, and whole chunks are handed out with a `present` byte per heap.
//!
//! A chunk stream is a `Stream` (zig/recv/stream.zig) whose heap table places
//! payloads (`reassembly.Placement`) instead of allocating them, and whose
//! finished heaps only set `present` (`Stream.ChunkHooks`). Everything per heap
//! runs on the reader thread under the stream's table lock: the placement is
//! either a declared `PlaceRule` or a C function (`PlaceFn`), never JS.
//!
//! Chunks travel through two `Ring`s: the free ring (JS -> stream: empty
//! chunks) and the data ring (stream -> JS: finished chunks). As in spead2, a
//! reader blocks on the free ring when it needs a chunk and none is free, and on
//! the data ring when it is full; stop() stops both rings first so that a
//! blocked reader lets go.
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const assert = std.debug.assert;
const status = @import("../core/status.zig");
const Error = status.Error;
const packet_mod = @import("packet.zig");
const Packet = packet_mod.Packet;
const reassembly = @import("reassembly.zig");
const LiveHeap = reassembly.LiveHeap;
const recv_stream = @import("stream.zig");
const Stream = recv_stream.Stream;
const memory_pool = @import("../core/memory_pool.zig");
const Doorbell = @import("../core/doorbell.zig").Doorbell;
const NotifyFn = @import("../core/doorbell.zig").NotifyFn;

// ---------------------------------------------------------------------------
// Chunks

/// spead2's `chunk`: payload, present flags and per-heap extra bytes, in one
/// populated anonymous mapping (so no page faults on the packet path).
pub const Chunk = struct {
    chunk_id: i64 = -1,
    stream_id: u64 = 0,
    data: []u8,
    present: []u8,
    extra: []u8,
    mapping: []u8,
    /// Link in a stream's graveyard (chunks dropped at stop).
    next: ?*Chunk = null,
    /// Called instead of `destroy` when the core drops a chunk (the exports
    /// use it to retire the chunk's handle first).
    on_dispose: ?*const fn (chunk: *Chunk) void = null,
    /// Free for the owner's use (the exports keep the handle here, and
    /// whether JS holds the chunk).
    handle: u32 = 0,
    held_by_js: bool = true,

    const section_align = 64;

    pub fn create(allocator: std.mem.Allocator, data_size: usize, present_size: usize, extra_size: usize) Error!*Chunk {
        if (data_size == 0 or present_size == 0) return error.InvalidArgument;
        const limit: usize = 1 << 40;
        if (data_size > limit or present_size > limit or extra_size > limit) return error.InvalidArgument;
        const present_at = std.mem.alignForward(usize, data_size, section_align);
        const extra_at = std.mem.alignForward(usize, present_at + present_size, section_align);
        const total = extra_at + extra_size;
        const mapping = memory_pool.mapAnonymous(total, false) orelse return error.OutOfMemory;
        const self = allocator.create(Chunk) catch {
            memory_pool.unmap(mapping.bytes);
            return error.OutOfMemory;
        };
        const bytes = mapping.bytes;
        self.* = .{
            .data = bytes[0..data_size],
            .present = bytes[present_at .. present_at + present_size],
            .extra = bytes[extra_at .. extra_at + extra_size],
            .mapping = bytes,
        };
        return self;
    }

    pub fn destroy(self: *Chunk, allocator: std.mem.Allocator) void {
        memory_pool.unmap(self.mapping);
        allocator.destroy(self);
    }

    /// Drops a chunk the core owns (graveyard, ring teardown).
    pub fn dispose(self: *Chunk) void {
        if (self.on_dispose) |f| return f(self);
        self.destroy(std.heap.c_allocator);
    }
};

// ---------------------------------------------------------------------------
// Ring of chunks (spead2's ringbuffer<unique_ptr<chunk>>)

/// Slice of a blocked reader's wait; it re-checks the ring each time.
const ring_wait_ns: u64 = 100 * std.time.ns_per_ms;
pub const ring_capacity_max: u32 = 1 << 16;

/// A bounded queue of chunks shared by streams (producers) and JS. Popping a
/// stopped ring drains what is left before reporting `Stopped`; pushing to it
/// fails. Reference counted: JS and every stream using it hold a reference.
pub const Ring = struct {
    allocator: std.mem.Allocator,
    mutex: std.Thread.Mutex = .{},
    not_empty: std.Thread.Condition = .{},
    not_full: std.Thread.Condition = .{},
    items: []*Chunk,
    head: usize = 0,
    len: usize = 0,
    stopped: bool = false,
    producers: u32 = 0,
    refs: std.atomic.Value(u32) = std.atomic.Value(u32).init(1),
    /// The handle JS knows it by (passed to the doorbell).
    handle: u32 = 0,
    bell: Doorbell = .{},

    pub fn create(allocator: std.mem.Allocator, slots: u32) Error!*Ring {
        if (slots < 1 or slots > ring_capacity_max) return error.InvalidArgument;
        const self = allocator.create(Ring) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const items = allocator.alloc(*Chunk, slots) catch return error.OutOfMemory;
        self.* = .{ .allocator = allocator, .items = items };
        return self;
    }

    pub fn retain(self: *Ring) void {
        _ = self.refs.fetchAdd(1, .acq_rel);
    }

    /// Drops a reference; the last one disposes of the chunks left inside.
    pub fn release(self: *Ring) void {
        if (self.refs.fetchSub(1, .acq_rel) != 1) return;
        while (self.len > 0) {
            self.items[self.head].dispose();
            self.head = (self.head + 1) % self.items.len;
            self.len -= 1;
        }
        const allocator = self.allocator;
        allocator.free(self.items);
        allocator.destroy(self);
    }

    pub fn capacity(self: *const Ring) usize {
        return self.items.len;
    }

    /// Appends without waiting: `QueueFull` when full, `Stopped` when stopped
    /// (the caller keeps the chunk either way).
    pub fn tryPush(self: *Ring, chunk: *Chunk) Error!void {
        self.mutex.lock();
        if (self.stopped) {
            self.mutex.unlock();
            return error.Stopped;
        }
        if (self.len == self.items.len) {
            self.mutex.unlock();
            return error.QueueFull;
        }
        self.pushLocked(chunk);
    }

    /// Appends, waiting while full. `Stopped` (caller keeps the chunk) if the
    /// ring is or becomes stopped.
    pub fn push(self: *Ring, chunk: *Chunk) Error!void {
        self.mutex.lock();
        while (!self.stopped and self.len == self.items.len) {
            self.not_full.timedWait(&self.mutex, ring_wait_ns) catch {};
        }
        if (self.stopped) {
            self.mutex.unlock();
            return error.Stopped;
        }
        self.pushLocked(chunk);
    }

    fn pushLocked(self: *Ring, chunk: *Chunk) void {
        assert(self.len < self.items.len);
        self.items[(self.head + self.len) % self.items.len] = chunk;
        self.len += 1;
        self.not_empty.broadcast();
        self.mutex.unlock();
        self.doorbell();
    }

    fn waitReadyLocked(self: *Ring, timeout_ns: ?u64) bool {
        if (self.len > 0 or self.stopped) return true;
        var timer = std.time.Timer.start() catch return false;
        while (self.len == 0 and !self.stopped) {
            const elapsed = timer.read();
            const slice = if (timeout_ns) |t| blk: {
                if (elapsed >= t) return false;
                break :blk @min(t - elapsed, ring_wait_ns);
            } else ring_wait_ns;
            self.not_empty.timedWait(&self.mutex, slice) catch {};
        }
        return true;
    }

    /// Pops the oldest chunk, waiting up to `timeout_ns` (null: until one
    /// comes or the ring stops). `Empty` on timeout, `Stopped` once stopped
    /// and drained.
    pub fn pop(self: *Ring, timeout_ns: ?u64) Error!*Chunk {
        self.mutex.lock();
        defer self.mutex.unlock();
        if (!self.waitReadyLocked(timeout_ns)) return error.Empty;
        if (self.len == 0) {
            assert(self.stopped);
            return error.Stopped;
        }
        const chunk = self.items[self.head];
        self.head = (self.head + 1) % self.items.len;
        self.len -= 1;
        self.not_full.broadcast();
        return chunk;
    }

    /// Waits until a chunk is ready or the ring stopped (ok), or the timeout
    /// passes (`Empty`), without popping.
    pub fn wait(self: *Ring, timeout_ns: u64) Error!void {
        self.mutex.lock();
        defer self.mutex.unlock();
        if (!self.waitReadyLocked(timeout_ns)) return error.Empty;
    }

    pub fn stop(self: *Ring) void {
        self.mutex.lock();
        const was = self.stopped;
        self.stopped = true;
        self.not_empty.broadcast();
        self.not_full.broadcast();
        self.mutex.unlock();
        if (!was) self.doorbell();
    }

    pub fn addProducer(self: *Ring) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        self.producers += 1;
    }

    /// The last producer to leave stops the ring (spead2's remove_producer).
    pub fn removeProducer(self: *Ring) void {
        self.mutex.lock();
        assert(self.producers > 0);
        self.producers -= 1;
        const last = self.producers == 0;
        self.mutex.unlock();
        if (last) self.stop();
    }

    pub fn size(self: *Ring) usize {
        self.mutex.lock();
        defer self.mutex.unlock();
        return self.len;
    }

    pub fn isStopped(self: *Ring) bool {
        self.mutex.lock();
        defer self.mutex.unlock();
        return self.stopped;
    }

    /// Sets (or with null clears) the doorbell (zig/core/doorbell.zig).
    pub fn setNotify(self: *Ring, callback: ?NotifyFn) void {
        self.bell.set(callback);
    }

    /// Arms the doorbell for one call; rings at once if something is ready.
    pub fn arm(self: *Ring) void {
        self.bell.arm(self.handle, self, hasNews);
    }

    fn hasNews(self: *Ring) bool {
        self.mutex.lock();
        defer self.mutex.unlock();
        return self.len > 0 or self.stopped;
    }

    fn doorbell(self: *Ring) void {
        self.bell.ring(self.handle);
    }
};

// ---------------------------------------------------------------------------
// Placement

/// spead2's `chunk_place_data`, field for field, so that a C place function
/// written for spead2 works unchanged (include/spead_chunk.h).
pub const PlaceData = extern struct {
    packet: [*]const u8,
    packet_size: usize,
    items: [*]i64,
    chunk_id: i64,
    heap_index: usize,
    heap_offset: usize,
    batch_stats: ?[*]u64,
    extra: ?[*]u8,
    extra_offset: usize,
    extra_size: usize,
};

/// `void place(spead_chunk_place_data *data, size_t data_size, void *user_data)`.
pub const PlaceFn = *const fn (data: *PlaceData, data_size: usize, user_data: ?*anyopaque) callconv(.c) void;

pub const rule_items_max = 16;
pub const rule_axes_max = 4;
pub const rule_extra_max = 8;
pub const items_max = 64;

pub const Axis = struct {
    /// Index into the rule's items.
    item: u32,
    /// Values must be below this.
    count: u64,
    /// Heap-index stride of one step along this axis.
    stride: u64,
};

pub const ExtraField = struct {
    item: u32,
    /// Byte offset within the heap's extra record.
    offset: u32,
    /// Bytes written, little-endian (1 to 8).
    width: u32,
};

/// A placement declared as data (issue #11): chunk id and heap index from a
/// timestamp item, plus up to `rule_axes_max` index items with strides.
///
///   chunk_id   = ts / (time_step * time_heaps)
///   t          = (ts mod (time_step * time_heaps)) / time_step
///   heap_index = t * time_stride + sum(value_i * stride_i)
///   heap_offset = heap_index * heap_bytes
///
/// A heap is rejected (counted in `rejected_heaps`) when an item it needs is
/// missing, ts is not a multiple of time_step, an index value is out of its
/// axis, or its HEAP_LENGTH differs from `heap_length` (when non-zero) or
/// exceeds heap_bytes. spead2's tutorial 12 is the rule without axes, with
/// time_step = heap_length = heap_bytes = the heap size. Unlike the tutorial's
/// C++ callback, an unaligned timestamp is refused rather than placed across
/// its neighbour's slot (or past the end of the chunk).
pub const PlaceRule = struct {
    item_count: u32 = 0,
    items: [rule_items_max]u64 = [_]u64{0} ** rule_items_max,
    heap_bytes: u64,
    heap_length: u64 = 0,
    time_item: u32 = 0,
    time_step: u64,
    time_heaps: u64,
    time_stride: u64,
    axis_count: u32 = 0,
    axes: [rule_axes_max]Axis = undefined,
    extra_per_heap: u64 = 0,
    extra_count: u32 = 0,
    extra: [rule_extra_max]ExtraField = undefined,
    /// Derived by `validate`: heaps per chunk and the chunk sizes they need.
    heaps: u64 = 0,
    chunk_bytes: u64 = 0,
    extra_bytes: u64 = 0,

    /// Refuses zero divisors, overflowing strides and offsets past the chunk;
    /// fills the derived sizes. `heaps_declared` (0: derive) is the present
    /// size the caller wants; the rule must fit in it.
    pub fn validate(self: *PlaceRule, heaps_declared: u64) Error!void {
        if (self.item_count < 1 or self.item_count > rule_items_max) return error.InvalidArgument;
        if (self.heap_bytes == 0 or self.time_step == 0 or self.time_heaps == 0) return error.InvalidArgument;
        if (self.heap_length > self.heap_bytes) return error.InvalidArgument;
        if (self.time_item >= self.item_count) return error.InvalidArgument;
        _ = std.math.mul(u64, self.time_step, self.time_heaps) catch return error.InvalidArgument;
        if (self.axis_count > rule_axes_max or self.extra_count > rule_extra_max) return error.InvalidArgument;
        var index_max = std.math.mul(u64, self.time_heaps - 1, self.time_stride) catch return error.InvalidArgument;
        for (self.axes[0..self.axis_count]) |axis| {
            if (axis.item >= self.item_count or axis.count == 0) return error.InvalidArgument;
            const span = std.math.mul(u64, axis.count - 1, axis.stride) catch return error.InvalidArgument;
            index_max = std.math.add(u64, index_max, span) catch return error.InvalidArgument;
        }
        const heaps = std.math.add(u64, index_max, 1) catch return error.InvalidArgument;
        if (heaps_declared != 0 and heaps > heaps_declared) return error.InvalidArgument;
        self.heaps = if (heaps_declared != 0) heaps_declared else heaps;
        self.chunk_bytes = std.math.mul(u64, self.heaps, self.heap_bytes) catch return error.InvalidArgument;
        if (self.chunk_bytes > (1 << 40)) return error.InvalidArgument;
        for (self.extra[0..self.extra_count]) |field| {
            if (field.item >= self.item_count or field.width < 1 or field.width > 8) return error.InvalidArgument;
            if (@as(u64, field.offset) + field.width > self.extra_per_heap) return error.InvalidArgument;
        }
        self.extra_bytes = std.math.mul(u64, self.heaps, self.extra_per_heap) catch return error.InvalidArgument;
        if (self.extra_bytes > (1 << 40)) return error.InvalidArgument;
    }

    /// Evaluates the rule (the same outputs a C place function writes).
    pub fn place(self: *const PlaceRule, values: []const i64, heap_length: u64, data: *PlaceData) void {
        assert(values.len >= self.item_count);
        if (self.heap_length != 0 and heap_length != self.heap_length) return;
        if (heap_length > self.heap_bytes) return;
        const ts_signed = values[self.time_item];
        if (ts_signed < 0) return;
        const ts: u64 = @intCast(ts_signed);
        if (ts % self.time_step != 0) return;
        const span = self.time_step * self.time_heaps;
        var index: u64 = (ts % span) / self.time_step * self.time_stride;
        for (self.axes[0..self.axis_count]) |axis| {
            const v = values[axis.item];
            if (v < 0 or @as(u64, @intCast(v)) >= axis.count) return;
            index += @as(u64, @intCast(v)) * axis.stride;
        }
        assert(index < self.heaps);
        const chunk_id = ts / span;
        if (chunk_id > std.math.maxInt(i64)) return;
        if (self.extra_count > 0) {
            const extra = data.extra.?;
            for (self.extra[0..self.extra_count]) |field| {
                const v: u64 = @bitCast(values[field.item]);
                var i: u32 = 0;
                while (i < field.width) : (i += 1) extra[field.offset + i] = @truncate(v >> @intCast(8 * i));
            }
            data.extra_offset = @intCast(index * self.extra_per_heap);
            data.extra_size = @intCast(self.extra_per_heap);
        }
        data.chunk_id = @intCast(chunk_id);
        data.heap_index = @intCast(index);
        data.heap_offset = @intCast(index * self.heap_bytes);
    }

    /// Reads a rule from words (docs/ABI.md "Chunk streams"); `used` gets the
    /// number of words it took.
    pub fn fromWords(words: []const u64, used: *usize) Error!PlaceRule {
        var r: WordReader = .{ .words = words };
        var rule: PlaceRule = .{ .heap_bytes = 0, .time_step = 0, .time_heaps = 0, .time_stride = 0 };
        rule.item_count = try r.small(rule_items_max);
        for (rule.items[0..rule.item_count]) |*id| id.* = try r.next();
        rule.heap_bytes = try r.next();
        rule.heap_length = try r.next();
        rule.time_item = try r.small(rule_items_max);
        rule.time_step = try r.next();
        rule.time_heaps = try r.next();
        rule.time_stride = try r.next();
        rule.axis_count = try r.small(rule_axes_max);
        for (rule.axes[0..rule.axis_count]) |*axis| {
            axis.* = .{ .item = try r.small(rule_items_max), .count = try r.next(), .stride = try r.next() };
        }
        rule.extra_per_heap = try r.next();
        rule.extra_count = try r.small(rule_extra_max);
        for (rule.extra[0..rule.extra_count]) |*field| {
            field.* = .{ .item = try r.small(rule_items_max), .offset = try r.small(1 << 30), .width = try r.small(8) };
        }
        const heaps_declared = try r.next();
        try rule.validate(heaps_declared);
        used.* = r.at;
        return rule;
    }
};

const WordReader = struct {
    words: []const u64,
    at: usize = 0,

    fn next(self: *WordReader) Error!u64 {
        if (self.at >= self.words.len) return error.InvalidArgument;
        defer self.at += 1;
        return self.words[self.at];
    }

    fn small(self: *WordReader, max: u64) Error!u32 {
        const v = try self.next();
        if (v > max) return error.InvalidArgument;
        return @intCast(v);
    }
};

pub const Placer = union(enum) {
    rule: PlaceRule,
    function: struct { place: PlaceFn, user_data: ?*anyopaque },
};

// ---------------------------------------------------------------------------
// Chunk window (spead2's chunk_window)

/// The chunks under construction: ids [head, tail) in a circular array.
pub const Window = struct {
    slots: []?*Chunk,
    head: u64 = 0,
    tail: u64 = 0,
    head_pos: usize = 0,
    tail_pos: usize = 0,

    pub fn init(allocator: std.mem.Allocator, chunks_max: usize) Error!Window {
        const slots = allocator.alloc(?*Chunk, chunks_max) catch return error.OutOfMemory;
        @memset(slots, null);
        return .{ .slots = slots };
    }

    pub fn deinit(self: *Window, allocator: std.mem.Allocator) void {
        assert(self.isEmpty());
        allocator.free(self.slots);
    }

    pub fn isEmpty(self: *const Window) bool {
        return self.head == self.tail;
    }

    fn posOf(self: *const Window, chunk_id: u64) usize {
        assert(chunk_id >= self.head and chunk_id < self.tail);
        const pos = self.head_pos + @as(usize, @intCast(chunk_id - self.head));
        return if (pos >= self.slots.len) pos - self.slots.len else pos;
    }

    /// The chunk for an id inside the window (null outside or never allocated).
    pub fn get(self: *const Window, chunk_id: u64) ?*Chunk {
        if (chunk_id < self.head or chunk_id >= self.tail) return null;
        return self.slots[self.posOf(chunk_id)];
    }

    /// Hands the oldest chunk (if any was allocated) to `ready`.
    fn flushHead(self: *Window, manager: anytype) void {
        assert(self.head < self.tail);
        if (self.slots[self.head_pos]) |c| {
            self.slots[self.head_pos] = null;
            manager.readyChunk(c);
        }
        self.head += 1;
        self.head_pos += 1;
        if (self.head_pos == self.slots.len) self.head_pos = 0;
    }

    /// Flushes everything; the window restarts at `next`.
    pub fn flushAll(self: *Window, next: u64, manager: anytype) void {
        const old = self.head;
        while (!self.isEmpty()) self.flushHead(manager);
        self.head = next;
        self.tail = next;
        if (self.head != old) manager.headUpdated(self.head);
    }

    /// Flushes until the head is at least `target`.
    pub fn flushUntil(self: *Window, target: u64, manager: anytype) void {
        if (self.head >= target) return;
        while (self.head != self.tail and self.head < target) self.flushHead(manager);
        if (self.head < target) {
            self.head = target;
            self.tail = target;
        }
        manager.headUpdated(target);
    }

    /// The chunk for `chunk_id` (>= head), moving the window forward and
    /// allocating chunks as needed. Null if the manager had no chunk to give.
    pub fn getOrAllocate(self: *Window, chunk_id: u64, stream_id: u64, manager: anytype) ?*Chunk {
        assert(chunk_id >= self.head);
        const max: u64 = self.slots.len;
        if (chunk_id >= self.tail and chunk_id - self.tail >= max) {
            // So far ahead that the whole window goes.
            self.flushAll(chunk_id - (max - 1), manager);
        }
        while (chunk_id >= self.tail) {
            if (self.tail - self.head == max) {
                const old = self.head;
                self.flushHead(manager);
                assert(self.head == old + 1);
                manager.headUpdated(self.head);
            }
            const c = manager.allocateChunk(self.tail);
            if (c) |chunk| {
                chunk.chunk_id = @intCast(self.tail);
                chunk.stream_id = stream_id;
            }
            self.slots[self.tail_pos] = c;
            self.tail += 1;
            self.tail_pos += 1;
            if (self.tail_pos == self.slots.len) self.tail_pos = 0;
        }
        return self.slots[self.posOf(chunk_id)];
    }
};

// ---------------------------------------------------------------------------
// Chunk stream

pub const Config = struct {
    chunks_max: u32 = 2,
    heap_extra_max: u32 = 0,
    /// Item ids whose immediate values the placement sees (spead2's `items`).
    items: []const u64 = &.{},
    placer: Placer,

    pub fn validate(self: Config) Error!void {
        if (self.chunks_max < 1 or self.chunks_max > 1 << 16) return error.InvalidArgument;
        if (self.items.len > items_max) return error.InvalidArgument;
        if (self.heap_extra_max > 1 << 20) return error.InvalidArgument;
        switch (self.placer) {
            .rule => |rule| {
                if (rule.item_count != self.items.len) return error.InvalidArgument;
                if (!std.mem.eql(u64, rule.items[0..rule.item_count], self.items)) return error.InvalidArgument;
                if (rule.extra_per_heap > self.heap_extra_max) return error.InvalidArgument;
                assert(rule.heaps > 0);
            },
            .function => {},
        }
    }
};

/// Statistics of the chunk stream itself (after the stream's own, as spead2
/// adds them with add_stat).
pub const Stat = enum(u8) { too_old_heaps, rejected_heaps };
pub const stat_count = @typeInfo(Stat).@"enum".fields.len;
pub const stat_names = [stat_count][]const u8{ "too_old_heaps", "rejected_heaps" };

/// Where chunks come from and go to: a pair of rings (ChunkRingStream) or a
/// group (zig/recv/chunk_group.zig).
pub const Manager = struct {
    ctx: *anyopaque,
    vtable: *const VTable,

    pub const VTable = struct {
        allocate_chunk: *const fn (ctx: *anyopaque, member: *ChunkStream, chunk_id: u64) ?*Chunk,
        ready_chunk: *const fn (ctx: *anyopaque, member: *ChunkStream, chunk: *Chunk) void,
        head_updated: *const fn (ctx: *anyopaque, member: *ChunkStream, head: u64) void,
        /// The member stopped receiving (table lock held, chunks flushed).
        stop_received: *const fn (ctx: *anyopaque, member: *ChunkStream) void,
        /// stop() from JS (no lock held), before the stream stops.
        stop: *const fn (ctx: *anyopaque, member: *ChunkStream) void,
        /// The member is being destroyed.
        detach: *const fn (ctx: *anyopaque, member: *ChunkStream) void,
    };
};

pub const ChunkStream = struct {
    allocator: std.mem.Allocator,
    stream: *Stream,
    config: Config,
    items: []u64,
    manager: Manager,
    window: Window,
    values: []i64,
    extra_scratch: []u8,
    user_data: []align(16) u8,
    /// The member index in a group (0 for a lone stream), copied into its chunks.
    stream_id: u64,
    stats: [stat_count]std.atomic.Value(u64) = [_]std.atomic.Value(u64){std.atomic.Value(u64).init(0)} ** stat_count,
    /// Chunks that could not be handed on at stop (spead2's graveyard);
    /// disposed of at destroy.
    graveyard: ?*Chunk = null,
    /// LOSSY groups ask members to flush up to here (chunk_group.zig); the
    /// member applies it under its own table lock.
    flush_request: std.atomic.Value(u64) = std.atomic.Value(u64).init(0),

    /// Creates the stream and its chunk state. `user_data` is copied; the C
    /// place function gets a pointer to the copy.
    pub fn create(
        allocator: std.mem.Allocator,
        payload_allocator: reassembly.PayloadAllocator,
        stream_config: recv_stream.Config,
        config: Config,
        user_data: []const u8,
        manager: Manager,
    ) Error!*ChunkStream {
        try config.validate();
        var sc = stream_config;
        // Placement needs the heap length from the first packet (as spead2).
        sc.reassembly.allow_unsized_heaps = false;
        const self = allocator.create(ChunkStream) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const items = allocator.dupe(u64, config.items) catch return error.OutOfMemory;
        errdefer allocator.free(items);
        const values = allocator.alloc(i64, @max(config.items.len, 1)) catch return error.OutOfMemory;
        errdefer allocator.free(values);
        const extra_scratch = allocator.alloc(u8, @max(config.heap_extra_max, 1)) catch return error.OutOfMemory;
        errdefer allocator.free(extra_scratch);
        const user_copy = allocator.alignedAlloc(u8, 16, @max(user_data.len, 1)) catch return error.OutOfMemory;
        errdefer allocator.free(user_copy);
        @memcpy(user_copy[0..user_data.len], user_data);
        var window = try Window.init(allocator, config.chunks_max);
        errdefer window.deinit(allocator);
        const stream = try Stream.create(allocator, payload_allocator, sc);
        self.* = .{
            .allocator = allocator,
            .stream = stream,
            .config = config,
            .items = items,
            .manager = manager,
            .window = window,
            .values = values,
            .extra_scratch = extra_scratch,
            .user_data = user_copy,
            .stream_id = 0,
        };
        self.config.items = items;
        stream.chunk_hooks = .{ .ctx = self, .vtable = &hooks_vtable };
        stream.table.placement = .{ .ctx = self, .vtable = &placement_vtable };
        return self;
    }

    pub fn fromStream(stream: *Stream) ?*ChunkStream {
        const hooks = stream.chunk_hooks orelse return null;
        return @ptrCast(@alignCast(hooks.ctx));
    }

    pub fn stat(self: *const ChunkStream, which: Stat) u64 {
        return self.stats[@intFromEnum(which)].load(.acquire);
    }

    fn count(self: *ChunkStream, which: Stat) void {
        _ = self.stats[@intFromEnum(which)].fetchAdd(1, .acq_rel);
    }

    fn tooOld(self: *const ChunkStream, chunk_id: i64) bool {
        return chunk_id < 0 or @as(u64, @intCast(chunk_id)) < self.window.head;
    }

    /// Adds a chunk to the graveyard (table lock held, or single-threaded).
    pub fn bury(self: *ChunkStream, chunk: *Chunk) void {
        assert(chunk.next == null);
        chunk.next = self.graveyard;
        self.graveyard = chunk;
    }

    // -- window manager adaptor (anytype for Window) -----------------------

    fn allocateChunk(self: *ChunkStream, chunk_id: u64) ?*Chunk {
        return self.manager.vtable.allocate_chunk(self.manager.ctx, self, chunk_id);
    }

    fn readyChunk(self: *ChunkStream, chunk: *Chunk) void {
        self.manager.vtable.ready_chunk(self.manager.ctx, self, chunk);
    }

    fn headUpdated(self: *ChunkStream, head: u64) void {
        self.manager.vtable.head_updated(self.manager.ctx, self, head);
    }

    /// Applies a group's flush request (table lock held).
    pub fn applyFlushRequest(self: *ChunkStream) void {
        const target = self.flush_request.load(.acquire);
        if (target > self.window.head) self.window.flushUntil(target, self);
    }

    /// Flushes every chunk (table lock held).
    pub fn flushChunks(self: *ChunkStream) void {
        self.window.flushAll(std.math.maxInt(u64), self);
    }

    // -- placement (reader thread, table lock held) ------------------------

    const placement_vtable: reassembly.Placement.VTable = .{ .place = placeHeap, .writable = writable };

    fn extractItems(self: *ChunkStream, packet: Packet) void {
        const values = self.values[0..self.items.len];
        @memset(values, -1);
        const hab = packet.heap_address_bits;
        for (self.items, values) |id, *v| {
            switch (id) {
                protocol.id_heap_cnt => v.* = @intCast(packet.heap_cnt),
                protocol.id_heap_length => if (packet.heap_length) |l| {
                    v.* = @intCast(l);
                },
                protocol.id_payload_offset => v.* = @intCast(packet.payload_offset),
                protocol.id_payload_length => v.* = @intCast(packet.payload_length),
                else => {},
            }
        }
        var i: usize = 0;
        while (i < packet.pointerCount()) : (i += 1) {
            const word = packet.pointer(i);
            if (!packet_mod.pointerIsImmediate(word)) continue;
            const id = packet_mod.pointerId(hab, word);
            for (self.items, values) |want, *v| {
                if (want == id) v.* = @intCast(packet_mod.pointerValue(hab, word));
            }
        }
    }

    fn placeHeap(ctx: *anyopaque, heap: *LiveHeap, packet: Packet, size: u64) ?[]u8 {
        const self: *ChunkStream = @ptrCast(@alignCast(ctx));
        self.extractItems(packet);
        const packet_start = packet.payload.ptr + packet.payload.len - packet.size;
        var data: PlaceData = .{
            .packet = packet_start,
            .packet_size = packet.size,
            .items = self.values.ptr,
            .chunk_id = -1,
            .heap_index = 0,
            .heap_offset = 0,
            .batch_stats = null,
            .extra = if (self.config.heap_extra_max > 0) self.extra_scratch.ptr else null,
            .extra_offset = 0,
            .extra_size = 0,
        };
        switch (self.config.placer) {
            .rule => |*rule| rule.place(self.values, packet.heap_length.?, &data),
            .function => |f| f.place(&data, @sizeOf(PlaceData), f.user_data),
        }
        heap.place_tag = .{ @bitCast(@as(i64, -1)), 0 };
        if (data.chunk_id < 0) {
            self.count(.rejected_heaps);
            return null;
        }
        if (self.tooOld(data.chunk_id)) {
            self.count(.too_old_heaps);
            return null;
        }
        const chunk = self.window.getOrAllocate(@intCast(data.chunk_id), self.stream_id, self) orelse return null;
        // A C function (or a chunk smaller than the rule) may point anywhere:
        // out-of-bounds placements are refused, never written.
        const in_bounds = data.heap_index < chunk.present.len and
            data.heap_offset <= chunk.data.len and size <= chunk.data.len - data.heap_offset and
            data.extra_size <= self.config.heap_extra_max and
            data.extra_offset <= chunk.extra.len and data.extra_size <= chunk.extra.len - data.extra_offset;
        if (!in_bounds) {
            self.count(.rejected_heaps);
            return null;
        }
        if (data.extra_size > 0) @memcpy(chunk.extra[data.extra_offset..][0..data.extra_size], self.extra_scratch[0..data.extra_size]);
        heap.place_tag = .{ @bitCast(data.chunk_id), data.heap_index };
        return chunk.data[data.heap_offset..][0..@intCast(size)];
    }

    fn writable(ctx: *anyopaque, heap: *const LiveHeap) bool {
        const self: *ChunkStream = @ptrCast(@alignCast(ctx));
        return !self.tooOld(@bitCast(heap.place_tag[0]));
    }

    // -- stream hooks ------------------------------------------------------

    const hooks_vtable: recv_stream.ChunkHooks.VTable = .{
        .heap_ready = heapReady,
        .stop_received = stopReceived,
        .stop = stopHook,
        .destroy = destroyHook,
    };

    /// spead2's do_heap_ready: a complete heap whose chunk is still in the
    /// window is marked present.
    fn heapReady(ctx: *anyopaque, heap: *LiveHeap) void {
        const self: *ChunkStream = @ptrCast(@alignCast(ctx));
        if (!heap.isComplete() or !heap.placed or heap.payload.len == 0) return;
        const chunk_id: i64 = @bitCast(heap.place_tag[0]);
        if (self.tooOld(chunk_id)) {
            self.count(.too_old_heaps);
            return;
        }
        const chunk = self.window.get(@intCast(chunk_id)) orelse return;
        chunk.present[@intCast(heap.place_tag[1])] = 1;
    }

    fn stopReceived(ctx: *anyopaque) void {
        const self: *ChunkStream = @ptrCast(@alignCast(ctx));
        self.flushChunks();
        self.manager.vtable.stop_received(self.manager.ctx, self);
    }

    fn stopHook(ctx: *anyopaque) void {
        const self: *ChunkStream = @ptrCast(@alignCast(ctx));
        self.manager.vtable.stop(self.manager.ctx, self);
    }

    fn destroyHook(ctx: *anyopaque) void {
        const self: *ChunkStream = @ptrCast(@alignCast(ctx));
        self.manager.vtable.detach(self.manager.ctx, self);
        while (self.graveyard) |c| {
            self.graveyard = c.next;
            c.next = null;
            c.dispose();
        }
        const allocator = self.allocator;
        self.window.deinit(allocator);
        allocator.free(self.items);
        allocator.free(self.values);
        allocator.free(self.extra_scratch);
        allocator.free(self.user_data);
        allocator.destroy(self);
    }

    /// Pointer to the copy of the user data (for the C place function).
    pub fn userData(self: *ChunkStream) ?*anyopaque {
        return @ptrCast(self.user_data.ptr);
    }
};

// ---------------------------------------------------------------------------
// Ring manager (spead2's chunk_ring_stream)

/// Chunks from a free ring, finished chunks to a data ring. One per stream.
pub const RingPair = struct {
    allocator: std.mem.Allocator,
    data_ring: *Ring,
    free_ring: *Ring,

    pub fn create(allocator: std.mem.Allocator, data_ring: *Ring, free_ring: *Ring) Error!*RingPair {
        const self = allocator.create(RingPair) catch return error.OutOfMemory;
        data_ring.retain();
        free_ring.retain();
        data_ring.addProducer();
        self.* = .{ .allocator = allocator, .data_ring = data_ring, .free_ring = free_ring };
        return self;
    }

    pub fn manager(self: *RingPair) Manager {
        return .{ .ctx = self, .vtable = &vtable };
    }

    const vtable: Manager.VTable = .{
        .allocate_chunk = allocateChunk,
        .ready_chunk = readyChunk,
        .head_updated = headUpdated,
        .stop_received = stopReceived,
        .stop = stop,
        .detach = detach,
    };

    fn allocateChunk(ctx: *anyopaque, member: *ChunkStream, chunk_id: u64) ?*Chunk {
        _ = member;
        _ = chunk_id;
        const self: *RingPair = @ptrCast(@alignCast(ctx));
        return self.free_ring.pop(null) catch null;
    }

    fn readyChunk(ctx: *anyopaque, member: *ChunkStream, chunk: *Chunk) void {
        const self: *RingPair = @ptrCast(@alignCast(ctx));
        self.data_ring.push(chunk) catch member.bury(chunk);
    }

    fn headUpdated(ctx: *anyopaque, member: *ChunkStream, head: u64) void {
        _ = ctx;
        _ = member;
        _ = head;
    }

    fn stopReceived(ctx: *anyopaque, member: *ChunkStream) void {
        _ = member;
        const self: *RingPair = @ptrCast(@alignCast(ctx));
        self.data_ring.removeProducer();
    }

    fn stop(ctx: *anyopaque, member: *ChunkStream) void {
        _ = member;
        const self: *RingPair = @ptrCast(@alignCast(ctx));
        // As spead2: stop the rings first so that a reader blocked on them
        // (JS no longer serving them) lets go before we flush.
        self.free_ring.stop();
        self.data_ring.stop();
    }

    fn detach(ctx: *anyopaque, member: *ChunkStream) void {
        _ = member;
        const self: *RingPair = @ptrCast(@alignCast(ctx));
        self.data_ring.release();
        self.free_ring.release();
        self.allocator.destroy(self);
    }
};

/// Creates a chunk ring stream (spead2's chunk_ring_stream).
pub fn createRingStream(
    allocator: std.mem.Allocator,
    payload_allocator: reassembly.PayloadAllocator,
    stream_config: recv_stream.Config,
    config: Config,
    user_data: []const u8,
    data_ring: *Ring,
    free_ring: *Ring,
) Error!*ChunkStream {
    try config.validate();
    const pair = try RingPair.create(allocator, data_ring, free_ring);
    errdefer RingPair.detach(pair, undefined);
    errdefer data_ring.removeProducer();
    return ChunkStream.create(allocator, payload_allocator, stream_config, config, user_data, pair.manager());
}

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;
const imm = packet_mod.imm;
const addr = packet_mod.addr;

var test_payload_allocator: reassembly.DefaultPayloadAllocator = .{ .backing = testing.allocator };

/// Tutorial 12's rule: items [HEAP_LENGTH, 0x1600].
fn tut12Rule(heap_size: u64, chunk_heaps: u64) !PlaceRule {
    var rule: PlaceRule = .{ .heap_bytes = heap_size, .heap_length = heap_size, .time_item = 1, .time_step = heap_size, .time_heaps = chunk_heaps, .time_stride = 1 };
    rule.item_count = 2;
    rule.items[0] = protocol.id_heap_length;
    rule.items[1] = 0x1600;
    try rule.validate(0);
    return rule;
}

/// Appends one heap (timestamp `ts`, payload from `fill`) in packets of `chunk` bytes.
fn appendHeap(out: *std.ArrayList(u8), cnt: u64, ts: u64, extra_items: []const packet_mod.TestPointer, data: []const u8, piece: usize) !void {
    var buf: [4096]u8 = undefined;
    var off: usize = 0;
    while (off < data.len) {
        const len = @min(piece, data.len - off);
        var pointers: [12]packet_mod.TestPointer = undefined;
        var n: usize = 0;
        for ([_]packet_mod.TestPointer{ imm(1, cnt), imm(2, data.len), imm(3, off), imm(4, len), imm(0x1600, ts) }) |p| {
            pointers[n] = p;
            n += 1;
        }
        for (extra_items) |p| {
            pointers[n] = p;
            n += 1;
        }
        pointers[n] = addr(0x1700, 0);
        n += 1;
        try out.appendSlice(packet_mod.buildTestPacket(&buf, 48, pointers[0..n], data[off .. off + len]));
        off += len;
    }
}

fn testRings(free: u32) !struct { data: *Ring, free: *Ring, chunks: []*Chunk } {
    const data_ring = try Ring.create(testing.allocator, 8);
    const free_ring = try Ring.create(testing.allocator, free);
    return .{ .data = data_ring, .free = free_ring, .chunks = &.{} };
}

fn fillFree(ring: *Ring, n: usize, data_size: usize, present: usize, extra: usize) !void {
    var i: usize = 0;
    while (i < n) : (i += 1) try ring.tryPush(try Chunk.create(std.heap.c_allocator, data_size, present, extra));
}

fn popChunks(ring: *Ring, out: *std.ArrayList(*Chunk)) !void {
    var i: usize = 0;
    while (i < 10_000) : (i += 1) {
        const c = ring.pop(5 * std.time.ns_per_s) catch |err| switch (err) {
            error.Stopped => return,
            else => return err,
        };
        try out.append(c);
    }
    return error.TestUnexpectedResult;
}

fn disposeAll(list: *std.ArrayList(*Chunk)) void {
    for (list.items) |c| c.dispose();
    list.deinit();
}

test "tutorial 12 rule: heaps land in place, missing ones stay absent, too old and rejected counted" {
    const heap_size = 256;
    const chunk_heaps = 4;
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var payload: [heap_size]u8 = undefined;
    var cnt: u64 = 1;
    var h: u64 = 0;
    while (h < 16) : (h += 1) {
        if (h == 5 or h == 6) continue; // lost heaps
        for (&payload, 0..) |*b, i| b.* = @truncate(h * 7 + i);
        try appendHeap(&bytes, cnt, h * heap_size, &.{}, &payload, 100);
        cnt += 1;
    }
    // heap 1 again, after the window moved on: too old
    try appendHeap(&bytes, cnt, 1 * heap_size, &.{}, &payload, 100);
    cnt += 1;
    // wrong length: rejected by the rule
    try appendHeap(&bytes, cnt, 16 * heap_size, &.{}, payload[0..100], 100);
    cnt += 1;

    const rings = try testRings(8);
    try fillFree(rings.free, 8, heap_size * chunk_heaps, chunk_heaps, 0);
    const rule = try tut12Rule(heap_size, chunk_heaps);
    test_payload_allocator = .{ .backing = testing.allocator };
    const cs = try createRingStream(testing.allocator, test_payload_allocator.payloadAllocator(), .{ .reassembly = .{ .heaps_max = 2 } }, .{
        .chunks_max = 1,
        .items = rule.items[0..2],
        .placer = .{ .rule = rule },
    }, &.{}, rings.data, rings.free);
    try recv_stream.BufferReader.add(cs.stream, bytes.items);
    var chunks = std.ArrayList(*Chunk).init(testing.allocator);
    defer disposeAll(&chunks);
    try popChunks(rings.data, &chunks);
    try testing.expectEqual(@as(usize, 4), chunks.items.len);
    for (chunks.items, 0..) |c, ci| {
        try testing.expectEqual(@as(i64, @intCast(ci)), c.chunk_id);
        for (0..chunk_heaps) |hi| {
            const heap = ci * chunk_heaps + hi;
            const expect_present: u8 = if (heap == 5 or heap == 6) 0 else 1;
            try testing.expectEqual(expect_present, c.present[hi]);
            if (expect_present == 1) {
                for (c.data[hi * heap_size ..][0..heap_size], 0..) |b, i| try testing.expectEqual(@as(u8, @truncate(heap * 7 + i)), b);
            }
        }
    }
    try testing.expectEqual(@as(u64, 1), cs.stat(.too_old_heaps));
    try testing.expectEqual(@as(u64, 1), cs.stat(.rejected_heaps));
    try testing.expectEqual(@as(u64, 16), cs.stream.stat(.heaps));
    cs.stream.destroy();
    rings.data.release();
    rings.free.release();
}

fn testPlaceFn(data: *PlaceData, data_size: usize, user_data: ?*anyopaque) callconv(.c) void {
    assert(data_size == @sizeOf(PlaceData));
    const sizes: *const [2]i64 = @ptrCast(@alignCast(user_data.?));
    const payload_size = data.items[0];
    const ts = data.items[1];
    if (ts >= 0 and payload_size == sizes[0]) {
        data.chunk_id = @divTrunc(ts, sizes[1]);
        data.heap_offset = @intCast(@mod(ts, sizes[1]));
        data.heap_index = data.heap_offset / @as(usize, @intCast(sizes[0]));
    }
}

fn evilPlaceFn(data: *PlaceData, data_size: usize, user_data: ?*anyopaque) callconv(.c) void {
    _ = data_size;
    _ = user_data;
    data.chunk_id = 0;
    data.heap_index = 1000;
    data.heap_offset = 1 << 40;
}

test "C place function: same chunks as the rule; out-of-bounds placements refused" {
    const heap_size = 128;
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var payload: [heap_size]u8 = undefined;
    for (0..8) |h| {
        @memset(&payload, @truncate(h + 1));
        try appendHeap(&bytes, h + 1, h * heap_size, &.{}, &payload, 64);
    }
    const rule = try tut12Rule(heap_size, 2);
    const sizes = [2]i64{ heap_size, heap_size * 2 };
    var results: [2][4][heap_size * 2]u8 = undefined;
    for ([_]bool{ false, true }, 0..) |use_fn, run| {
        const rings = try testRings(4);
        try fillFree(rings.free, 4, heap_size * 2, 2, 0);
        const placer: Placer = if (use_fn) .{ .function = .{ .place = testPlaceFn, .user_data = null } } else .{ .rule = rule };
        const cs = try createRingStream(testing.allocator, test_payload_allocator.payloadAllocator(), .{}, .{ .items = rule.items[0..2], .placer = placer }, std.mem.asBytes(&sizes), rings.data, rings.free);
        if (use_fn) cs.config.placer.function.user_data = cs.userData();
        try recv_stream.BufferReader.add(cs.stream, bytes.items);
        var chunks = std.ArrayList(*Chunk).init(testing.allocator);
        defer disposeAll(&chunks);
        try popChunks(rings.data, &chunks);
        try testing.expectEqual(@as(usize, 4), chunks.items.len);
        for (chunks.items, 0..) |c, i| {
            try testing.expectEqualSlices(u8, &.{ 1, 1 }, c.present);
            @memcpy(&results[run][i], c.data);
        }
        cs.stream.destroy();
        rings.data.release();
        rings.free.release();
    }
    try testing.expectEqualDeep(results[0], results[1]);

    const rings = try testRings(2);
    try fillFree(rings.free, 2, heap_size * 2, 2, 0);
    const cs = try createRingStream(testing.allocator, test_payload_allocator.payloadAllocator(), .{}, .{ .items = rule.items[0..2], .placer = .{ .function = .{ .place = evilPlaceFn, .user_data = null } } }, &.{}, rings.data, rings.free);
    try recv_stream.BufferReader.add(cs.stream, bytes.items);
    var chunks = std.ArrayList(*Chunk).init(testing.allocator);
    defer disposeAll(&chunks);
    try popChunks(rings.data, &chunks);
    try testing.expectEqual(@as(u64, 8), cs.stat(.rejected_heaps));
    for (chunks.items) |c| try testing.expectEqualSlices(u8, &.{ 0, 0 }, c.present);
    cs.stream.destroy();
    rings.data.release();
    rings.free.release();
}

test "correlator rule: timestamp x antenna with strides, extra copies" {
    const heap_size = 64;
    const ant_count = 3;
    const time_heaps = 2;
    var rule: PlaceRule = .{ .heap_bytes = heap_size, .heap_length = heap_size, .time_item = 0, .time_step = 1000, .time_heaps = time_heaps, .time_stride = ant_count, .extra_per_heap = 8 };
    rule.item_count = 2;
    rule.items[0] = 0x1600;
    rule.items[1] = 0x4101;
    rule.axis_count = 1;
    rule.axes[0] = .{ .item = 1, .count = ant_count, .stride = 1 };
    rule.extra_count = 2;
    rule.extra[0] = .{ .item = 1, .offset = 0, .width = 2 };
    rule.extra[1] = .{ .item = 0, .offset = 2, .width = 6 };
    try rule.validate(0);
    try testing.expectEqual(@as(u64, 6), rule.heaps);
    try testing.expectEqual(@as(u64, 6 * heap_size), rule.chunk_bytes);
    try testing.expectEqual(@as(u64, 48), rule.extra_bytes);

    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var payload: [heap_size]u8 = undefined;
    var cnt: u64 = 1;
    for (0..4) |t| {
        for (0..ant_count) |ant| {
            if (t == 1 and ant == 2) continue;
            @memset(&payload, @truncate(t * 16 + ant));
            try appendHeap(&bytes, cnt, t * 1000, &.{imm(0x4101, ant)}, &payload, 40);
            cnt += 1;
        }
    }
    try appendHeap(&bytes, cnt, 9000, &.{imm(0x4101, 7)}, &payload, 40); // antenna out of range
    const rings = try testRings(4);
    try fillFree(rings.free, 4, rule.chunk_bytes, rule.heaps, rule.extra_bytes);
    const cs = try createRingStream(testing.allocator, test_payload_allocator.payloadAllocator(), .{ .reassembly = .{ .heaps_max = 4 } }, .{ .items = rule.items[0..2], .heap_extra_max = 8, .placer = .{ .rule = rule } }, &.{}, rings.data, rings.free);
    try recv_stream.BufferReader.add(cs.stream, bytes.items);
    var chunks = std.ArrayList(*Chunk).init(testing.allocator);
    defer disposeAll(&chunks);
    try popChunks(rings.data, &chunks);
    try testing.expectEqual(@as(usize, 2), chunks.items.len);
    try testing.expectEqual(@as(i64, 1), chunks.items[1].chunk_id);
    try testing.expectEqual(@as(u64, 1), cs.stat(.rejected_heaps));
    for (chunks.items, 0..) |c, ci| {
        for (0..time_heaps) |tt| for (0..ant_count) |ant| {
            const t = ci * time_heaps + tt;
            const ts = t * 1000;
            const index = tt * ant_count + ant;
            const missing = t == 1 and ant == 2;
            try testing.expectEqual(@as(u8, if (missing) 0 else 1), c.present[index]);
            if (missing) continue;
            try testing.expectEqual(@as(u8, @truncate(t * 16 + ant)), c.data[index * heap_size]);
            const rec = c.extra[index * 8 ..][0..8];
            try testing.expectEqual(@as(u16, @intCast(ant)), std.mem.readInt(u16, rec[0..2], .little));
            try testing.expectEqual(@as(u48, @intCast(ts)), std.mem.readInt(u48, rec[2..8], .little));
        };
    }
    cs.stream.destroy();
    rings.data.release();
    rings.free.release();
}

test "bad rules are refused" {
    const good = try tut12Rule(1024, 8);
    try testing.expectEqual(@as(u64, 8 * 1024), good.chunk_bytes);
    var r = good;
    r.time_step = 0;
    try testing.expectError(error.InvalidArgument, r.validate(0));
    r = good;
    r.heap_bytes = 0;
    try testing.expectError(error.InvalidArgument, r.validate(0));
    r = good;
    r.time_stride = std.math.maxInt(u64) / 2;
    try testing.expectError(error.InvalidArgument, r.validate(0));
    r = good;
    try testing.expectError(error.InvalidArgument, r.validate(4)); // 8 heaps do not fit in 4
    r = good;
    r.axis_count = 1;
    r.axes[0] = .{ .item = 0, .count = 2, .stride = std.math.maxInt(u64) };
    try testing.expectError(error.InvalidArgument, r.validate(0));
    r = good;
    r.extra_count = 1;
    r.extra[0] = .{ .item = 0, .offset = 4, .width = 8 };
    r.extra_per_heap = 8;
    try testing.expectError(error.InvalidArgument, r.validate(0));
    r = good;
    r.time_item = 5;
    try testing.expectError(error.InvalidArgument, r.validate(0));
    var used: usize = 0;
    try testing.expectError(error.InvalidArgument, PlaceRule.fromWords(&.{ 2, 2, 0x1600 }, &used));
}

test "stop with a reader blocked on an empty free ring" {
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var payload: [64]u8 = undefined;
    @memset(&payload, 3);
    for (0..6) |h| try appendHeap(&bytes, h + 1, h * 64, &.{}, &payload, 64);
    const rings = try testRings(2);
    try fillFree(rings.free, 1, 64, 1, 0);
    const rule = try tut12Rule(64, 1);
    const cs = try createRingStream(testing.allocator, test_payload_allocator.payloadAllocator(), .{}, .{ .chunks_max = 1, .items = rule.items[0..2], .placer = .{ .rule = rule } }, &.{}, rings.data, rings.free);
    try recv_stream.BufferReader.add(cs.stream, bytes.items);
    // One free chunk: heap 0 lands in it, heap 1 moves it to the data ring,
    // then the reader waits for a free chunk that never comes.
    var spins: usize = 0;
    while (rings.data.size() == 0 and spins < 5000) : (spins += 1) std.time.sleep(std.time.ns_per_ms);
    try testing.expectEqual(@as(usize, 1), rings.data.size());
    cs.stream.stop();
    var chunks = std.ArrayList(*Chunk).init(testing.allocator);
    defer disposeAll(&chunks);
    try popChunks(rings.data, &chunks);
    try testing.expectEqual(@as(usize, 1), chunks.items.len);
    try testing.expectEqualSlices(u8, &.{1}, chunks.items[0].present);
    try testing.expectEqual(@as(u64, 6), cs.stream.stat(.heaps));
    cs.stream.destroy();
    rings.data.release();
    rings.free.release();
}
