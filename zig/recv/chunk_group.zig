//! Chunk stream groups (spead2's chunk_stream_group / chunk_stream_ring_group):
//! several member chunk streams (one per port or multicast group, each with
//! its own readers and threads) whose heaps land in the same chunks, aligned
//! by chunk id.
//!
//! The group keeps the shared window of chunks; each member keeps its own
//! window of pointers into it. A chunk is ready (pushed to the data ring) once
//! every member's head has passed it. When a member needs a chunk beyond the
//! group's window:
//! * LOSSY: the group asks every member to flush up to the new window start
//!   (`ChunkStream.flush_request`), so the slowest member cannot hold the
//!   others back; its late heaps for flushed chunks become `too_old_heaps`.
//! * LOSSLESS: the member waits until every member has moved on by itself.
//!
//! Locks: a member's table lock, then the group mutex. The group never takes a
//! member's table lock while holding its mutex, and takes another member's
//! only with tryLock (that member may be waiting for us).
const std = @import("std");
const assert = std.debug.assert;
const status = @import("../core/status.zig");
const Error = status.Error;
const chunk_mod = @import("chunk.zig");
const Chunk = chunk_mod.Chunk;
const ChunkStream = chunk_mod.ChunkStream;
const Ring = chunk_mod.Ring;
const Window = chunk_mod.Window;
const reassembly = @import("reassembly.zig");
const recv_stream = @import("stream.zig");

pub const EvictionMode = enum(u8) { lossy, lossless };
pub const members_max = 64;
/// Slice of a member's wait for the group window to move.
const wait_slice_ns: u64 = 10 * std.time.ns_per_ms;

pub const Config = struct {
    chunks_max: u32 = 2,
    eviction_mode: EvictionMode = .lossy,

    pub fn validate(self: Config) Error!void {
        if (self.chunks_max < 1 or self.chunks_max > 1 << 16) return error.InvalidArgument;
    }
};

pub const Group = struct {
    allocator: std.mem.Allocator,
    config: Config,
    mutex: std.Thread.Mutex = .{},
    /// Broadcast whenever the group window's head moves (or the group stops).
    moved: std.Thread.Condition = .{},
    window: Window,
    members: [members_max]?*ChunkStream = [_]?*ChunkStream{null} ** members_max,
    heads: [members_max]u64 = [_]u64{0} ** members_max,
    member_count: usize = 0,
    last_flush_until: u64 = 0,
    data_ring: *Ring,
    free_ring: *Ring,
    stopped: std.atomic.Value(bool) = std.atomic.Value(bool).init(false),
    /// JS's reference plus one per member.
    refs: std.atomic.Value(u32) = std.atomic.Value(u32).init(1),
    /// Chunks the data ring refused (stopped); freed with the group.
    graveyard: ?*Chunk = null,

    pub fn create(allocator: std.mem.Allocator, config: Config, data_ring: *Ring, free_ring: *Ring) Error!*Group {
        try config.validate();
        if (data_ring == free_ring) return error.InvalidArgument;
        const self = allocator.create(Group) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const window = try Window.init(allocator, config.chunks_max);
        data_ring.retain();
        free_ring.retain();
        self.* = .{ .allocator = allocator, .config = config, .window = window, .data_ring = data_ring, .free_ring = free_ring };
        return self;
    }

    pub fn retain(self: *Group) void {
        _ = self.refs.fetchAdd(1, .acq_rel);
    }

    pub fn release(self: *Group) void {
        if (self.refs.fetchSub(1, .acq_rel) != 1) return;
        assert(self.stopped.load(.acquire));
        // Members flushed everything at their stop; what is left has no member.
        self.window.flushAll(std.math.maxInt(u64), GroupWindow{ .group = self });
        while (self.graveyard) |c| {
            self.graveyard = c.next;
            c.next = null;
            c.dispose();
        }
        self.window.deinit(self.allocator);
        self.data_ring.release();
        self.free_ring.release();
        self.allocator.destroy(self);
    }

    /// Adds a member (spead2's emplace_back): refused once data has arrived,
    /// or with a larger chunks_max than the group's.
    pub fn addMember(
        self: *Group,
        payload_allocator: reassembly.PayloadAllocator,
        stream_config: recv_stream.Config,
        config: chunk_mod.Config,
        user_data: []const u8,
    ) Error!*ChunkStream {
        if (config.chunks_max > self.config.chunks_max) return error.InvalidArgument;
        self.mutex.lock();
        defer self.mutex.unlock();
        if (self.stopped.load(.acquire)) return error.Stopped;
        if (self.window.tail != 0 or self.last_flush_until != 0) return error.InvalidState;
        if (self.member_count == members_max) return error.CapacityExceeded;
        const index = self.member_count;
        const member = try ChunkStream.create(self.allocator, payload_allocator, stream_config, config, user_data, .{ .ctx = self, .vtable = &member_vtable });
        member.stream_id = index;
        self.members[index] = member;
        self.heads[index] = 0;
        self.member_count += 1;
        self.retain();
        self.data_ring.addProducer();
        return member;
    }

    fn indexOf(self: *const Group, member: *const ChunkStream) usize {
        const i: usize = @intCast(member.stream_id);
        assert(i < self.member_count and self.members[i] == member);
        return i;
    }

    /// Stops the rings and every member (spead2's chunk_stream_ring_group::stop).
    pub fn stop(self: *Group) void {
        if (self.stopped.swap(true, .acq_rel)) return;
        self.data_ring.stop();
        self.free_ring.stop();
        self.mutex.lock();
        self.moved.broadcast();
        const n = self.member_count;
        var members: [members_max]?*ChunkStream = undefined;
        @memcpy(members[0..n], self.members[0..n]);
        self.mutex.unlock();
        for (members[0..n]) |m| if (m) |member| member.stream.stop();
    }

    pub fn isStopped(self: *const Group) bool {
        return self.stopped.load(.acquire);
    }

    // -- member manager ----------------------------------------------------

    const member_vtable: chunk_mod.Manager.VTable = .{
        .allocate_chunk = allocateChunk,
        .ready_chunk = readyChunk,
        .head_updated = headUpdated,
        .stop_received = stopReceived,
        .stop = stopMember,
        .detach = detach,
    };

    /// spead2's chunk_stream_group::get_chunk (member's table lock held).
    fn allocateChunk(ctx: *anyopaque, member: *ChunkStream, chunk_id: u64) ?*Chunk {
        const self: *Group = @ptrCast(@alignCast(ctx));
        const max: u64 = self.config.chunks_max;
        self.mutex.lock();
        defer self.mutex.unlock();
        assert(chunk_id >= self.window.head);
        var spins: u64 = 0;
        while (chunk_id - self.window.head >= max) : (spins += 1) {
            if (self.isStopped()) return null;
            const target = chunk_id - (max - 1);
            if (self.config.eviction_mode == .lossy and target > self.last_flush_until) {
                for (self.members[0..self.member_count]) |m| if (m) |other| {
                    _ = other.flush_request.fetchMax(target, .acq_rel);
                };
                self.last_flush_until = target;
            }
            // Flushing takes the group mutex (head_updated): not while we hold it.
            self.mutex.unlock();
            member.applyFlushRequest();
            if (self.config.eviction_mode == .lossy) self.nudgeMembers(member);
            self.mutex.lock();
            if (chunk_id - self.window.head < max) break;
            self.moved.timedWait(&self.mutex, wait_slice_ns) catch {};
        }
        if (self.isStopped()) return null;
        return self.window.getOrAllocate(chunk_id, member.stream_id, GroupWindow{ .group = self });
    }

    /// Applies pending flush requests of members that are not busy (tryLock:
    /// a busy member applies its own when it next waits here).
    fn nudgeMembers(self: *Group, except: *ChunkStream) void {
        for (self.members[0..self.member_count]) |m| {
            const other = m orelse continue;
            if (other == except) continue;
            if (!other.stream.mutex.tryLock()) continue;
            defer other.stream.mutex.unlock();
            if (!other.stream.stopped) other.applyFlushRequest();
        }
    }

    fn readyChunk(ctx: *anyopaque, member: *ChunkStream, chunk: *Chunk) void {
        // The group hands chunks on once every member has passed them.
        _ = ctx;
        _ = member;
        _ = chunk;
    }

    /// spead2's stream_head_updated: the group head is the slowest member's.
    fn headUpdated(ctx: *anyopaque, member: *ChunkStream, head: u64) void {
        const self: *Group = @ptrCast(@alignCast(ctx));
        self.mutex.lock();
        defer self.mutex.unlock();
        const i = self.indexOf(member);
        const old = self.heads[i];
        assert(head > old);
        self.heads[i] = head;
        if (self.window.head != old) return; // not the oldest: the minimum did not move
        var min: u64 = std.math.maxInt(u64);
        for (self.heads[0..self.member_count]) |h| min = @min(min, h);
        const before = self.window.head;
        self.window.flushUntil(min, GroupWindow{ .group = self });
        if (self.window.head != before) self.moved.broadcast();
    }

    fn stopReceived(ctx: *anyopaque, member: *ChunkStream) void {
        _ = member;
        const self: *Group = @ptrCast(@alignCast(ctx));
        self.data_ring.removeProducer();
    }

    /// stop() on one member stops the whole group, as in spead2.
    fn stopMember(ctx: *anyopaque, member: *ChunkStream) void {
        _ = member;
        const self: *Group = @ptrCast(@alignCast(ctx));
        self.stop();
    }

    fn detach(ctx: *anyopaque, member: *ChunkStream) void {
        const self: *Group = @ptrCast(@alignCast(ctx));
        self.mutex.lock();
        const i = self.indexOf(member);
        self.members[i] = null;
        self.mutex.unlock();
        self.release();
    }

    // -- the group window's manager ----------------------------------------

    const GroupWindow = struct {
        group: *Group,

        pub fn allocateChunk(self: GroupWindow, chunk_id: u64) ?*Chunk {
            _ = chunk_id;
            return self.group.free_ring.pop(null) catch null;
        }

        pub fn readyChunk(self: GroupWindow, chunk: *Chunk) void {
            self.group.data_ring.push(chunk) catch {
                chunk.next = self.group.graveyard;
                self.group.graveyard = chunk;
            };
        }

        pub fn headUpdated(self: GroupWindow, head: u64) void {
            _ = self;
            _ = head;
        }
    };
};

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;
const packet_mod = @import("packet.zig");
const imm = packet_mod.imm;
const addr = packet_mod.addr;

var test_payload_allocator: reassembly.DefaultPayloadAllocator = .{ .backing = std.heap.c_allocator };

fn appendHeap(out: *std.ArrayList(u8), cnt: u64, ts: u64, ant: u64, data: []const u8) !void {
    var buf: [4096]u8 = undefined;
    try out.appendSlice(packet_mod.buildTestPacket(&buf, 48, &.{ imm(1, cnt), imm(2, data.len), imm(3, 0), imm(4, data.len), imm(0x1600, ts), imm(0x4101, ant), addr(0x1700, 0) }, data));
}

/// One heap slot per (time, member): member m's heaps carry antenna m.
fn groupRule() !chunk_mod.PlaceRule {
    var rule: chunk_mod.PlaceRule = .{ .heap_bytes = 64, .heap_length = 64, .time_item = 0, .time_step = 1, .time_heaps = 2, .time_stride = 2 };
    rule.item_count = 2;
    rule.items[0] = 0x1600;
    rule.items[1] = 0x4101;
    rule.axis_count = 1;
    rule.axes[0] = .{ .item = 1, .count = 2, .stride = 1 };
    try rule.validate(0);
    return rule;
}

fn popAll(ring: *Ring, out: *std.ArrayList(*Chunk)) !void {
    var i: usize = 0;
    while (i < 1000) : (i += 1) {
        const c = ring.pop(5 * std.time.ns_per_s) catch |err| switch (err) {
            error.Stopped => return,
            else => return err,
        };
        try out.append(c);
    }
    return error.TestUnexpectedResult;
}

test "two members fill the same chunks; the data ring stops when both have stopped" {
    for ([_]EvictionMode{ .lossy, .lossless }) |mode| {
        const data_ring = try Ring.create(testing.allocator, 8);
        const free_ring = try Ring.create(testing.allocator, 8);
        for (0..8) |_| try free_ring.tryPush(try Chunk.create(std.heap.c_allocator, 4 * 64, 4, 0));
        const group = try Group.create(testing.allocator, .{ .chunks_max = 2, .eviction_mode = mode }, data_ring, free_ring);
        const rule = try groupRule();
        const config: chunk_mod.Config = .{ .chunks_max = 2, .items = rule.items[0..2], .placer = .{ .rule = rule } };
        var members: [2]*ChunkStream = undefined;
        var inputs: [2]std.ArrayList(u8) = undefined;
        for (0..2) |m| {
            members[m] = try group.addMember(test_payload_allocator.payloadAllocator(), .{}, config, &.{});
            inputs[m] = std.ArrayList(u8).init(testing.allocator);
            var payload: [64]u8 = undefined;
            for (0..8) |t| {
                if (m == 1 and t == 3) continue;
                @memset(&payload, @truncate(t * 2 + m + 1));
                try appendHeap(&inputs[m], t + 1, t, m, &payload);
            }
        }
        try testing.expectError(error.InvalidArgument, group.addMember(test_payload_allocator.payloadAllocator(), .{}, .{ .chunks_max = 3, .items = rule.items[0..2], .placer = .{ .rule = rule } }, &.{}));
        for (0..2) |m| try recv_stream.BufferReader.add(members[m].stream, inputs[m].items);
        var chunks = std.ArrayList(*Chunk).init(testing.allocator);
        defer {
            for (chunks.items) |c| c.dispose();
            chunks.deinit();
        }
        try popAll(data_ring, &chunks);
        try testing.expectEqual(@as(usize, 4), chunks.items.len);
        var present: u64 = 0;
        for (chunks.items, 0..) |c, ci| {
            try testing.expectEqual(@as(i64, @intCast(ci)), c.chunk_id);
            for (0..2) |tt| for (0..2) |m| {
                const t = ci * 2 + tt;
                const missing = m == 1 and t == 3;
                present += c.present[tt * 2 + m];
                // LOSSY lets a member that runs ahead push the other's chunks out.
                if (mode == .lossy and !missing and c.present[tt * 2 + m] == 0) continue;
                try testing.expectEqual(@as(u8, if (missing) 0 else 1), c.present[tt * 2 + m]);
                if (!missing) try testing.expectEqual(@as(u8, @truncate(t * 2 + m + 1)), c.data[(tt * 2 + m) * 64]);
            };
        }
        // Every heap is either present or counted as too old.
        try testing.expectEqual(@as(u64, 15), present + members[0].stat(.too_old_heaps) + members[1].stat(.too_old_heaps));
        group.stop();
        for (0..2) |m| {
            members[m].stream.destroy();
            inputs[m].deinit();
        }
        group.release();
        data_ring.release();
        free_ring.release();
    }
}

test "LOSSY: a member far ahead flushes the other's chunks; LOSSLESS waits for it" {
    for ([_]EvictionMode{ .lossy, .lossless }) |mode| {
        const data_ring = try Ring.create(testing.allocator, 16);
        const free_ring = try Ring.create(testing.allocator, 16);
        for (0..16) |_| try free_ring.tryPush(try Chunk.create(std.heap.c_allocator, 4 * 64, 4, 0));
        const group = try Group.create(testing.allocator, .{ .chunks_max = 2, .eviction_mode = mode }, data_ring, free_ring);
        const rule = try groupRule();
        const config: chunk_mod.Config = .{ .chunks_max = 2, .items = rule.items[0..2], .placer = .{ .rule = rule } };
        const fast = try group.addMember(test_payload_allocator.payloadAllocator(), .{}, config, &.{});
        const slow = try group.addMember(test_payload_allocator.payloadAllocator(), .{}, config, &.{});
        var payload: [64]u8 = undefined;
        @memset(&payload, 7);
        // slow: one heap in chunk 0, then silence (no reader ends it yet)
        var slow_bytes = std.ArrayList(u8).init(testing.allocator);
        defer slow_bytes.deinit();
        try appendHeap(&slow_bytes, 1, 0, 1, &payload);
        var fast_bytes = std.ArrayList(u8).init(testing.allocator);
        defer fast_bytes.deinit();
        for (0..10) |t| try appendHeap(&fast_bytes, t + 1, t, 0, &payload);
        // The slow member's heap goes in through a batch we drive by hand, so
        // it stays live in its window without the stream stopping.
        {
            var batch: recv_stream.Batch = undefined;
            try testing.expect(slow.stream.batchBegin(&batch));
            switch (packet_mod.decode(slow_bytes.items)) {
                .ok => |p| _ = batch.addPacket(p),
                .rejected => return error.TestUnexpectedResult,
            }
            slow.stream.batchEnd(&batch);
        }
        try recv_stream.BufferReader.add(fast.stream, fast_bytes.items);
        if (mode == .lossy) {
            // The fast member forces chunks out past the slow one.
            var spins: usize = 0;
            while (data_ring.size() < 3 and spins < 5000) : (spins += 1) std.time.sleep(std.time.ns_per_ms);
            try testing.expect(data_ring.size() >= 3);
            const first = try data_ring.pop(0);
            defer first.dispose();
            try testing.expectEqual(@as(i64, 0), first.chunk_id);
            try testing.expectEqualSlices(u8, &.{ 1, 1, 1, 0 }, first.present);
        } else {
            // Nothing can be ready while the slow member still holds chunk 0.
            std.time.sleep(50 * std.time.ns_per_ms);
            try testing.expectEqual(@as(usize, 0), data_ring.size());
        }
        group.stop();
        var chunks = std.ArrayList(*Chunk).init(testing.allocator);
        defer {
            for (chunks.items) |c| c.dispose();
            chunks.deinit();
        }
        try popAll(data_ring, &chunks);
        fast.stream.destroy();
        slow.stream.destroy();
        group.release();
        data_ring.release();
        free_ring.release();
    }
}
