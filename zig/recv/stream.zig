//! The receive stream: spead2's `ring_stream` on our own threads.
//!
//! Locks, always taken in this order:
//! * `mutex` guards the heap table. A reader holds it for one batch of packets
//!   (docs/PROTOCOL.md §7), so statistics are folded in once per batch.
//! * `ring_mutex` guards the bounded ring of frozen heaps. Pops take only this
//!   lock, so JS never waits for a batch. A full ring blocks the worker (inside
//!   its batch) until JS has popped it down to half (`resumeLevel`) or the ring
//!   is stopped; `worker_blocked` counts it.
//!   Consumers are not woken once per heap: a push counts news and wakes
//!   waiters (and rings the doorbell) once three quarters of the ring are news
//!   (`newsThreshold`); a batch end does so when the oldest news is
//!   `notify_delay_ns` old (an idle reader signals when its poll times out, see
//!   `pendingNotifyMs`); a full ring always signals before the worker blocks.
//!   So a heap reaches JS at most `notify_delay_ns` after it is pushed (plus
//!   the wake-up itself). A wake-up is the dearest part of a heap's trip to JS:
//!   measured on the JS thread at 50-150 us of CPU each under Bun and Deno on
//!   a busy 2-core machine (a bare 1 ms setInterval tick costs 40-90 us there),
//!   plus ~10-20 us on Deno's blocking-call thread; so JS is woken once per
//!   several heaps and pops every ready heap in one call (`popBatch`).
//! * `readers_mutex` guards the reader list; `stats_mutex` the counters;
//!   `bell` (zig/core/doorbell.zig) the Bun doorbell.
//!
//! Stop: a stop item or the end of a buffer stops the stream from inside a batch:
//! live heaps are flushed into the ring (blocking if it is full), then the ring
//! is stopped. A stop from JS stops the ring first (so a blocked worker lets go;
//! its heap and any flushed heaps are dropped, as in spead2), then takes the
//! table lock and flushes, then joins the reader threads. Heaps already in the
//! ring stay poppable; after that pops report `Stopped`.
const std = @import("std");
const assert = std.debug.assert;
const status = @import("../core/status.zig");
const Error = status.Error;
const packet_mod = @import("packet.zig");
const reassembly = @import("reassembly.zig");
const fast_copy = @import("../core/fast_copy.zig");
const pcap = @import("pcap.zig");
const map_guard = @import("../core/map_guard.zig");
const FrozenHeap = reassembly.FrozenHeap;
const PayloadAllocator = reassembly.PayloadAllocator;
const affinity = @import("../core/affinity.zig");
const sys_error = @import("../core/sys_error.zig");
const doorbell_mod = @import("../core/doorbell.zig");

// ---------------------------------------------------------------------------
// Statistics

/// Stream statistics. The first nine are spead2's core stats, in spead2's order;
/// the rest are ours. Their order is the ABI order (`stat_names`).
pub const Stat = enum(u8) {
    heaps,
    incomplete_heaps_evicted,
    incomplete_heaps_flushed,
    packets,
    batches,
    max_batch,
    single_packet_heaps,
    search_dist,
    worker_blocked,
    // packet.Reject: undecodable packets
    packets_rejected_truncated,
    packets_rejected_bad_magic,
    packets_rejected_bad_flavour,
    packets_rejected_missing_items,
    packets_rejected_heap_length_overflow,
    // transport-level rejects (UDP)
    packets_rejected_size_mismatch,
    packets_rejected_oversize,
    // capture files (zig/recv/pcap.zig): frames that gave no packet
    capture_frames_truncated,
    capture_frames_not_udp,
    capture_frames_filtered,
    // file readers that found their file cut short while reading it (zig/core/map_guard.zig)
    files_shrunk,
    // reassembly.Reject: decodable packets the heap table refused
    packets_rejected_no_heap_length,
    packets_rejected_heap_length_inconsistent,
    packets_rejected_heap_length_too_small,
    packets_rejected_flavour_inconsistent,
    packets_rejected_out_of_order,
    packets_rejected_gap,
    packets_rejected_duplicate,
    packets_rejected_partial_overlap,
    packets_rejected_too_large,
    packets_rejected_too_many_pointers,
    packets_rejected_too_fragmented,
    packets_rejected_out_of_memory,
    // finished heaps that never reached the ring
    heaps_dropped_incomplete,
    heaps_dropped_stopped,
    heaps_dropped_out_of_memory,
    // reader threads that could not be pinned to `Config.reader_cpu`
    affinity_failures,
};

pub const stat_count = @typeInfo(Stat).@"enum".fields.len;

pub const stat_names: [stat_count][]const u8 = blk: {
    var names: [stat_count][]const u8 = undefined;
    for (@typeInfo(Stat).@"enum".fields, 0..) |field, i| {
        assert(field.value == i);
        names[i] = field.name;
    }
    break :blk names;
};

fn decodeRejectStat(reason: packet_mod.Reject) Stat {
    return switch (reason) {
        inline else => |r| @field(Stat, "packets_rejected_" ++ @tagName(r)),
    };
}

fn tableRejectStat(reason: reassembly.Reject) Stat {
    return switch (reason) {
        inline else => |r| @field(Stat, "packets_rejected_" ++ @tagName(r)),
    };
}

comptime {
    assert(@intFromEnum(Stat.worker_blocked) == 8);
    assert(stat_count < 64);
}

// ---------------------------------------------------------------------------
// Configuration

pub const ring_heaps_max: u32 = 65536;
pub const readers_max = 16;
/// Packets one buffer-reader batch feeds under the lock; bounds how long JS's
/// stop() waits for the table lock.
pub const buffer_batch_packets = 64;
/// Slice of a blocked worker's wait; it re-checks the ring each time.
const worker_wait_ns: u64 = 100 * std.time.ns_per_ms;
/// Longest a pushed heap waits to be announced while less than three quarters
/// of the ring are news. 2 ms: at 1 MiB heaps and 10 Gb/s (a heap every
/// 0.84 ms) JS is woken about once per 2-3 heaps, not once per heap as with
/// 1 ms; a paced receive of 1 MiB heaps then spends 30-45 % less CPU on the JS
/// thread (bench/recv.ts child, per-thread schedstat, alternated runs).
pub const notify_delay_ns: u64 = 2 * std.time.ns_per_ms;

pub const Config = struct {
    reassembly: reassembly.Config = .{},
    ring_heaps: u32 = 4,
    contiguous_only: bool = true,
    /// Core every reader thread pins itself to (null: no affinity).
    reader_cpu: ?u32 = null,

    pub fn validate(self: Config) Error!void {
        const r = self.reassembly;
        if (self.reader_cpu) |core| try affinity.validateCore(core);
        if (r.heaps_max < 1 or r.heaps_max > reassembly.heaps_max_limit) return error.InvalidArgument;
        if (r.substreams < 1) return error.InvalidArgument;
        if (@as(u64, r.heaps_max) * r.substreams > reassembly.slots_limit) return error.InvalidArgument;
        if (r.bug_compat > 7) return error.InvalidArgument;
        if (r.heap_length_max == 0 or r.pointers_max == 0) return error.InvalidArgument;
        if (self.ring_heaps < 1 or self.ring_heaps > ring_heaps_max) return error.InvalidArgument;
    }
};

/// What a chunk stream (zig/recv/chunk.zig) plugs into a stream: finished
/// heaps go to it instead of the heap ring, and it hears about stops.
pub const ChunkHooks = struct {
    ctx: *anyopaque,
    vtable: *const VTable,

    pub const VTable = struct {
        /// A finished heap (table lock held), instead of freezing it.
        heap_ready: *const fn (ctx: *anyopaque, heap: *reassembly.LiveHeap) void,
        /// The stream stopped (table lock held, live heaps already flushed
        /// and the stats folded in).
        stop_received: *const fn (ctx: *anyopaque) void,
        /// stop() from JS, before anything else (no lock held).
        stop: *const fn (ctx: *anyopaque) void,
        /// The stream is being destroyed (stopped, readers joined).
        destroy: *const fn (ctx: *anyopaque) void,
    };
};

/// The Bun doorbell: called with the stream handle from a native thread.
pub const NotifyFn = doorbell_mod.NotifyFn;

/// A reader feeding the stream from its own thread.
pub const Reader = struct {
    ctx: *anyopaque,
    vtable: *const VTable,

    pub const VTable = struct {
        /// Spawns the thread (called with the reader list locked).
        start: *const fn (ctx: *anyopaque) Error!void,
        /// Asks the thread to finish soon (it also watches `Stream.isStopped`).
        request_stop: *const fn (ctx: *anyopaque) void,
        /// Joins the thread and frees the reader.
        join: *const fn (ctx: *anyopaque) void,
    };
};

/// The vtable of a reader that runs `run` on a thread of its own, named
/// `name`: `T` has `thread: std.Thread` and `stop_requested:
/// std.atomic.Value(bool)`, and `free` releases what the reader holds (and
/// the reader) once its thread is joined. The buffer, UDP and TCP readers.
pub fn threadReaderVTable(
    comptime T: type,
    comptime name: []const u8,
    comptime run: fn (*T) void,
    comptime free: fn (*T) void,
) Reader.VTable {
    const Fns = struct {
        fn start(ctx: *anyopaque) Error!void {
            const self: *T = @ptrCast(@alignCast(ctx));
            self.thread = affinity.spawnNamed(.{ .stack_size = 256 * 1024 }, name, run, .{self}) catch
                return sys_error.fail(.AGAIN, "pthread_create (" ++ name ++ ")", null);
        }

        fn requestStop(ctx: *anyopaque) void {
            const self: *T = @ptrCast(@alignCast(ctx));
            self.stop_requested.store(true, .release);
        }

        fn join(ctx: *anyopaque) void {
            const self: *T = @ptrCast(@alignCast(ctx));
            self.thread.join();
            free(self);
        }
    };
    return .{ .start = Fns.start, .request_stop = Fns.requestStop, .join = Fns.join };
}

// ---------------------------------------------------------------------------
// Batches

/// One batch of packets fed under the table lock (spead2's add_packet_state).
pub const Batch = struct {
    stream: *Stream,
    table: reassembly.Batch = .{},
    counters: [stat_count]u64 = [_]u64{0} ** stat_count,
    /// The reader has no more data: stop the stream at batch end.
    end_of_data: bool = false,

    /// Feeds one decoded packet. Returns false once the stream has stopped
    /// (a stop item); the caller must not feed more.
    pub fn addPacket(self: *Batch, packet: packet_mod.Packet) bool {
        if (self.table.stop) return false;
        _ = self.stream.table.addPacket(packet, &self.table, self.sink());
        return !self.table.stop;
    }

    pub fn isStopped(self: *const Batch) bool {
        return self.table.stop;
    }

    pub fn count(self: *Batch, stat: Stat) void {
        self.counters[@intFromEnum(stat)] += 1;
    }

    pub fn countDecodeReject(self: *Batch, reason: packet_mod.Reject) void {
        self.count(decodeRejectStat(reason));
    }

    fn sink(self: *Batch) reassembly.Sink {
        return .{ .ctx = self, .ready = heapReady };
    }

    /// spead2's ring_stream::heap_ready: drop or freeze, then push (blocking).
    fn heapReady(ctx: *anyopaque, live: *reassembly.LiveHeap) void {
        const self: *Batch = @ptrCast(@alignCast(ctx));
        const stream = self.stream;
        if (stream.chunk_hooks) |hooks| return hooks.vtable.heap_ready(hooks.ctx, live);
        if (stream.config.contiguous_only and !live.isContiguous()) {
            self.count(.heaps_dropped_incomplete);
            return;
        }
        const frozen = reassembly.freeze(stream.allocator, live, stream.payload_allocator) catch {
            self.count(.heaps_dropped_out_of_memory);
            return;
        };
        if (!stream.ringPush(frozen)) {
            frozen.deinit();
            self.count(.heaps_dropped_stopped);
        }
    }
};

// ---------------------------------------------------------------------------
// Stream

pub const Stream = struct {
    allocator: std.mem.Allocator,
    payload_allocator: PayloadAllocator,
    config: Config,
    /// The handle JS knows this stream by (passed to the doorbell).
    handle: u32 = 0,
    /// A memory pool the exports took a reference on for this stream.
    owner_pool: ?PayloadAllocator = null,
    /// Set once, before any reader, for chunk streams.
    chunk_hooks: ?ChunkHooks = null,

    mutex: std.Thread.Mutex = .{},
    table: reassembly.Table,
    /// Set once, under `mutex`; mirrored in `stopped_flag` for lock-free reads.
    stopped: bool = false,
    stopped_flag: std.atomic.Value(bool) = std.atomic.Value(bool).init(false),

    ring_mutex: std.Thread.Mutex = .{},
    ring_not_empty: std.Thread.Condition = .{},
    ring_not_full: std.Thread.Condition = .{},
    ring: []*FrozenHeap,
    ring_head: usize = 0,
    ring_len: usize = 0,
    ring_stopped: bool = false,
    /// Heaps pushed since waiters were last woken (see `signalReady`), and
    /// when the first of them was pushed.
    ring_news: u32 = 0,
    ring_news_since: ?std.time.Instant = null,

    stats_mutex: std.Thread.Mutex = .{},
    stats: [stat_count]u64 = [_]u64{0} ** stat_count,

    readers_mutex: std.Thread.Mutex = .{},
    readers: [readers_max]Reader = undefined,
    readers_len: usize = 0,
    readers_closed: bool = false,

    bell: doorbell_mod.Doorbell = .{},

    pub fn create(allocator: std.mem.Allocator, payload_allocator: PayloadAllocator, config: Config) Error!*Stream {
        try config.validate();
        const self = allocator.create(Stream) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const ring = allocator.alloc(*FrozenHeap, config.ring_heaps) catch return error.OutOfMemory;
        errdefer allocator.free(ring);
        const table = reassembly.Table.init(allocator, payload_allocator, config.reassembly) catch return error.OutOfMemory;
        self.* = .{
            .allocator = allocator,
            .payload_allocator = payload_allocator,
            .config = config,
            .table = table,
            .ring = ring,
        };
        return self;
    }

    /// Stops the stream and frees everything not yet popped. Popped heaps stay
    /// valid (they own their memory).
    pub fn destroy(self: *Stream) void {
        self.stop();
        assert(self.readers_len == 0);
        self.ring_mutex.lock();
        while (self.ring_len > 0) {
            self.ring[self.ring_head].deinit();
            self.ring_head = (self.ring_head + 1) % self.ring.len;
            self.ring_len -= 1;
        }
        self.ring_mutex.unlock();
        assert(self.table.liveCount() == 0);
        if (self.chunk_hooks) |hooks| hooks.vtable.destroy(hooks.ctx);
        self.table.deinit();
        self.allocator.free(self.ring);
        const allocator = self.allocator;
        allocator.destroy(self);
    }

    pub fn isStopped(self: *const Stream) bool {
        return self.stopped_flag.load(.acquire);
    }

    // -- readers -----------------------------------------------------------

    /// Starts `reader` and keeps it until stop() joins it. `Stopped` once the
    /// stream has stopped; `CapacityExceeded` past readers_max.
    pub fn addReader(self: *Stream, reader: Reader) Error!void {
        self.readers_mutex.lock();
        defer self.readers_mutex.unlock();
        if (self.readers_closed or self.isStopped()) return error.Stopped;
        if (self.readers_len == readers_max) return error.CapacityExceeded;
        try reader.vtable.start(reader.ctx);
        self.readers[self.readers_len] = reader;
        self.readers_len += 1;
    }

    /// Called by each reader thread as it starts: pins it to `reader_cpu`.
    /// A refusal is counted (`affinity_failures`) and the thread runs unpinned.
    pub fn readerThreadStarted(self: *Stream) void {
        const core = self.config.reader_cpu orelse return;
        if (affinity.pinCurrentThread(core)) return;
        self.stats_mutex.lock();
        defer self.stats_mutex.unlock();
        self.stats[@intFromEnum(Stat.affinity_failures)] += 1;
    }

    fn joinReaders(self: *Stream) void {
        var readers: [readers_max]Reader = undefined;
        self.readers_mutex.lock();
        self.readers_closed = true;
        const n = self.readers_len;
        @memcpy(readers[0..n], self.readers[0..n]);
        self.readers_len = 0;
        self.readers_mutex.unlock();
        for (readers[0..n]) |r| r.vtable.request_stop(r.ctx);
        for (readers[0..n]) |r| r.vtable.join(r.ctx);
    }

    // -- batches -----------------------------------------------------------

    /// Takes the table lock for a batch. Returns false (lock not held) if the
    /// stream has stopped; the reader should then finish.
    pub fn batchBegin(self: *Stream, batch: *Batch) bool {
        self.mutex.lock();
        if (self.stopped) {
            self.mutex.unlock();
            return false;
        }
        batch.* = .{ .stream = self };
        return true;
    }

    /// Releases the table lock of a batch that fed nothing (a reader that took
    /// the lock to receive in place and found no datagram): not a batch.
    pub fn batchCancel(self: *Stream, batch: *Batch) void {
        assert(batch.stream == self);
        assert(batch.table.packets == 0 and !batch.table.stop and !batch.end_of_data);
        for (batch.counters) |n| assert(n == 0);
        self.mutex.unlock();
    }

    /// Ends a batch: stops the stream if asked to, folds the counters in and
    /// releases the table lock.
    pub fn batchEnd(self: *Stream, batch: *Batch) void {
        assert(batch.stream == self);
        assert(!self.stopped);
        const stopping = batch.table.stop or batch.end_of_data;
        if (stopping) self.stopReceivedLocked(batch);
        const t = &batch.table;
        const c = &batch.counters;
        c[@intFromEnum(Stat.heaps)] += t.complete_heaps + t.incomplete_heaps_evicted;
        c[@intFromEnum(Stat.incomplete_heaps_evicted)] += t.incomplete_heaps_evicted;
        c[@intFromEnum(Stat.single_packet_heaps)] += t.single_packet_heaps;
        c[@intFromEnum(Stat.search_dist)] += t.search_dist;
        c[@intFromEnum(Stat.packets)] += t.packets;
        for (t.rejected, 0..) |n, i| c[@intFromEnum(tableRejectStat(@enumFromInt(i)))] += n;
        // As spead2: a batch that found the stream stopping with no packets is not a batch.
        const counted = t.packets > 0 or !stopping;
        self.foldStats(c, counted, t.packets);
        // Stopped only after the stats are final, so JS that sees `Stopped` sees them.
        if (stopping) {
            if (self.chunk_hooks) |hooks| hooks.vtable.stop_received(hooks.ctx);
            self.ringStop();
        }
        // Streaming stores of this batch reach memory before the table lock lets
        // another thread (a stop's flush) hand its live heaps on.
        if (self.table.config.memcpy == .nontemporal) fast_copy.storeFence();
        self.mutex.unlock();
        self.signalIfDue();
    }

    fn foldStats(self: *Stream, counters: *const [stat_count]u64, counted_batch: bool, packets: u64) void {
        self.stats_mutex.lock();
        defer self.stats_mutex.unlock();
        for (counters, 0..) |n, i| {
            if (i == @intFromEnum(Stat.max_batch)) continue;
            self.stats[i] += n;
        }
        if (counted_batch) {
            self.stats[@intFromEnum(Stat.batches)] += 1;
            const max = &self.stats[@intFromEnum(Stat.max_batch)];
            max.* = @max(max.*, packets);
        }
    }

    /// spead2's stop_received (table lock held): flush into the ring. The
    /// caller folds the batch's stats and then stops the ring.
    fn stopReceivedLocked(self: *Stream, batch: *Batch) void {
        assert(!self.stopped);
        self.stopped = true;
        self.stopped_flag.store(true, .release);
        const flushed = self.table.flush(batch.sink());
        batch.counters[@intFromEnum(Stat.heaps)] += flushed;
        batch.counters[@intFromEnum(Stat.incomplete_heaps_flushed)] += flushed;
    }

    /// Stops the stream (idempotent): see the file comment for the order.
    pub fn stop(self: *Stream) void {
        if (self.chunk_hooks) |hooks| hooks.vtable.stop(hooks.ctx);
        self.ringStop();
        self.mutex.lock();
        if (!self.stopped) {
            var batch: Batch = .{ .stream = self };
            self.stopReceivedLocked(&batch);
            self.foldStats(&batch.counters, false, 0);
            if (self.chunk_hooks) |hooks| hooks.vtable.stop_received(hooks.ctx);
        }
        self.mutex.unlock();
        self.joinReaders();
    }

    // -- ring --------------------------------------------------------------

    /// Pushes a frozen heap, blocking while the ring is full. Returns false if
    /// the ring is stopped (the caller still owns the heap). Waiters are not
    /// woken here but at the batch end (`signalReady`), or here before the
    /// worker blocks on a full ring, so JS is woken once per batch.
    fn ringPush(self: *Stream, heap: *FrozenHeap) bool {
        self.ring_mutex.lock();
        if (!self.ring_stopped and self.ring_len == self.ring.len) {
            // Recorded at once, not at batch end, so JS can see the worker is stuck.
            self.stats_mutex.lock();
            self.stats[@intFromEnum(Stat.worker_blocked)] += 1;
            self.stats_mutex.unlock();
            // Whatever this batch pushed must reach JS, or nobody frees a slot.
            self.ring_mutex.unlock();
            self.signalReady();
            self.ring_mutex.lock();
            while (!self.ring_stopped and self.ring_len == self.ring.len) {
                self.ring_not_full.timedWait(&self.ring_mutex, worker_wait_ns) catch {};
            }
        }
        if (self.ring_stopped) {
            self.ring_mutex.unlock();
            return false;
        }
        assert(self.ring_len < self.ring.len);
        self.ring[(self.ring_head + self.ring_len) % self.ring.len] = heap;
        self.ring_len += 1;
        if (self.ring_news == 0) self.ring_news_since = std.time.Instant.now() catch null;
        self.ring_news += 1;
        // Enough of the ring is news: tell JS now, not at the batch end. One
        // batch (a recvmmsg with GRO) can complete more heaps than the ring
        // holds, and JS must be draining while the reader fills the rest.
        const due = self.ring_news >= self.newsThreshold();
        self.ring_mutex.unlock();
        if (due) self.signalReady();
        return true;
    }

    /// Heaps of news that wake JS at once: three quarters of the ring (6 of
    /// 8). A quarter is left for the reader to fill while JS wakes up (two
    /// 64 KiB heaps at 5 Gb/s take 210 us); a full ring blocks the reader
    /// until JS pops, with the socket buffer absorbing meanwhile. Waking at
    /// half the ring woke JS 1.5x as often.
    fn newsThreshold(self: *const Stream) usize {
        return @max(1, self.ring.len * 3 / 4);
    }

    /// Heaps left in the ring when pops wake a worker blocked on it: half the
    /// ring. Waking it at every pop made the worker and a `for await` consumer
    /// (which pops one heap at a time) take turns a heap at a time, a sleep and
    /// a wake-up of the worker per heap, whenever one batch completed more
    /// heaps than the ring had room for (64 KiB heaps with GRO). A consumer
    /// only waits on an empty ring, so it always pops down to this level first.
    fn resumeLevel(self: *const Stream) usize {
        return self.ring.len / 2;
    }

    /// Wakes waiters and rings the doorbell if heaps were pushed since the
    /// last time.
    pub fn signalReady(self: *Stream) void {
        self.ring_mutex.lock();
        const news = self.ring_news > 0;
        self.ring_news = 0;
        self.ring_news_since = null;
        if (news) self.ring_not_empty.broadcast();
        self.ring_mutex.unlock();
        if (news) self.doorbell();
    }

    /// Milliseconds until pending news must be announced (0: now), or null
    /// when there is none (ring lock held).
    fn newsDueMsLocked(self: *Stream) ?u32 {
        if (self.ring_news == 0) return null;
        if (self.ring_news >= self.newsThreshold()) return 0;
        const since = self.ring_news_since orelse return 0;
        const now = std.time.Instant.now() catch return 0;
        const age = now.since(since);
        if (age >= notify_delay_ns) return 0;
        return @intCast(std.math.divCeil(u64, notify_delay_ns - age, std.time.ns_per_ms) catch 1);
    }

    /// Signals if enough of the ring is news or the oldest news is due (called at
    /// each batch end).
    pub fn signalIfDue(self: *Stream) void {
        self.ring_mutex.lock();
        const due = self.newsDueMsLocked();
        self.ring_mutex.unlock();
        if (due == 0) self.signalReady();
    }

    /// For a reader about to wait for input: how long it may wait before it
    /// must call `signalIfDue` (null: no news, wait as long as it likes).
    pub fn pendingNotifyMs(self: *Stream) ?u32 {
        self.ring_mutex.lock();
        defer self.ring_mutex.unlock();
        return self.newsDueMsLocked();
    }

    fn ringStop(self: *Stream) void {
        self.ring_mutex.lock();
        const was_stopped = self.ring_stopped;
        self.ring_stopped = true;
        self.ring_news = 0;
        self.ring_news_since = null;
        self.ring_not_empty.broadcast();
        self.ring_not_full.broadcast();
        self.ring_mutex.unlock();
        if (!was_stopped) self.doorbell();
    }

    /// Waits (ring lock held) until the ring has a heap or is stopped, or the
    /// timeout passes. Returns whether something is ready.
    fn waitReadyLocked(self: *Stream, timeout_ms: u32) bool {
        if (self.ring_len > 0 or self.ring_stopped) return true;
        if (timeout_ms == 0) return false;
        const timeout_ns = @as(u64, timeout_ms) * std.time.ns_per_ms;
        var timer = std.time.Timer.start() catch return false;
        while (self.ring_len == 0 and !self.ring_stopped) {
            const elapsed = timer.read();
            if (elapsed >= timeout_ns) return false;
            self.ring_not_empty.timedWait(&self.ring_mutex, timeout_ns - elapsed) catch {};
        }
        return true;
    }

    /// Pops the oldest heap, waiting up to `timeout_ms` (0: do not wait).
    /// `claim` runs under the ring lock before the heap leaves the ring, so a
    /// heap is never lost when it fails (e.g. the handle table is full).
    /// Errors: `Empty` on timeout, `Stopped` when stopped and drained.
    pub fn popClaim(self: *Stream, timeout_ms: u32, comptime T: type, comptime claim: fn (*FrozenHeap) Error!T) Error!T {
        self.ring_mutex.lock();
        defer self.ring_mutex.unlock();
        if (!self.waitReadyLocked(timeout_ms)) return error.Empty;
        if (self.ring_len == 0) {
            assert(self.ring_stopped);
            return error.Stopped;
        }
        const heap = self.ring[self.ring_head];
        const result = try claim(heap);
        self.ring_head = (self.ring_head + 1) % self.ring.len;
        self.ring_len -= 1;
        if (self.ring_len == 0) self.ring_news = 0; // nothing left to announce
        if (self.ring_len <= self.resumeLevel()) self.ring_not_full.broadcast();
        return result;
    }

    fn claimIdentity(heap: *FrozenHeap) Error!*FrozenHeap {
        return heap;
    }

    /// Pops every ready heap, up to `out.len`, in one go, waiting up to
    /// `timeout_ms` for the first. Returns how many were claimed (at least 1).
    /// A claim that fails after the first stops the batch there (the heap
    /// stays in the ring). Errors as `popClaim`.
    pub fn popBatchClaim(self: *Stream, timeout_ms: u32, comptime T: type, comptime claim: fn (*FrozenHeap) Error!T, out: []T) Error!usize {
        assert(out.len > 0);
        self.ring_mutex.lock();
        defer self.ring_mutex.unlock();
        if (!self.waitReadyLocked(timeout_ms)) return error.Empty;
        if (self.ring_len == 0) {
            assert(self.ring_stopped);
            return error.Stopped;
        }
        var n: usize = 0;
        while (n < out.len and self.ring_len > 0) : (n += 1) {
            out[n] = claim(self.ring[self.ring_head]) catch |err| {
                if (n == 0) return err;
                break;
            };
            self.ring_head = (self.ring_head + 1) % self.ring.len;
            self.ring_len -= 1;
        }
        if (self.ring_len == 0) self.ring_news = 0; // nothing left to announce
        if (self.ring_len <= self.resumeLevel()) self.ring_not_full.broadcast();
        return n;
    }

    pub fn pop(self: *Stream, timeout_ms: u32) Error!*FrozenHeap {
        return self.popClaim(timeout_ms, *FrozenHeap, claimIdentity);
    }

    pub fn tryPop(self: *Stream) Error!*FrozenHeap {
        return self.pop(0);
    }

    /// Waits until a heap is ready or the stream stopped (ok), or the timeout
    /// passes (`Empty`), without popping.
    pub fn wait(self: *Stream, timeout_ms: u32) Error!void {
        self.ring_mutex.lock();
        defer self.ring_mutex.unlock();
        if (!self.waitReadyLocked(timeout_ms)) return error.Empty;
    }

    pub fn ringSize(self: *Stream) usize {
        self.ring_mutex.lock();
        defer self.ring_mutex.unlock();
        return self.ring_len;
    }

    // -- doorbell ----------------------------------------------------------

    /// Sets (or with null clears) the doorbell. Once this returns, a cleared
    /// callback is not running and will not be called again.
    pub fn setNotify(self: *Stream, callback: ?NotifyFn) void {
        self.bell.set(callback);
    }

    /// Arms the doorbell for one call; rings at once if a heap is ready or the
    /// stream has stopped.
    pub fn arm(self: *Stream) void {
        self.bell.arm(self.handle, self, hasNews);
    }

    fn hasNews(self: *Stream) bool {
        self.ring_mutex.lock();
        defer self.ring_mutex.unlock();
        return self.ring_len > 0 or self.ring_stopped;
    }

    fn doorbell(self: *Stream) void {
        self.bell.ring(self.handle);
    }

    // -- stats -------------------------------------------------------------

    pub fn readStats(self: *Stream, out: *[stat_count]u64) void {
        self.stats_mutex.lock();
        defer self.stats_mutex.unlock();
        out.* = self.stats;
    }

    pub fn stat(self: *Stream, which: Stat) u64 {
        self.stats_mutex.lock();
        defer self.stats_mutex.unlock();
        return self.stats[@intFromEnum(which)];
    }
};

// ---------------------------------------------------------------------------
// Buffer reader (spead2's mem_reader)

/// Memory a buffer reader reads in place and lets go of when it is done.
pub const Borrowed = struct {
    bytes: []const u8,
    ctx: *anyopaque,
    release: *const fn (ctx: *anyopaque) void,
    /// `bytes` is a page-aligned file mapping (zig/recv/file_reader.zig): the
    /// reader thread populates it `populate_window` bytes ahead of where it reads.
    populate: bool = false,
    framing: Framing = .packets,
};

/// How a buffer reader finds the packets in its bytes.
pub const Framing = union(enum) {
    /// Concatenated packets (memory framing): the reader stops at the first
    /// undecodable one, as spead2's memory reader does.
    packets,
    /// A pcap or pcapng capture (zig/recv/pcap.zig), as opened (the reader
    /// keeps its own copy as it reads): each UDP datagram is one packet,
    /// checked as the UDP reader checks a datagram; frames that hold none are
    /// counted (`capture_frames_*`) and passed over. `port` other than 0 keeps
    /// only datagrams to that destination port.
    capture: struct { capture: pcap.Capture, port: u16 },
};

/// How far ahead a buffer reader populates a mapped file (`Borrowed.populate`).
pub const populate_window: usize = 4 << 20;

/// Maps in the pages of `bytes[from..to]` (page-aligned base) without a fault
/// per page: MADV_POPULATE_READ (Linux 5.14), else MADV_WILLNEED, a hint only.
fn populate(bytes: []const u8, from: usize, to: usize) void {
    if (@import("builtin").os.tag != .linux) return;
    const linux = std.os.linux;
    const page = std.heap.pageSize();
    assert(std.mem.isAligned(@intFromPtr(bytes.ptr), page));
    assert(from < to and to <= bytes.len);
    const start = std.mem.alignBackward(usize, from, page);
    const addr_ptr: [*]align(std.heap.page_size_min) u8 = @ptrFromInt(@intFromPtr(bytes.ptr) + start);
    const len = to - start;
    const madv_populate_read = 22;
    if (linux.E.init(linux.madvise(addr_ptr, len, madv_populate_read)) != .SUCCESS) {
        _ = linux.madvise(addr_ptr, len, linux.MADV.WILLNEED);
    }
}

/// Feeds a byte buffer of concatenated packets, then stops the stream.
/// Stops early at the first undecodable packet (counted), like spead2.
/// The bytes are either a copy the reader owns (`add`) or memory it borrows
/// with a reference it drops when it finishes (`addBorrowed`: native memory
/// JS filled, read without a copy).
pub const BufferReader = struct {
    stream: *Stream,
    bytes: []const u8,
    /// Null when `bytes` is the reader's own copy.
    borrowed: ?Borrowed = null,
    /// Where the next packet (or capture record) starts.
    offset: usize = 0,
    thread: std.Thread = undefined,
    stop_requested: std.atomic.Value(bool) = std.atomic.Value(bool).init(false),

    /// Copies `bytes` and starts a reader thread on `stream`.
    pub fn add(stream: *Stream, bytes: []const u8) Error!void {
        const allocator = stream.allocator;
        const copy = allocator.alloc(u8, bytes.len) catch return error.OutOfMemory;
        errdefer reassembly.freeWithoutPoisoning(allocator, copy);
        fast_copy.copy(copy, bytes);
        try startReader(stream, copy, null);
    }

    /// Starts a reader thread on `borrowed.bytes` without copying them. On
    /// success the reader owns the caller's reference and calls
    /// `borrowed.release` once it is done; on error the caller keeps it.
    pub fn addBorrowed(stream: *Stream, borrowed: Borrowed) Error!void {
        try startReader(stream, borrowed.bytes, borrowed);
    }

    fn startReader(stream: *Stream, bytes: []const u8, borrowed: ?Borrowed) Error!void {
        const allocator = stream.allocator;
        const self = allocator.create(BufferReader) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        self.* = .{ .stream = stream, .bytes = bytes, .borrowed = borrowed };
        try stream.addReader(.{ .ctx = self, .vtable = &vtable });
    }

    const vtable: Reader.VTable = threadReaderVTable(BufferReader, "spead-buf-recv", run, free);

    fn free(self: *BufferReader) void {
        const allocator = self.stream.allocator;
        if (self.borrowed) |b| {
            b.release(b.ctx);
        } else {
            reassembly.freeWithoutPoisoning(allocator, @constCast(self.bytes));
        }
        allocator.destroy(self);
    }

    fn run(self: *BufferReader) void {
        self.stream.readerThreadStarted();
        const populating = if (self.borrowed) |b| b.populate else false;
        const framing: Framing = if (self.borrowed) |b| b.framing else .packets;
        var populated: usize = 0;
        // The capture's state (pcapng: interfaces and byte order) lives on this thread.
        var capture: pcap.Capture = undefined;
        self.offset = switch (framing) {
            .packets => 0,
            .capture => |c| blk: {
                capture = c.capture;
                break :blk @min(capture.start(), self.bytes.len);
            },
        };
        // A file mapping is guarded: if the file shrinks under the reader, the
        // rest reads as zeros instead of raising SIGBUS, and the reader stops.
        const guard: ?map_guard.Guard = if (populating) map_guard.register(self.bytes) else null;
        defer if (guard) |g| g.release();
        var done = false;
        // Each batch consumes at least one packet or record, or ends the loop.
        while (!done and !self.stop_requested.load(.acquire)) {
            // Outside the table lock: populating may read the file from disk.
            if (populating and populated < self.bytes.len and self.offset + populate_window / 2 >= populated) {
                const to = @min(self.bytes.len, @max(populated, self.offset) + populate_window);
                populate(self.bytes, populated, to);
                populated = to;
            }
            var batch: Batch = undefined;
            if (!self.stream.batchBegin(&batch)) return;
            switch (framing) {
                .packets => self.feedPackets(&batch),
                .capture => |c| self.feedCapture(&batch, &capture, c.port),
            }
            done = self.offset >= self.bytes.len or batch.isStopped();
            if (guard) |g| {
                if (g.cut()) {
                    // The heaps still being assembled may hold zeros for the bytes that went.
                    batch.count(.files_shrunk);
                    done = true;
                }
            }
            if (done) batch.end_of_data = true;
            self.stream.batchEnd(&batch);
        }
    }

    /// Feeds up to `buffer_batch_packets` concatenated packets; an
    /// undecodable one ends the bytes.
    fn feedPackets(self: *BufferReader, batch: *Batch) void {
        var n: usize = 0;
        while (n < buffer_batch_packets and self.offset < self.bytes.len) : (n += 1) {
            switch (packet_mod.decode(self.bytes[self.offset..])) {
                .ok => |packet| {
                    self.offset += packet.size;
                    if (!batch.addPacket(packet)) return;
                },
                .rejected => |reason| {
                    batch.countDecodeReject(reason);
                    self.offset = self.bytes.len;
                    return;
                },
            }
        }
    }

    /// Feeds the datagrams of up to `buffer_batch_packets` capture records.
    fn feedCapture(self: *BufferReader, batch: *Batch, capture: *pcap.Capture, port: u16) void {
        var n: usize = 0;
        while (n < buffer_batch_packets and self.offset < self.bytes.len) : (n += 1) {
            const frame = switch (capture.next(self.bytes, self.offset)) {
                .frame => |f| f,
                .other => |next| {
                    self.offset = next;
                    continue;
                },
                .end => unreachable, // offset < len
                .cut_short, .corrupt => {
                    // Nothing after this can be found: count it as one cut-off frame and end.
                    batch.count(.capture_frames_truncated);
                    self.offset = self.bytes.len;
                    return;
                },
            };
            self.offset = frame.next;
            if (!frame.complete) {
                batch.count(.capture_frames_truncated);
                continue;
            }
            const datagram = switch (pcap.Capture.udpPayload(frame.bytes, frame.link, port)) {
                .udp => |d| d,
                .skip => |why| {
                    batch.count(switch (why) {
                        .not_udp => .capture_frames_not_udp,
                        .filtered => .capture_frames_filtered,
                    });
                    continue;
                },
            };
            // The UDP reader's checks (zig/recv/udp.zig processDatagram), without its size limit.
            switch (packet_mod.decode(datagram)) {
                .rejected => |reason| batch.countDecodeReject(reason),
                .ok => |packet| {
                    if (packet.size != datagram.len) {
                        batch.count(.packets_rejected_size_mismatch);
                        continue;
                    }
                    if (!batch.addPacket(packet)) return;
                },
            }
        }
    }
};

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;
const imm = packet_mod.imm;
const addr = packet_mod.addr;

var test_payload_allocator: reassembly.DefaultPayloadAllocator = .{ .backing = testing.allocator };

/// A stream over testing.allocator for the tests of this file and of the
/// readers (zig/recv/udp.zig, tcp.zig, file_reader.zig).
pub fn testStream(config: Config) !*Stream {
    test_payload_allocator = .{ .backing = testing.allocator };
    return Stream.create(testing.allocator, test_payload_allocator.payloadAllocator(), config);
}

/// Appends the packets of a heap (`data` in pieces of `chunk`) to `out`.
fn appendHeap(out: *std.ArrayList(u8), cnt: u64, data: []const u8, chunk: usize, sized: bool) !void {
    var buf: [2048]u8 = undefined;
    var off: usize = 0;
    while (true) {
        const len = @min(chunk, data.len - off);
        var pointers: [6]packet_mod.TestPointer = undefined;
        var n: usize = 0;
        pointers[n] = imm(1, cnt);
        n += 1;
        if (sized) {
            pointers[n] = imm(2, data.len);
            n += 1;
        }
        pointers[n] = imm(3, off);
        pointers[n + 1] = imm(4, len);
        pointers[n + 2] = addr(0x1000, 0);
        n += 3;
        try out.appendSlice(packet_mod.buildTestPacket(&buf, 40, pointers[0..n], data[off .. off + len]));
        off += len;
        if (off >= data.len) break;
    }
}

fn appendStop(out: *std.ArrayList(u8), cnt: u64) !void {
    var buf: [128]u8 = undefined;
    try out.appendSlice(packet_mod.buildTestPacket(&buf, 40, &.{ imm(1, cnt), imm(2, 1), imm(3, 0), imm(4, 1), imm(6, 2), addr(0, 0) }, "\x00"));
}

fn popAll(stream: *Stream, heaps: *std.ArrayList(*FrozenHeap)) !void {
    var i: usize = 0;
    while (i < 100_000) : (i += 1) {
        const heap = stream.pop(5000) catch |err| switch (err) {
            error.Stopped => return,
            else => return err,
        };
        try heaps.append(heap);
    }
    return error.TestUnexpectedResult;
}

fn freeAll(heaps: *std.ArrayList(*FrozenHeap)) void {
    for (heaps.items) |h| h.deinit();
    heaps.deinit();
}

test "buffer reader: heaps in order through a small ring, then stopped" {
    const stream = try testStream(.{ .ring_heaps = 2 });
    defer stream.destroy();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var data: [1000]u8 = undefined;
    for (&data, 0..) |*b, i| b.* = @truncate(i);
    var cnt: u64 = 1;
    while (cnt <= 200) : (cnt += 1) try appendHeap(&bytes, cnt, data[0 .. 100 + cnt], 64, true);
    try BufferReader.add(stream, bytes.items);
    var heaps = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps);
    try popAll(stream, &heaps);
    try testing.expectEqual(@as(usize, 200), heaps.items.len);
    for (heaps.items, 1..) |h, i| {
        try testing.expectEqual(@as(u64, i), h.cnt);
        try testing.expect(h.complete);
        try testing.expectEqualSlices(u8, data[0 .. 100 + i], h.itemBytes(h.items[0]));
    }
    try testing.expectError(error.Stopped, stream.tryPop());
    try testing.expectEqual(@as(u64, 200), stream.stat(.heaps));
    try testing.expect(stream.stat(.packets) > 200);
    try testing.expect(stream.stat(.batches) >= 2);
    try testing.expectEqual(@as(u64, buffer_batch_packets), stream.stat(.max_batch));
    try testing.expectEqual(@as(u64, 0), stream.stat(.incomplete_heaps_flushed));
    try stream.wait(0); // stopped counts as ready
}

test "stop item: heap not delivered, stream stops (stop_on_stop_item)" {
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try appendHeap(&bytes, 1, "hello", 64, true);
    try appendHeap(&bytes, 2, "0123456789abcdef", 8, true);
    bytes.shrinkRetainingCapacity(bytes.items.len - 8 - 48); // drop its last packet
    try appendStop(&bytes, 3);
    try appendHeap(&bytes, 4, "after the stop", 64, true);

    const stream = try testStream(.{ .contiguous_only = false });
    defer stream.destroy();
    try BufferReader.add(stream, bytes.items);
    var heaps = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps);
    try popAll(stream, &heaps);
    try testing.expectEqual(@as(usize, 2), heaps.items.len);
    try testing.expectEqual(@as(u64, 1), heaps.items[0].cnt);
    try testing.expectEqual(@as(u64, 2), heaps.items[1].cnt);
    try testing.expect(!heaps.items[1].contiguous);
    try testing.expectEqual(@as(u64, 2), stream.stat(.heaps));
    try testing.expectEqual(@as(u64, 1), stream.stat(.incomplete_heaps_flushed));

    const stream2 = try testStream(.{ .reassembly = .{ .stop_on_stop_item = false } });
    defer stream2.destroy();
    try BufferReader.add(stream2, bytes.items);
    var heaps2 = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps2);
    try popAll(stream2, &heaps2);
    // 1, stop heap 3 (end flag), 4; heap 2 flushed but dropped (not contiguous)
    try testing.expectEqual(@as(usize, 3), heaps2.items.len);
    try testing.expect(heaps2.items[1].end_of_stream);
    try testing.expectEqual(@as(u64, 4), heaps2.items[2].cnt);
    try testing.expectEqual(@as(u64, 1), stream2.stat(.heaps_dropped_incomplete));
}

test "contiguous_only drops evicted incomplete heaps; off delivers them" {
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var data: [64]u8 = undefined;
    @memset(&data, 0xab);
    var cnt: u64 = 1;
    while (cnt <= 10) : (cnt += 1) {
        try appendHeap(&bytes, cnt, &data, 16, true);
        if (cnt % 3 == 0) bytes.shrinkRetainingCapacity(bytes.items.len - 16 - 48); // lose the last packet
    }
    for ([_]bool{ true, false }) |contiguous_only| {
        const stream = try testStream(.{ .contiguous_only = contiguous_only, .ring_heaps = 16, .reassembly = .{ .heaps_max = 1 } });
        defer stream.destroy();
        try BufferReader.add(stream, bytes.items);
        var heaps = std.ArrayList(*FrozenHeap).init(testing.allocator);
        defer freeAll(&heaps);
        try popAll(stream, &heaps);
        try testing.expectEqual(@as(usize, if (contiguous_only) 7 else 10), heaps.items.len);
        try testing.expectEqual(@as(u64, 10), stream.stat(.heaps));
        try testing.expectEqual(@as(u64, 3), stream.stat(.incomplete_heaps_evicted));
        try testing.expectEqual(@as(u64, if (contiguous_only) 3 else 0), stream.stat(.heaps_dropped_incomplete));
        if (!contiguous_only) {
            const h = heaps.items[2];
            try testing.expectEqual(@as(u64, 3), h.cnt);
            try testing.expect(!h.complete and !h.contiguous);
            try testing.expectEqual(@as(u64, 48), h.received_length);
            try testing.expectEqual(@as(usize, 0), h.items.len);
            try testing.expectEqual(@as(usize, 0), h.payload.len);
        }
    }
}

test "bad input: reader stops at the first undecodable packet, partial heaps flushed" {
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try appendHeap(&bytes, 1, "complete heap", 64, true);
    try appendHeap(&bytes, 2, "0123456789abcdef", 8, true);
    bytes.shrinkRetainingCapacity(bytes.items.len - 8 - 48);
    const good_len = bytes.items.len;
    try bytes.appendSlice("\x53\x05garbage garbage");
    try appendHeap(&bytes, 3, "never seen", 64, true);

    const stream = try testStream(.{ .contiguous_only = false });
    defer stream.destroy();
    try BufferReader.add(stream, bytes.items);
    var heaps = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps);
    try popAll(stream, &heaps);
    try testing.expectEqual(@as(usize, 2), heaps.items.len);
    try testing.expectEqual(@as(u64, 1), stream.stat(.packets_rejected_bad_magic));
    try testing.expectEqual(@as(u64, 1), stream.stat(.incomplete_heaps_flushed));
    try testing.expectEqual(@as(u64, 2), stream.stat(.packets));

    // a truncated final packet
    const stream2 = try testStream(.{});
    defer stream2.destroy();
    try BufferReader.add(stream2, bytes.items[0 .. good_len - 3]);
    var heaps2 = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps2);
    try popAll(stream2, &heaps2);
    try testing.expectEqual(@as(usize, 1), heaps2.items.len);
    try testing.expectEqual(@as(u64, 1), stream2.stat(.packets_rejected_truncated));

    // an empty buffer just stops the stream
    const stream3 = try testStream(.{});
    defer stream3.destroy();
    try BufferReader.add(stream3, "");
    try testing.expectError(error.Stopped, stream3.pop(5000));
    try testing.expectEqual(@as(u64, 0), stream3.stat(.batches));
    try testing.expectError(error.Stopped, BufferReader.add(stream3, "x"));
}

/// A stream with a ring of `ring_heaps` whose buffer reader (`heaps`
/// single-packet heaps, cnt 1, 2, ...) has blocked on the full ring.
fn blockedStream(ring_heaps: u32, heaps: u64) !*Stream {
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var cnt: u64 = 1;
    while (cnt <= heaps) : (cnt += 1) try appendHeap(&bytes, cnt, "single packet heap", 64, true);
    const stream = try testStream(.{ .ring_heaps = ring_heaps });
    errdefer stream.destroy();
    try BufferReader.add(stream, bytes.items);
    var spins: usize = 0;
    while (stream.stat(.worker_blocked) == 0) : (spins += 1) {
        try testing.expect(spins < 5000);
        std.time.sleep(std.time.ns_per_ms);
    }
    try testing.expectEqual(@as(usize, ring_heaps), stream.ringSize());
    return stream;
}

test "full ring blocks the worker; stop unblocks it (spead2 test_full_stop)" {
    const stream = try blockedStream(4, 10);
    defer stream.destroy();
    stream.stop();
    stream.stop(); // idempotent
    try testing.expectEqual(@as(u64, 10), stream.stat(.heaps));
    try testing.expectEqual(@as(u64, 10), stream.stat(.packets));
    try testing.expectEqual(@as(u64, 1), stream.stat(.worker_blocked));
    try testing.expectEqual(@as(u64, 6), stream.stat(.heaps_dropped_stopped));
    try testing.expectEqual(@as(usize, 4), stream.ringSize());
    var heaps = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps);
    try popAll(stream, &heaps);
    try testing.expectEqual(@as(usize, 4), heaps.items.len);
}

test "a worker blocked on a full ring resumes once pops leave half of it, not at every pop" {
    const stream = try blockedStream(8, 20);
    defer stream.destroy();
    var heaps = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps);
    var timer = try std.time.Timer.start();
    for (0..3) |_| try heaps.append(try stream.tryPop());
    std.time.sleep(20 * std.time.ns_per_ms);
    // Five left: the worker still waits (unless this thread was descheduled
    // past the worker's 100 ms re-check).
    if (timer.read() < worker_wait_ns / 2) try testing.expectEqual(@as(usize, 5), stream.ringSize());
    try heaps.append(try stream.tryPop());
    // Four left, half the ring: the worker refills it.
    var spins: usize = 0;
    while (stream.ringSize() < 8) : (spins += 1) {
        try testing.expect(spins < 5000);
        std.time.sleep(std.time.ns_per_ms);
    }
    try popAll(stream, &heaps);
    try testing.expectEqual(@as(usize, 20), heaps.items.len);
    for (heaps.items, 1..) |h, want| try testing.expectEqual(@as(u64, want), h.cnt);
}

test "pop and wait time out on an idle stream; destroy frees unpopped heaps" {
    const stream = try testStream(.{});
    var timer = try std.time.Timer.start();
    try testing.expectError(error.Empty, stream.pop(30));
    try testing.expect(timer.read() >= 25 * std.time.ns_per_ms);
    try testing.expectError(error.Empty, stream.wait(10));
    try testing.expectError(error.Empty, stream.tryPop());

    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try appendHeap(&bytes, 1, "left in the ring", 64, true);
    try appendHeap(&bytes, 2, "also left", 64, true);
    try BufferReader.add(stream, bytes.items);
    try stream.wait(5000);
    stream.destroy();
}

var test_doorbell_calls = std.atomic.Value(u32).init(0);
var test_doorbell_handle = std.atomic.Value(u32).init(0);

fn testDoorbell(handle: u32) callconv(.c) void {
    test_doorbell_handle.store(handle, .release);
    _ = test_doorbell_calls.fetchAdd(1, .acq_rel);
}

test "doorbell rings once per arm" {
    const stream = try testStream(.{ .ring_heaps = 8 });
    defer stream.destroy();
    stream.handle = 77;
    test_doorbell_calls.store(0, .release);
    stream.setNotify(testDoorbell);
    stream.arm();
    try testing.expectEqual(@as(u32, 0), test_doorbell_calls.load(.acquire));
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try appendHeap(&bytes, 1, "one", 64, true);
    try appendHeap(&bytes, 2, "two", 64, true);
    try BufferReader.add(stream, bytes.items);
    try stream.wait(5000);
    var spins: usize = 0;
    while (test_doorbell_calls.load(.acquire) == 0) : (spins += 1) {
        try testing.expect(spins < 5000);
        std.time.sleep(std.time.ns_per_ms);
    }
    std.time.sleep(20 * std.time.ns_per_ms);
    try testing.expectEqual(@as(u32, 1), test_doorbell_calls.load(.acquire)); // not re-armed
    try testing.expectEqual(@as(u32, 77), test_doorbell_handle.load(.acquire));
    stream.arm(); // ready already: rings at once
    try testing.expectEqual(@as(u32, 2), test_doorbell_calls.load(.acquire));
    stream.setNotify(null);
    stream.arm();
    try testing.expectEqual(@as(u32, 2), test_doorbell_calls.load(.acquire));
}

test "popBatch takes every ready heap in one call, in order, then reports Stopped" {
    const stream = try testStream(.{ .ring_heaps = 16 });
    defer stream.destroy();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var cnt: u64 = 1;
    // Ten single-packet heaps: one buffer-reader batch, so one signal for all of them.
    while (cnt <= 10) : (cnt += 1) try appendHeap(&bytes, cnt, "payload", 64, true);
    try BufferReader.add(stream, bytes.items);
    // The end of the buffer stops the ring after the batch: once stopped, all ten are in.
    var spins: usize = 0;
    while (!stream.isStopped()) : (spins += 1) {
        try testing.expect(spins < 5000);
        std.time.sleep(std.time.ns_per_ms);
    }
    var out: [4]*FrozenHeap = undefined;
    var seen: u64 = 0;
    var calls: usize = 0;
    while (true) : (calls += 1) {
        try testing.expect(calls < 10);
        const n = stream.popBatchClaim(1000, *FrozenHeap, Stream.claimIdentity, &out) catch |err| switch (err) {
            error.Stopped => break,
            else => return err,
        };
        try testing.expect(n >= 1 and n <= out.len);
        for (out[0..n]) |h| {
            seen += 1;
            try testing.expectEqual(seen, h.cnt);
            h.deinit();
        }
    }
    try testing.expectEqual(@as(u64, 10), seen);
    try testing.expectEqual(@as(usize, 3), calls); // 4 + 4 + 2
}

fn feedSinglePacketHeaps(batch: *Batch, first: u64, count: u64) !void {
    var buf: [256]u8 = undefined;
    var cnt = first;
    while (cnt < first + count) : (cnt += 1) {
        const bytes = packet_mod.buildTestPacket(&buf, 40, &.{ imm(1, cnt), imm(2, 3), imm(3, 0), imm(4, 3), addr(0x1000, 0) }, "abc");
        switch (packet_mod.decode(bytes)) {
            .ok => |packet| try testing.expect(batch.addPacket(packet)),
            .rejected => return error.TestUnexpectedResult,
        }
    }
}

test "waiters are woken once three quarters of the ring are news, not once per heap" {
    const stream = try testStream(.{ .ring_heaps = 64 });
    defer stream.destroy();
    stream.handle = 5;
    test_doorbell_calls.store(0, .release);
    stream.setNotify(testDoorbell);
    stream.arm(); // armed throughout: a per-heap doorbell would ring during the batch
    var batch: Batch = undefined;
    try testing.expect(stream.batchBegin(&batch));
    try feedSinglePacketHeaps(&batch, 1, 47);
    try testing.expectEqual(@as(u32, 0), test_doorbell_calls.load(.acquire));
    // The 48th heap makes three quarters of the ring news: announced at once,
    // inside the batch, so JS drains while the reader fills the rest.
    try feedSinglePacketHeaps(&batch, 48, 1);
    try testing.expectEqual(@as(u32, 1), test_doorbell_calls.load(.acquire));
    try testing.expectEqual(@as(?u32, null), stream.pendingNotifyMs());
    try feedSinglePacketHeaps(&batch, 49, 8);
    try testing.expectEqual(@as(usize, 56), stream.ringSize());
    stream.batchEnd(&batch);
    try testing.expectEqual(@as(u32, 1), test_doorbell_calls.load(.acquire)); // not re-armed
    stream.setNotify(null);
}

test "a few heaps are announced within notify_delay_ns, by the batch end or an idle reader" {
    const stream = try testStream(.{ .ring_heaps = 64 });
    defer stream.destroy();
    stream.handle = 6;
    test_doorbell_calls.store(0, .release);
    stream.setNotify(testDoorbell);
    stream.arm();
    var batch: Batch = undefined;
    try testing.expect(stream.batchBegin(&batch));
    try feedSinglePacketHeaps(&batch, 1, 3);
    stream.batchEnd(&batch); // 3 of 64, just pushed: not yet (unless this thread was descheduled for a while)
    if (test_doorbell_calls.load(.acquire) == 0) {
        const due = stream.pendingNotifyMs() orelse return error.TestUnexpectedResult;
        try testing.expect(due <= notify_delay_ns / std.time.ns_per_ms);
        std.time.sleep(notify_delay_ns + std.time.ns_per_ms);
        try testing.expectEqual(@as(?u32, 0), stream.pendingNotifyMs());
        stream.signalIfDue(); // what an idle reader does when its poll times out
    }
    try testing.expectEqual(@as(u32, 1), test_doorbell_calls.load(.acquire));
    try testing.expectEqual(@as(?u32, null), stream.pendingNotifyMs());
    // Popping everything leaves nothing to announce.
    stream.arm(); // rings at once: heaps are ready
    try testing.expectEqual(@as(u32, 2), test_doorbell_calls.load(.acquire));
    var out: [8]*FrozenHeap = undefined;
    const n = try stream.popBatchClaim(0, *FrozenHeap, Stream.claimIdentity, &out);
    try testing.expectEqual(@as(usize, 3), n);
    for (out[0..n]) |h| h.deinit();
    try testing.expectEqual(@as(?u32, null), stream.pendingNotifyMs());
    stream.setNotify(null);
}

test "config validation" {
    try testing.expectError(error.InvalidArgument, (Config{ .ring_heaps = 0 }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .reassembly = .{ .heaps_max = 0 } }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .reassembly = .{ .substreams = 0 } }).validate());
    try testing.expectError(error.InvalidArgument, (Config{ .reassembly = .{ .heaps_max = 65536, .substreams = 65536 } }).validate());
    try (Config{}).validate();
    try (Config{ .reader_cpu = 0 }).validate();
    try testing.expectError(error.InvalidArgument, (Config{ .reader_cpu = 10000 }).validate());
    try testing.expectEqualStrings("heaps", stat_names[0]);
    try testing.expectEqualStrings("affinity_failures", stat_names[stat_count - 1]);
    try testing.expectEqualStrings("worker_blocked", stat_names[8]);
}

var test_reader_core: std.atomic.Value(u32) = std.atomic.Value(u32).init(affinity.none_u32);

test "reader threads pin themselves to reader_cpu" {
    const allowed = std.posix.sched_getaffinity(0) catch return error.SkipZigTest;
    if (allowed[0] & 1 == 0) return error.SkipZigTest; // core 0 is outside our cpuset
    const stream = try testStream(.{ .reader_cpu = 0, .ring_heaps = 8 });
    defer stream.destroy();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try appendHeap(&bytes, 1, "pinned", 64, true);
    try BufferReader.add(stream, bytes.items);
    var heaps = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps);
    try popAll(stream, &heaps);
    try testing.expectEqual(@as(usize, 1), heaps.items.len);
    try testing.expectEqual(@as(u64, 0), stream.stat(.affinity_failures));
    // The pinning itself, on a thread the same way a reader does it.
    const Probe = struct {
        fn run(s: *Stream) void {
            s.readerThreadStarted();
            test_reader_core.store(affinity.currentSingleCore() orelse affinity.none_u32, .release);
        }
    };
    const thread = try std.Thread.spawn(.{}, Probe.run, .{stream});
    thread.join();
    try testing.expectEqual(@as(u32, 0), test_reader_core.load(.acquire));
}

test "a core the kernel refuses is counted, not fatal" {
    const stream = try testStream(.{});
    defer stream.destroy();
    // Bypasses validation the way an offline core would slip through it.
    stream.config.reader_cpu = affinity.cores_limit - 1;
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try appendHeap(&bytes, 1, "unpinned", 64, true);
    try BufferReader.add(stream, bytes.items);
    var heaps = std.ArrayList(*FrozenHeap).init(testing.allocator);
    defer freeAll(&heaps);
    try popAll(stream, &heaps);
    try testing.expectEqual(@as(usize, 1), heaps.items.len);
    if (affinity.cpuCount() < affinity.cores_limit) try testing.expectEqual(@as(u64, 1), stream.stat(.affinity_failures));
}
