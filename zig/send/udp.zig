//! UDP send stream: spead2's `send::udp_stream` semantics on a dedicated I/O
//! thread (docs/PROTOCOL.md §13).
//!
//! - JS submits *groups* of heaps (item tables as in docs/ABI.md). A group is
//!   queued whole or not at all; heaps beyond `heaps_max` are refused with
//!   `QueueFull` (spead2 drops them; it never blocks). Item bytes are
//!   referenced, not copied, until the group's completion is reported.
//! - The I/O thread turns heaps into packets with the Part-1 packetiser in its
//!   zero-copy form, interleaves the heaps of a group (ROUND_ROBIN) or not
//!   (SERIAL) exactly as spead2's writer does, and sends a batch of packets
//!   per `sendmmsg`: up to about 2 MiB in whole GSO messages (spead2: 64
//!   datagrams), ended at a group end once it has 64 packets, so a finished
//!   group is reported before the next group's packets go out. Runs of
//!   equal-size packets to the same destination are merged into one UDP GSO
//!   message (`UDP_SEGMENT` control message, at most 64 segments), with spead2's
//!   fallback: if a GSO send fails, the same packets are retried without GSO;
//!   if that works, GSO is disabled for good, otherwise it stays allowed.
//! - The rate limiter (send/rate_limit.zig) paces bursts.
//! - Completions go into a bounded ring that JS drains with `poll`. A record
//!   not yet drained still counts against `heaps_max`, which bounds the ring.
//!   The only call into foreign code from the thread is the optional doorbell
//!   (`notify`), at most once per `arm`.
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const builtin = @import("builtin");
const assert = std.debug.assert;
const posix = std.posix;
const linux = std.os.linux;
const status = @import("../core/status.zig");
const Error = status.Error;
const sys_error = @import("../core/sys_error.zig");
const Flavour = @import("../core/flavour.zig").Flavour;
const send_heap = @import("packetiser.zig");
const ItemRecord = send_heap.ItemRecord;
const Packetiser = send_heap.Packetiser;
const iovec_const = send_heap.iovec_const;
const rate_limit = @import("rate_limit.zig");
const affinity = @import("../core/affinity.zig");

comptime {
    assert(builtin.os.tag == .linux);
}

/// Most datagrams per sendmmsg call (a stream's own limit is `batchLimit`).
pub const batch_max = 256;
/// spead2's batch (`udp_writer::max_batch`): a batch that has reached it ends
/// at the first group end, so that a completed group is reported before the
/// next group's packets are sent (its buffers can be refilled meanwhile).
pub const batch_group_cut = 64;
/// Payload area of a batch: the stream's batch limit is this over the packet size.
const batch_bytes = 2 << 20;
/// The kernel's limit on segments in one GSO message (UDP_MAX_SEGMENTS).
pub const gso_segments_max = 64;

/// Datagrams per batch for `packet_size_max`: about `batch_bytes` of packets,
/// at least spead2's 64 and at most `batch_max`, rounded down to whole GSO
/// messages of full-size packets so that no batch ends in a short message.
pub fn batchLimit(packet_size_max: u32) u32 {
    const by_bytes: u32 = @intCast(@min(batch_max, @max(batch_group_cut, batch_bytes / packet_size_max)));
    const per_message: u32 = @intCast(@max(1, @min(gso_segments_max, gso_message_max / packet_size_max)));
    const whole = by_bytes - by_bytes % per_message;
    return if (whole >= batch_group_cut) whole else by_bytes;
}
/// iovec segments per packet: header, up to 6 item slices, copied tail.
pub const segments_per_packet = 8;
/// Largest UDP payload of one (GSO) message over IPv4.
pub const gso_message_max = 65507;
pub const endpoints_max = 1024;
pub const heaps_max_limit = 1 << 16;
pub const packet_size_limit = 1 << 17;
/// How long one wait for socket space lasts, and how many such waits without
/// progress before a message is failed.
const blocked_poll_ms = 10;
const blocked_attempts_max = 2000;
const no_buffers_sleep_ns = 100 * std.time.ns_per_us;

pub const GroupMode = enum(u32) {
    round_robin = 0,
    serial = 1,
};

pub const Config = struct {
    packet_size_max: u32 = 1472,
    /// Bytes per second; 0 = unlimited.
    rate: f64 = 0,
    burst_size: u64 = 65536,
    heaps_max: u32 = 4,
    burst_rate_ratio: f64 = 1.05,
    /// SO_SNDBUF; 0 leaves the OS default.
    buffer_size: u32 = 512 * 1024,
    /// Multicast TTL/hops; null for a plain (unicast) socket.
    ttl: ?u8 = null,
    /// Plain socket: address to bind to. Multicast IPv4: outgoing interface.
    interface_address: ?std.net.Address = null,
    /// Multicast IPv6: outgoing interface index (0 = default).
    interface_index: u32 = 0,
    gso: bool = true,
    /// Core the I/O thread pins itself to (null: no affinity).
    cpu: ?u32 = null,

    pub fn validate(self: Config) Error!void {
        if (self.cpu) |core| try affinity.validateCore(core);
        if (self.packet_size_max < send_heap.packet_size_min) return error.PacketTooSmall;
        if (self.packet_size_max > packet_size_limit) return error.InvalidArgument;
        try validateRate(self.rate, false);
        if (self.heaps_max == 0 or self.heaps_max > heaps_max_limit) return error.InvalidArgument;
        if (!(self.burst_rate_ratio >= 1.0) or !std.math.isFinite(self.burst_rate_ratio)) return error.InvalidArgument;
    }
};

/// A stream rate must be 0 or at least `rate_min`; a per-heap rate may also be
/// negative (use the stream's) or +inf (unlimited).
pub fn validateRate(rate: f64, per_heap: bool) Error!void {
    if (std.math.isNan(rate)) return error.InvalidArgument;
    if (rate < 0) {
        if (per_heap) return;
        return error.InvalidArgument;
    }
    if (std.math.isInf(rate)) {
        if (per_heap) return;
        return error.InvalidArgument;
    }
    if (rate != 0 and rate < rate_limit.rate_min) return error.InvalidArgument;
}

/// One heap of a group, as submitted.
pub const HeapSpec = struct {
    items: []const ItemRecord,
    flavour: Flavour,
    /// null: the next value of the stream's cnt sequence.
    cnt: ?u64 = null,
    substream: u32 = 0,
    /// Negative: the stream's rate; 0 or +inf: unlimited.
    rate: f64 = -1,
    repeat_pointers: bool = false,
};

/// `Stream.send` source over a slice.
pub const SliceHeaps = struct {
    heaps: []const HeapSpec,

    pub fn count(self: SliceHeaps) usize {
        return self.heaps.len;
    }

    pub fn get(self: SliceHeaps, i: usize) Error!HeapSpec {
        return self.heaps[i];
    }
};

/// One completion record, as JS reads it (4 u64 words).
pub const Completion = extern struct {
    pub const doc = "A finished send group: its token, bytes sent, status and errno";
    /// Its name at the C ABI (zig/abi/records.zig).
    pub const abi_name = "SendCompletion";
    token: u64,
    bytes_sent: u64,
    /// An i32 status (0 ok) sign-extended to 64 bits.
    status: u64,
    /// errno of the first failure, 0 if none.
    errno: u64,
};

const doorbell = @import("../core/doorbell.zig");
const Doorbell = doorbell.Doorbell;
pub const NotifyFn = doorbell.NotifyFn;

/// UDP GSO fallback (spead2 doc/dev-send-gso.rst). "Active" and "inactive"
/// of spead2 are one state here because the segment size travels with each
/// message instead of being a socket option.
pub const Gso = struct {
    state: State = .enabled,

    pub const State = enum(u8) { enabled = 0, probe = 1, disabled = 2 };

    pub fn allowed(self: Gso) bool {
        return self.state == .enabled;
    }

    /// A send failed with a real error (not "try again"). Returns true when the
    /// same packets should be retried without GSO.
    pub fn onError(self: *Gso, message_used_gso: bool) bool {
        switch (self.state) {
            // Without GSO it failed too: GSO was not the problem.
            .probe => {
                self.state = .enabled;
                return false;
            },
            .enabled => {
                if (!message_used_gso) return false;
                self.state = .probe;
                return true;
            },
            .disabled => return false,
        }
    }

    /// A send succeeded.
    pub fn onSuccess(self: *Gso) void {
        // With GSO it failed, without it works: GSO does not work here.
        if (self.state == .probe) self.state = .disabled;
    }
};

pub const stat_names = [_][]const u8{
    "heaps",
    "groups",
    "packets",
    "bytes",
    "batches",
    "gso_messages",
    "errors",
    "would_block",
    "no_buffers",
    "sleeps",
    "queue_full",
    "gso_state",
    "affinity_failures",
};

const Stat = enum(u8) {
    heaps,
    groups,
    packets,
    bytes,
    batches,
    gso_messages,
    errors,
    would_block,
    no_buffers,
    sleeps,
    queue_full,
    gso_state,
    affinity_failures,
};

comptime {
    assert(stat_names.len == @typeInfo(Stat).@"enum".fields.len);
    for (@typeInfo(Stat).@"enum".fields, 0..) |field, i| assert(std.mem.eql(u8, field.name, stat_names[i]));
}

const Slot = struct {
    /// Our copy of the heap's item table (capacity kept between uses).
    items: std.ArrayListUnmanaged(ItemRecord) = .{},
    packetiser: Packetiser = undefined,
    substream: u32 = 0,
    wait_per_byte_ns: f64 = 0,
    mode: GroupMode = .serial,
    /// Sequence numbers (not slot indices) of the group's end and of the next
    /// heap to take a packet from.
    group_end: u64 = 0,
    group_next: u64 = 0,
    // Valid in the first slot of a group only.
    token: u64 = 0,
    bytes_sent: u64 = 0,
    status: i32 = 0,
    errno: u32 = 0,
};

/// A packet of the current batch.
const BatchPacket = struct {
    size: u32,
    iov_first: u32,
    iov_count: u32,
    substream: u32,
    /// Sequence number of the first heap of the packet's group.
    group: u64,
    /// The last packet of its group.
    last: bool,
};

const cmsg_space = 24; // CMSG_SPACE(sizeof(u16)) on 64-bit Linux

const BatchMessage = struct {
    first_packet: u32,
    packets: u32,
    segment_size: u32,
};

/// State only the I/O thread touches.
const Io = struct {
    active: u64 = 0,
    active_start: u64 = 0,
    cached_tail: u64 = 0,
    limiter: rate_limit.RateLimiter,
    gso: Gso = .{},
    packets: [batch_max]BatchPacket = undefined,
    messages: [batch_max]BatchMessage = undefined,
    msgvec: [batch_max]linux.mmsghdr_const = undefined,
    control: [batch_max][cmsg_space]u8 align(8) = undefined,
    iov: [batch_max * segments_per_packet]iovec_const = undefined,
    /// batch_limit × packet_size_max bytes: one header/tail area per packet.
    scratch: []u8,
    /// `batchLimit(packet_size_max)`.
    batch_limit: u32,
    done_groups: [batch_max]u64 = undefined,
    done_count: usize = 0,
};

pub const Stream = struct {
    allocator: std.mem.Allocator,
    config: Config,
    fd: posix.socket_t,
    endpoints: []std.net.Address,
    wait_per_byte_ns: f64,
    /// Handle passed to the doorbell.
    handle: u32 = 0,

    mutex: std.Thread.Mutex = .{},
    /// Signalled when work arrives or the stream stops (I/O thread waits).
    work: std.Thread.Condition = .{},
    /// Signalled when groups complete or the stream stops (JS waits).
    done: std.Thread.Condition = .{},
    slots: []Slot,
    records: []Completion,
    // Under `mutex`:
    head: u64 = 0,
    tail: u64 = 0,
    record_head: u64 = 0,
    record_tail: u64 = 0,
    next_cnt: u64 = 1,
    step_cnt: u64 = 1,
    /// The I/O thread found no work and waits for some.
    need_wakeup: bool = false,
    /// stop() has finished: the thread is joined and pending groups reported.
    stopped: bool = false,

    stopping: std.atomic.Value(bool) = std.atomic.Value(bool).init(false),
    /// Rung once per arm when completions are waiting (zig/core/doorbell.zig).
    bell: Doorbell = .{},
    stop_mutex: std.Thread.Mutex = .{},

    stats: [stat_names.len]std.atomic.Value(u64) = [_]std.atomic.Value(u64){std.atomic.Value(u64).init(0)} ** stat_names.len,

    thread: ?std.Thread = null,
    io: Io,
    /// A connected TCP socket (`createTcp`): packets go out back to back as
    /// one byte stream (`sendBatchStream`), not as datagrams.
    byte_stream: bool = false,

    /// Creates the socket and starts the I/O thread. `endpoints` are copied.
    pub fn create(allocator: std.mem.Allocator, endpoints: []const std.net.Address, config: Config) Error!*Stream {
        try config.validate();
        try checkEndpoints(endpoints, config);
        const fd = try openSocket(endpoints[0].any.family, config);
        return adopt(allocator, endpoints, config, fd, false);
    }

    /// spead2's TcpStream: connects to `endpoint` (blocking; a refused or
    /// failed connect is `SystemError` with its errno recorded) and starts the
    /// I/O thread, which writes each packet to the connection in order. One
    /// substream; no GSO, multicast or interface.
    pub fn createTcp(allocator: std.mem.Allocator, endpoint: std.net.Address, config_in: Config) Error!*Stream {
        var config = config_in;
        config.gso = false;
        try config.validate();
        if (config.ttl != null or config.interface_index != 0) return error.InvalidArgument;
        try checkEndpoints(&.{endpoint}, config);
        const fd = try connectTcp(endpoint, config);
        return adopt(allocator, &.{endpoint}, config, fd, true);
    }

    /// Builds the stream around `fd` (closed on error) and starts its I/O thread.
    fn adopt(allocator: std.mem.Allocator, endpoints: []const std.net.Address, config: Config, fd: posix.socket_t, byte_stream: bool) Error!*Stream {
        errdefer posix.close(fd);
        const self = allocator.create(Stream) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const endpoints_copy = allocator.dupe(std.net.Address, endpoints) catch return error.OutOfMemory;
        errdefer allocator.free(endpoints_copy);
        const slots = allocator.alloc(Slot, config.heaps_max) catch return error.OutOfMemory;
        errdefer allocator.free(slots);
        for (slots) |*slot| slot.* = .{};
        const records = allocator.alloc(Completion, config.heaps_max) catch return error.OutOfMemory;
        errdefer allocator.free(records);
        const batch_limit = batchLimit(config.packet_size_max);
        const scratch = allocator.alloc(u8, @as(usize, batch_limit) * config.packet_size_max) catch return error.OutOfMemory;
        errdefer allocator.free(scratch);

        self.* = .{
            .allocator = allocator,
            .config = config,
            .fd = fd,
            .endpoints = endpoints_copy,
            .wait_per_byte_ns = rate_limit.waitPerByte(config.rate),
            .slots = slots,
            .records = records,
            .io = .{
                .limiter = rate_limit.RateLimiter.init(config.burst_size, config.burst_rate_ratio),
                .scratch = scratch,
                .batch_limit = batch_limit,
            },
            .byte_stream = byte_stream,
        };
        if (!config.gso or !gsoSupported(fd)) self.io.gso.state = .disabled;
        self.setStat(.gso_state, @intFromEnum(self.io.gso.state));
        self.thread = affinity.spawnNamed(.{}, "spead-udp-send", run, .{self}) catch return sys_error.fail(.AGAIN, "pthread_create (send thread)", null);
        return self;
    }

    /// Stops (if not yet) and frees everything.
    pub fn destroy(self: *Stream) void {
        self.stop();
        assert(self.thread == null);
        const allocator = self.allocator;
        for (self.slots) |*slot| slot.items.deinit(allocator);
        allocator.free(self.slots);
        allocator.free(self.records);
        allocator.free(self.io.scratch);
        allocator.free(self.endpoints);
        posix.close(self.fd);
        allocator.destroy(self);
    }

    /// Stops the I/O thread and joins it. Groups not yet sent complete with
    /// `stopped` (records stay available to `poll`). Idempotent.
    pub fn stop(self: *Stream) void {
        self.stop_mutex.lock();
        defer self.stop_mutex.unlock();
        if (self.thread == null) {
            assert(self.stopped);
            return;
        }
        self.mutex.lock();
        self.stopping.store(true, .release);
        self.work.broadcast();
        self.mutex.unlock();
        self.thread.?.join();
        self.thread = null;

        self.mutex.lock();
        var seq = self.head;
        var groups: u64 = 0;
        while (seq < self.tail) : (groups += 1) {
            assert(groups < self.slots.len);
            const first = self.slotAt(seq);
            if (first.status == 0) first.status = @intFromEnum(status.Status.stopped);
            self.pushRecord(first);
            assert(first.group_end > seq);
            seq = first.group_end;
        }
        assert(seq == self.tail);
        self.head = self.tail;
        self.stopped = true;
        self.done.broadcast();
        self.mutex.unlock();
        self.ring();
    }

    fn slotAt(self: *Stream, seq: u64) *Slot {
        return &self.slots[@intCast(seq % self.slots.len)];
    }

    fn addStat(self: *Stream, stat: Stat, value: u64) void {
        _ = self.stats[@intFromEnum(stat)].fetchAdd(value, .monotonic);
    }

    fn setStat(self: *Stream, stat: Stat, value: u64) void {
        self.stats[@intFromEnum(stat)].store(value, .monotonic);
    }

    pub fn statValues(self: *Stream, out: []u64) usize {
        const n = @min(out.len, stat_names.len);
        for (out[0..n], 0..) |*value, i| value.* = self.stats[i].load(.monotonic);
        return n;
    }

    pub fn setCntSequence(self: *Stream, next: u64, step: u64) Error!void {
        if (step == 0) return error.InvalidArgument;
        self.mutex.lock();
        defer self.mutex.unlock();
        self.next_cnt = next;
        self.step_cnt = step;
    }

    /// Queues a group of heaps, all or none. `heaps` has `count() usize` and
    /// `get(i) Error!HeapSpec` (a slice wrapper, or JS words parsed on the
    /// fly). `out_cnts` (if not empty) receives each heap's cnt.
    pub fn send(self: *Stream, heaps: anytype, mode: GroupMode, token: u64, out_cnts: []u64) Error!void {
        const heap_count = heaps.count();
        if (heap_count == 0) return error.InvalidArgument;
        assert(out_cnts.len == 0 or out_cnts.len == heap_count);
        for (0..heap_count) |i| {
            const heap = try heaps.get(i);
            if (heap.substream >= self.endpoints.len) return error.InvalidArgument;
            try validateRate(heap.rate, true);
            heap.flavour.assertValid();
            if (heap.cnt) |cnt| {
                if (cnt > heap.flavour.addressMask()) return error.InvalidCnt;
            }
        }
        // The I/O thread is woken after the unlock (defers run in reverse): woken
        // under the lock, it would only block again on the mutex we hold.
        var wake = false;
        defer if (wake) self.work.signal();
        self.mutex.lock();
        defer self.mutex.unlock();
        if (self.stopped or self.stopping.load(.acquire)) return error.Stopped;
        const used = (self.tail - self.head) + (self.record_tail - self.record_head);
        assert(used <= self.slots.len);
        if (heap_count > self.slots.len - used) {
            self.addStat(.queue_full, 1);
            return error.QueueFull;
        }
        // Fill free slots; nothing is visible to the I/O thread until `tail` moves.
        var next_cnt = self.next_cnt;
        const first = self.tail;
        const end = first + heap_count;
        for (0..heap_count) |i| {
            const heap = try heaps.get(i);
            const seq = first + i;
            const slot = self.slotAt(seq);
            slot.items.clearRetainingCapacity();
            slot.items.appendSlice(self.allocator, heap.items) catch return error.OutOfMemory;
            const cnt = heap.cnt orelse blk: {
                const value = next_cnt & heap.flavour.addressMask();
                next_cnt +%= self.step_cnt;
                break :blk value;
            };
            slot.packetiser = try Packetiser.init(slot.items.items, heap.flavour, cnt, self.config.packet_size_max, heap.repeat_pointers);
            slot.substream = heap.substream;
            slot.wait_per_byte_ns = if (heap.rate < 0) self.wait_per_byte_ns else if (std.math.isInf(heap.rate)) 0 else rate_limit.waitPerByte(heap.rate);
            slot.mode = mode;
            slot.group_end = end;
            slot.group_next = if (seq + 1 < end) seq + 1 else switch (mode) {
                .round_robin => first,
                .serial => seq,
            };
            if (out_cnts.len > 0) out_cnts[i] = cnt;
        }
        const head_slot = self.slotAt(first);
        head_slot.token = token;
        head_slot.bytes_sent = 0;
        head_slot.status = 0;
        head_slot.errno = 0;
        self.next_cnt = next_cnt;
        // Release: the slots filled above are visible to the I/O thread, which
        // reads `tail` without the mutex (nextPacket).
        @atomicStore(u64, &self.tail, end, .release);
        if (self.need_wakeup) {
            self.need_wakeup = false;
            wake = true;
        }
    }

    /// Moves up to `out.len` completion records out of the ring.
    pub fn poll(self: *Stream, out: []Completion) usize {
        self.mutex.lock();
        defer self.mutex.unlock();
        const available = self.record_tail - self.record_head;
        const n: usize = @intCast(@min(available, out.len));
        for (out[0..n]) |*record| {
            record.* = self.records[@intCast(self.record_head % self.records.len)];
            self.record_head += 1;
        }
        return n;
    }

    /// Waits until a completion record is available (ok), the stream has
    /// stopped with none left (Stopped), or the timeout passes (Empty).
    pub fn wait(self: *Stream, timeout_ms: u32) Error!void {
        self.mutex.lock();
        defer self.mutex.unlock();
        var timer = std.time.Timer.start() catch return error.SystemError;
        const timeout_ns = @as(u64, timeout_ms) * std.time.ns_per_ms;
        while (self.record_tail == self.record_head) {
            // While stop() runs, keep waiting: it is about to report the pending groups.
            if (self.stopped) return error.Stopped;
            const elapsed = timer.read();
            if (elapsed >= timeout_ns) return error.Empty;
            self.done.timedWait(&self.mutex, timeout_ns - elapsed) catch {};
        }
    }

    /// Waits until every group queued before the call has completed (ok), or
    /// the timeout passes (Empty).
    pub fn flush(self: *Stream, timeout_ms: u32) Error!void {
        self.mutex.lock();
        defer self.mutex.unlock();
        const target = self.tail;
        var timer = std.time.Timer.start() catch return error.SystemError;
        const timeout_ns = @as(u64, timeout_ms) * std.time.ns_per_ms;
        while (self.head < target) {
            if (self.stopped) break;
            const elapsed = timer.read();
            if (elapsed >= timeout_ns) return error.Empty;
            self.done.timedWait(&self.mutex, timeout_ns - elapsed) catch {};
        }
    }

    pub fn setNotify(self: *Stream, notify: ?NotifyFn) void {
        self.bell.set(notify);
    }

    /// Arms the doorbell; rings at once if records are already waiting.
    pub fn arm(self: *Stream) void {
        self.bell.arm(self.handle, self, hasRecords);
    }

    fn hasRecords(self: *Stream) bool {
        self.mutex.lock();
        defer self.mutex.unlock();
        return self.record_tail > self.record_head;
    }

    fn ring(self: *Stream) void {
        self.bell.ring(self.handle);
    }

    /// Under `mutex`.
    fn pushRecord(self: *Stream, first: *Slot) void {
        assert(self.record_tail - self.record_head < self.records.len);
        const negative: i64 = first.status;
        self.records[@intCast(self.record_tail % self.records.len)] = .{
            .token = first.token,
            .bytes_sent = first.bytes_sent,
            .status = @bitCast(negative),
            .errno = first.errno,
        };
        self.record_tail += 1;
    }

    // -----------------------------------------------------------------------
    // I/O thread

    fn run(self: *Stream) void {
        // A refused core is counted; the thread then runs unpinned.
        if (self.config.cpu) |core| {
            if (!affinity.pinCurrentThread(core)) self.addStat(.affinity_failures, 1);
        }
        const clock = rate_limit.MonotonicClock{};
        while (!self.stopping.load(.acquire)) {
            var n: usize = 0;
            var outcome: Next = .empty;
            var iov_used: u32 = 0;
            while (n < self.io.batch_limit) {
                outcome = self.nextPacket(clock, n, &iov_used);
                if (outcome != .packet) break;
                n += 1;
                if (n >= batch_group_cut and self.io.packets[n - 1].last) break;
            }
            if (n > 0) self.sendBatch(n);
            switch (outcome) {
                .packet => {},
                .sleep => |until| if (n == 0) self.sleepUntil(clock, until),
                .empty => if (n == 0) self.waitForWork(clock),
            }
        }
    }

    const Next = union(enum) {
        packet,
        sleep: i64,
        empty,
    };

    /// spead2's `writer::get_packet`: rate check, then the next packet of the
    /// active group in the group's order.
    fn nextPacket(self: *Stream, clock: anytype, index: usize, iov_used: *u32) Next {
        const io = &self.io;
        if (io.limiter.check(clock)) |until| return .{ .sleep = until };
        if (io.active == io.cached_tail) {
            io.cached_tail = @atomicLoad(u64, &self.tail, .acquire);
            if (io.active == io.cached_tail) return .empty;
        }
        const cur = self.slotAt(io.active);
        assert(cur.packetiser.hasNext());
        const size_max: usize = self.config.packet_size_max;
        const scratch = io.scratch[index * size_max ..][0..size_max];
        const iov = io.iov[iov_used.*..][0..segments_per_packet];
        const packet = cur.packetiser.next(scratch, iov);
        assert(packet.size <= size_max);
        io.packets[index] = .{
            .size = @intCast(packet.size),
            .iov_first = iov_used.*,
            .iov_count = packet.segments_used,
            .substream = cur.substream,
            .group = io.active_start,
            .last = false,
        };
        iov_used.* += packet.segments_used;
        io.limiter.account(packet.size, cur.wait_per_byte_ns);

        switch (cur.mode) {
            .round_robin => {
                var next_seq = cur.group_next;
                var next = self.slotAt(next_seq);
                var steps: usize = 0;
                while (!next.packetiser.hasNext()) : (steps += 1) {
                    assert(steps <= self.slots.len);
                    if (next_seq == io.active) {
                        // All the way round and nothing left: the group is done.
                        io.packets[index].last = true;
                        io.active = cur.group_end;
                        io.active_start = io.active;
                        return .packet;
                    }
                    next_seq = next.group_next;
                    next = self.slotAt(next_seq);
                }
                cur.group_next = next_seq;
                io.active = next_seq;
            },
            .serial => {
                var next = cur;
                var steps: usize = 0;
                while (!next.packetiser.hasNext()) : (steps += 1) {
                    assert(steps <= self.slots.len);
                    io.active += 1;
                    if (io.active == cur.group_end) {
                        io.packets[index].last = true;
                        io.active_start = io.active;
                        return .packet;
                    }
                    next = self.slotAt(io.active);
                }
            },
        }
        return .packet;
    }

    fn sleepUntil(self: *Stream, clock: anytype, until: i64) void {
        self.addStat(.sleeps, 1);
        self.mutex.lock();
        defer self.mutex.unlock();
        var waits: u32 = 0;
        while (!self.stopping.load(.acquire)) : (waits += 1) {
            const now = clock.now();
            if (now >= until) return;
            // Spurious wake-ups are possible; the loop re-checks the time.
            assert(waits < 1_000_000);
            self.work.timedWait(&self.mutex, @intCast(until - now)) catch {};
        }
    }

    fn waitForWork(self: *Stream, clock: anytype) void {
        var waited = false;
        self.mutex.lock();
        while (self.tail == self.io.active and !self.stopping.load(.acquire)) {
            waited = true;
            self.need_wakeup = true;
            self.work.wait(&self.mutex);
        }
        self.need_wakeup = false;
        self.io.cached_tail = self.tail;
        self.mutex.unlock();
        // Idle time is not to be caught up (spead2's update_send_time_empty).
        if (waited) self.io.limiter.resumeAfterIdle(clock.now());
    }

    /// spead2's `prepare_msgvec`: one message per packet, or runs of packets to
    /// the same destination merged for GSO, all but the last of full size.
    fn prepareMessages(self: *Stream, first_packet: usize, n: usize, first_message: usize, gso: bool) usize {
        const io = &self.io;
        var m = first_message;
        var merged: u64 = 0;
        for (first_packet..n) |i| {
            const p = io.packets[i];
            const merge = gso and i != first_packet and blk: {
                const msg = &io.messages[m - 1];
                const prev = io.packets[i - 1];
                break :blk prev.size == msg.segment_size and
                    p.substream == prev.substream and
                    p.size <= msg.segment_size and
                    msg.packets < gso_segments_max and
                    merged + p.size <= gso_message_max;
            };
            if (!merge) {
                const endpoint = &self.endpoints[p.substream];
                io.messages[m] = .{ .first_packet = @intCast(i), .packets = 0, .segment_size = p.size };
                io.msgvec[m] = .{
                    .hdr = .{
                        .name = &endpoint.any,
                        .namelen = endpoint.getOsSockLen(),
                        .iov = io.iov[p.iov_first..].ptr,
                        .iovlen = 0,
                        .control = null,
                        .controllen = 0,
                        .flags = 0,
                    },
                    .len = 0,
                };
                m += 1;
                merged = 0;
            }
            io.messages[m - 1].packets += 1;
            io.msgvec[m - 1].hdr.iovlen += @intCast(p.iov_count);
            merged += p.size;
        }
        for (first_message..m) |j| {
            if (io.messages[j].packets < 2) continue;
            writeSegmentControl(&io.control[j], @intCast(io.messages[j].segment_size));
            io.msgvec[j].hdr.control = &io.control[j];
            io.msgvec[j].hdr.controllen = cmsg_space;
        }
        return m;
    }

    fn sendBatch(self: *Stream, n: usize) void {
        if (self.byte_stream) return self.sendBatchStream(n);
        const io = &self.io;
        assert(n > 0 and n <= io.batch_limit);
        io.done_count = 0;
        var first_packet: usize = 0;
        var first_message: usize = 0;
        var message_count = self.prepareMessages(0, n, 0, io.gso.allowed());
        var blocked: u32 = 0;
        var calls: u32 = 0;
        while (first_message < message_count) : (calls += 1) {
            assert(calls < 2 * batch_max + blocked_attempts_max * 2 + 4);
            const rc = linux.syscall4(
                .sendmmsg,
                @as(usize, @bitCast(@as(isize, self.fd))),
                @intFromPtr(&io.msgvec[first_message]),
                message_count - first_message,
                linux.MSG.DONTWAIT,
            );
            const err = linux.E.init(rc);
            if (err == .SUCCESS) {
                const sent: usize = rc;
                assert(sent > 0 and sent <= message_count - first_message);
                io.gso.onSuccess();
                self.setStat(.gso_state, @intFromEnum(io.gso.state));
                self.addStat(.batches, 1);
                for (first_message..first_message + sent) |j| {
                    const msg = io.messages[j];
                    if (msg.packets > 1) self.addStat(.gso_messages, 1);
                    for (msg.first_packet..msg.first_packet + msg.packets) |i| self.packetDone(i, 0);
                }
                first_message += sent;
                first_packet = io.messages[first_message - 1].first_packet + io.messages[first_message - 1].packets;
                blocked = 0;
                continue;
            }
            switch (err) {
                .INTR => continue,
                .AGAIN, .NOBUFS => {
                    if (err == .AGAIN) {
                        self.addStat(.would_block, 1);
                        var fds = [_]posix.pollfd{.{ .fd = self.fd, .events = posix.POLL.OUT, .revents = 0 }};
                        _ = posix.poll(&fds, blocked_poll_ms) catch {};
                    } else {
                        self.addStat(.no_buffers, 1);
                        std.Thread.sleep(no_buffers_sleep_ns);
                    }
                    blocked += 1;
                    if (self.stopping.load(.acquire)) {
                        // stop() reports every group still queued.
                        self.finishBatch();
                        return;
                    }
                    if (blocked < blocked_attempts_max) continue;
                    // No progress for too long: give up on this message.
                    blocked = 0;
                },
                else => {},
            }
            const msg = io.messages[first_message];
            const real_error = err != .AGAIN and err != .NOBUFS;
            if (real_error and io.gso.onError(msg.packets > 1)) {
                self.setStat(.gso_state, @intFromEnum(io.gso.state));
                message_count = self.prepareMessages(first_packet, n, first_message, false);
                continue;
            }
            self.setStat(.gso_state, @intFromEnum(io.gso.state));
            const errno: u32 = @intFromEnum(err);
            for (msg.first_packet..msg.first_packet + msg.packets) |i| self.packetDone(i, errno);
            first_message += 1;
            first_packet = msg.first_packet + msg.packets;
        }
        self.finishBatch();
    }

    /// `sendBatch` on a TCP connection: the batch's segments, in order, by
    /// `sendmsg` calls of at most `iov_max` segments; a partial write is
    /// resumed where it stopped (a packet cut short would break the framing of
    /// every packet after it), so a full socket is waited out until stop().
    /// An error (the peer gone: EPIPE, ECONNRESET) fails the rest of the batch.
    fn sendBatchStream(self: *Stream, n: usize) void {
        const io = &self.io;
        assert(n > 0 and n <= io.batch_limit);
        io.done_count = 0;
        var iov_at: usize = io.packets[0].iov_first;
        const iov_end: usize = io.packets[n - 1].iov_first + io.packets[n - 1].iov_count;
        var packet: usize = 0;
        var packet_left: usize = io.packets[0].size;
        // Each pass writes bytes, waits one poll, or ends the batch.
        while (packet < n) {
            const msg: linux.msghdr_const = .{
                .name = null,
                .namelen = 0,
                .iov = io.iov[iov_at..].ptr,
                .iovlen = @intCast(@min(iov_end - iov_at, iov_max)),
                .control = null,
                .controllen = 0,
                .flags = 0,
            };
            const rc = linux.sendmsg(self.fd, &msg, linux.MSG.DONTWAIT | linux.MSG.NOSIGNAL);
            const err = linux.E.init(rc);
            switch (err) {
                .SUCCESS => {
                    self.addStat(.batches, 1);
                    var left: usize = rc;
                    while (left > 0) {
                        assert(packet < n);
                        const take = @min(left, packet_left);
                        left -= take;
                        packet_left -= take;
                        if (packet_left == 0) {
                            self.packetDone(packet, 0);
                            packet += 1;
                            if (packet < n) packet_left = io.packets[packet].size;
                        }
                    }
                    left = rc;
                    while (left > 0) {
                        const seg = &io.iov[iov_at];
                        if (seg.len <= left) {
                            left -= seg.len;
                            iov_at += 1;
                        } else {
                            seg.base += left;
                            seg.len -= left;
                            left = 0;
                        }
                    }
                    // Empty packets (none in practice) have nothing to write.
                    while (packet < n and packet_left == 0) {
                        self.packetDone(packet, 0);
                        packet += 1;
                        if (packet < n) packet_left = io.packets[packet].size;
                    }
                },
                .INTR => {},
                .AGAIN, .NOBUFS => {
                    self.addStat(.would_block, 1);
                    var fds = [_]posix.pollfd{.{ .fd = self.fd, .events = posix.POLL.OUT, .revents = 0 }};
                    _ = posix.poll(&fds, blocked_poll_ms) catch {};
                    if (self.stopping.load(.acquire)) {
                        // stop() reports every group still queued.
                        self.finishBatch();
                        return;
                    }
                },
                else => {
                    const errno: u32 = @intFromEnum(err);
                    while (packet < n) : (packet += 1) self.packetDone(packet, errno);
                },
            }
        }
        self.finishBatch();
    }

    /// Accounts one packet: bytes or error to its group, completion if last.
    fn packetDone(self: *Stream, index: usize, errno: u32) void {
        const io = &self.io;
        const p = io.packets[index];
        const group = self.slotAt(p.group);
        if (errno == 0) {
            group.bytes_sent += p.size;
            self.addStat(.packets, 1);
            self.addStat(.bytes, p.size);
        } else {
            self.addStat(.errors, 1);
            if (group.status == 0) {
                group.status = @intFromEnum(status.Status.system_error);
                group.errno = errno;
            }
        }
        if (p.last) {
            io.done_groups[io.done_count] = p.group;
            io.done_count += 1;
        }
    }

    /// Publishes the groups that completed in this batch.
    fn finishBatch(self: *Stream) void {
        const io = &self.io;
        if (io.done_count == 0) return;
        self.mutex.lock();
        for (io.done_groups[0..io.done_count]) |group| {
            assert(self.head == group);
            const first = self.slotAt(group);
            self.pushRecord(first);
            self.addStat(.heaps, first.group_end - group);
            self.addStat(.groups, 1);
            self.head = first.group_end;
        }
        io.done_count = 0;
        self.done.broadcast();
        self.mutex.unlock();
        self.ring();
    }
};

fn writeSegmentControl(buffer: *[cmsg_space]u8, segment_size: u16) void {
    // struct cmsghdr { size_t len; int level; int type; } then the data.
    @memset(buffer, 0);
    std.mem.writeInt(usize, buffer[0..8], 16 + @sizeOf(u16), builtin.cpu.arch.endian());
    std.mem.writeInt(i32, buffer[8..12], linux.IPPROTO.UDP, builtin.cpu.arch.endian());
    std.mem.writeInt(i32, buffer[12..16], linux.UDP.SEGMENT, builtin.cpu.arch.endian());
    std.mem.writeInt(u16, buffer[16..18], segment_size, builtin.cpu.arch.endian());
}

/// An old kernel without UDP_SEGMENT would ignore the control message and
/// send one giant datagram, so ask for the option before using it.
fn gsoSupported(fd: posix.socket_t) bool {
    const zero: c_int = 0;
    posix.setsockopt(fd, linux.IPPROTO.UDP, linux.UDP.SEGMENT, std.mem.asBytes(&zero)) catch return false;
    return true;
}

fn isMulticast(address: std.net.Address) bool {
    return switch (address.any.family) {
        posix.AF.INET => blk: {
            const bytes = std.mem.asBytes(&address.in.sa.addr);
            break :blk bytes[0] >= 224 and bytes[0] <= 239;
        },
        posix.AF.INET6 => address.in6.sa.addr[0] == 0xff,
        else => false,
    };
}

fn checkEndpoints(endpoints: []const std.net.Address, config: Config) Error!void {
    if (endpoints.len == 0 or endpoints.len > endpoints_max) return error.InvalidArgument;
    const family = endpoints[0].any.family;
    if (family != posix.AF.INET and family != posix.AF.INET6) return error.InvalidArgument;
    for (endpoints) |endpoint| {
        if (endpoint.any.family != family) return error.InvalidArgument;
        if (config.ttl != null and !isMulticast(endpoint)) return error.InvalidArgument;
    }
    if (config.interface_address) |address| {
        // Multicast v6 takes an interface index instead.
        if (config.ttl != null and family == posix.AF.INET6) return error.InvalidArgument;
        if (address.any.family != family) return error.InvalidArgument;
    }
    if (config.interface_index != 0 and (config.ttl == null or family != posix.AF.INET6)) return error.InvalidArgument;
}

/// Most segments one `sendmsg` takes (Linux's UIO_MAXIOV).
const iov_max = 1024;

/// A TCP socket connected to `endpoint` (blocking connect, then nonblocking).
fn connectTcp(endpoint: std.net.Address, config: Config) Error!posix.socket_t {
    const fd = try sys_error.socket(endpoint.any.family, posix.SOCK.STREAM | posix.SOCK.CLOEXEC, posix.IPPROTO.TCP);
    errdefer posix.close(fd);
    if (config.buffer_size > 0) {
        const size: c_int = @intCast(@min(config.buffer_size, std.math.maxInt(c_int)));
        try sys_error.setsockopt(fd, posix.SOL.SOCKET, posix.SO.SNDBUF, std.mem.asBytes(&size), "setsockopt SO_SNDBUF");
    }
    if (config.interface_address) |address| {
        var local = address;
        local.setPort(0);
        try sys_error.bind(fd, local);
    }
    var attempts: u32 = 0;
    while (true) : (attempts += 1) {
        const rc = linux.connect(fd, &endpoint.any, endpoint.getOsSockLen());
        const err = linux.E.init(rc);
        if (err == .SUCCESS) break;
        // A signal: the connect goes on in the kernel; wait for it (bounded).
        if (err == .INTR and attempts < 16) continue;
        if (err == .ISCONN) break;
        return sys_error.fail(err, "connect", endpoint);
    }
    // Batches are written whole, so Nagle's algorithm would only hold back
    // the end of a batch (often a heap's last packet) until the peer's ACK.
    const nodelay: c_int = 1;
    try sys_error.setsockopt(fd, posix.IPPROTO.TCP, linux.TCP.NODELAY, std.mem.asBytes(&nodelay), "setsockopt TCP_NODELAY");
    const flags = linux.fcntl(fd, linux.F.GETFL, 0);
    try sys_error.check(flags, "fcntl F_GETFL", null);
    // (SOCK_NONBLOCK is O_NONBLOCK on Linux.)
    try sys_error.check(linux.fcntl(fd, linux.F.SETFL, flags | linux.SOCK.NONBLOCK), "fcntl F_SETFL", null);
    return fd;
}

fn openSocket(family: posix.sa_family_t, config: Config) Error!posix.socket_t {
    const fd = try sys_error.socket(family, posix.SOCK.DGRAM | posix.SOCK.CLOEXEC | posix.SOCK.NONBLOCK, posix.IPPROTO.UDP);
    errdefer posix.close(fd);
    if (config.buffer_size > 0) {
        const size: c_int = @intCast(@min(config.buffer_size, std.math.maxInt(c_int)));
        try sys_error.setsockopt(fd, posix.SOL.SOCKET, posix.SO.SNDBUF, std.mem.asBytes(&size), "setsockopt SO_SNDBUF");
    }
    if (config.ttl) |ttl| {
        const value: c_int = ttl;
        if (family == posix.AF.INET) {
            try sys_error.setsockopt(fd, linux.SOL.IP, linux.IP.MULTICAST_TTL, std.mem.asBytes(&value), "setsockopt IP_MULTICAST_TTL");
            if (config.interface_address) |address| {
                try sys_error.setsockopt(fd, linux.SOL.IP, linux.IP.MULTICAST_IF, std.mem.asBytes(&address.in.sa.addr), "setsockopt IP_MULTICAST_IF");
            }
        } else {
            try sys_error.setsockopt(fd, linux.SOL.IPV6, linux.IPV6.MULTICAST_HOPS, std.mem.asBytes(&value), "setsockopt IPV6_MULTICAST_HOPS");
            if (config.interface_index != 0) {
                const index: c_uint = config.interface_index;
                try sys_error.setsockopt(fd, linux.SOL.IPV6, linux.IPV6.MULTICAST_IF, std.mem.asBytes(&index), "setsockopt IPV6_MULTICAST_IF");
            }
        }
    } else if (config.interface_address) |address| {
        var local = address;
        local.setPort(0);
        try sys_error.bind(fd, local);
    }
    return fd;
}

// ---------------------------------------------------------------------------
// Tests: loopback only (127.0.0.1 and ::1), everything with timeouts.

const testing = std.testing;

const Receiver = struct {
    fd: posix.socket_t,
    address: std.net.Address,

    fn open(ip: []const u8) !Receiver {
        const bind_address = try std.net.Address.parseIp(ip, 0);
        const fd = try posix.socket(bind_address.any.family, posix.SOCK.DGRAM | posix.SOCK.CLOEXEC, posix.IPPROTO.UDP);
        errdefer posix.close(fd);
        const size: c_int = 8 << 20;
        posix.setsockopt(fd, posix.SOL.SOCKET, posix.SO.RCVBUF, std.mem.asBytes(&size)) catch {};
        try posix.bind(fd, &bind_address.any, bind_address.getOsSockLen());
        var address = bind_address;
        var len = address.getOsSockLen();
        try posix.getsockname(fd, &address.any, &len);
        return .{ .fd = fd, .address = address };
    }

    fn close(self: Receiver) void {
        posix.close(self.fd);
    }

    /// One datagram, or error.Timeout.
    fn recv(self: Receiver, buffer: []u8, timeout_ms: i32) !usize {
        var fds = [_]posix.pollfd{.{ .fd = self.fd, .events = posix.POLL.IN, .revents = 0 }};
        if (try posix.poll(&fds, timeout_ms) == 0) return error.Timeout;
        return posix.recv(self.fd, buffer, 0);
    }
};

fn flavour48() Flavour {
    return Flavour.init(4, 64, 48, 0) catch unreachable;
}

fn immediateItem(id: u64, value: u64) ItemRecord {
    return .{ .id = id, .value = value, .length = 0, .flags = send_heap.item_flag_immediate };
}

fn addressedItem(id: u64, data: []const u8) ItemRecord {
    return .{ .id = id, .value = @intFromPtr(data.ptr), .length = data.len, .flags = 0 };
}

/// Receives the packets `Packetiser` makes of `items` and compares them byte for byte.
fn expectHeapReceived(receiver: Receiver, items: []const ItemRecord, flavour: Flavour, cnt: u64, packet_size_max: u64) !u64 {
    var gen = try Packetiser.init(items, flavour, cnt, packet_size_max, false);
    var expected: [packet_size_limit]u8 = undefined;
    var got: [packet_size_limit]u8 = undefined;
    var bytes: u64 = 0;
    var packets: u32 = 0;
    while (gen.hasNext()) : (packets += 1) {
        const n = try gen.nextInto(&expected);
        const m = try receiver.recv(&got, 2000);
        try testing.expectEqualSlices(u8, expected[0..n], got[0..m]);
        bytes += n;
    }
    return bytes;
}

fn waitRecords(stream: *Stream, out: []Completion) !void {
    var have: usize = 0;
    var rounds: u32 = 0;
    while (have < out.len) : (rounds += 1) {
        try testing.expect(rounds < 100);
        try stream.wait(5000);
        have += stream.poll(out[have..]);
    }
}

test "GSO fallback state machine" {
    var gso = Gso{};
    try testing.expect(gso.allowed());
    try testing.expect(!gso.onError(false)); // not a GSO message: nothing to retry
    try testing.expect(gso.allowed());
    try testing.expect(gso.onError(true)); // retry without GSO
    try testing.expectEqual(Gso.State.probe, gso.state);
    try testing.expect(!gso.allowed());
    try testing.expect(!gso.onError(false)); // failed without GSO too
    try testing.expectEqual(Gso.State.enabled, gso.state);
    try testing.expect(gso.onError(true));
    gso.onSuccess(); // works without GSO: disable for good
    try testing.expectEqual(Gso.State.disabled, gso.state);
    try testing.expect(!gso.onError(true));
    gso.onSuccess();
    try testing.expectEqual(Gso.State.disabled, gso.state);
}

test "loopback: datagrams are the packetiser's packets, completions carry tokens and bytes" {
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{});
    defer stream.destroy();

    const big = try testing.allocator.alloc(u8, 20000);
    defer testing.allocator.free(big);
    for (big, 0..) |*b, i| b.* = @truncate(i *% 7);
    const heap_a = [_]ItemRecord{ immediateItem(0x1600, 12345), addressedItem(0x1601, big) };
    const heap_b = [_]ItemRecord{immediateItem(protocol.id_stream_ctrl, 0)};
    const heap_c = [_]ItemRecord{ addressedItem(0x1000, big[0..1000]), immediateItem(0x1001, 5), addressedItem(0x1002, big[1000..5000]) };
    const f = flavour48();
    var cnts: [1]u64 = undefined;
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap_a, .flavour = f }} }, .serial, 101, &cnts);
    try testing.expectEqual(@as(u64, 1), cnts[0]);
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap_b, .flavour = f }} }, .serial, 102, &cnts);
    try testing.expectEqual(@as(u64, 2), cnts[0]);
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap_c, .flavour = f, .cnt = 99 }} }, .serial, 103, &.{});

    const bytes_a = try expectHeapReceived(receiver, &heap_a, f, 1, 1472);
    const bytes_b = try expectHeapReceived(receiver, &heap_b, f, 2, 1472);
    const bytes_c = try expectHeapReceived(receiver, &heap_c, f, 99, 1472);
    var records: [3]Completion = undefined;
    try waitRecords(stream, &records);
    const expected = [_][2]u64{ .{ 101, bytes_a }, .{ 102, bytes_b }, .{ 103, bytes_c } };
    for (records, expected) |record, e| {
        try testing.expectEqual(e[0], record.token);
        try testing.expectEqual(e[1], record.bytes_sent);
        try testing.expectEqual(@as(u64, 0), record.status);
    }
    try stream.flush(1000);
    var stats: [stat_names.len]u64 = undefined;
    _ = stream.statValues(&stats);
    try testing.expectEqual(@as(u64, 3), stats[@intFromEnum(Stat.heaps)]);
    try testing.expectEqual(bytes_a + bytes_b + bytes_c, stats[@intFromEnum(Stat.bytes)]);
    try testing.expectEqual(@as(u64, 0), stats[@intFromEnum(Stat.errors)]);
    if (stats[@intFromEnum(Stat.gso_state)] == @intFromEnum(Gso.State.enabled)) {
        // 14 equal 1472-byte packets of heap A went out merged.
        try testing.expect(stats[@intFromEnum(Stat.gso_messages)] >= 1);
    }
}

test "loopback without GSO and over IPv6 gives the same bytes" {
    for ([_][]const u8{ "127.0.0.1", "::1" }) |ip| {
        const receiver = Receiver.open(ip) catch |err| {
            // No IPv6 loopback on this machine.
            if (std.mem.eql(u8, ip, "::1")) continue;
            return err;
        };
        defer receiver.close();
        const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .gso = false, .packet_size_max = 9000 });
        defer stream.destroy();
        const data = try testing.allocator.alloc(u8, 16384);
        defer testing.allocator.free(data);
        @memset(data, 0xab);
        const f = Flavour.init(4, 64, 40, 0) catch unreachable;
        const heap = [_]ItemRecord{ immediateItem(0x1600, 0), addressedItem(0x3300, data) };
        try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap, .flavour = f }} }, .serial, 7, &.{});
        // Tutorial 11: 9000 + 7480 bytes.
        try testing.expectEqual(@as(u64, 16480), try expectHeapReceived(receiver, &heap, f, 1, 9000));
        var record: [1]Completion = undefined;
        try waitRecords(stream, &record);
        try testing.expectEqual(@as(u64, 16480), record[0].bytes_sent);
        var stats: [stat_names.len]u64 = undefined;
        _ = stream.statValues(&stats);
        try testing.expectEqual(@as(u64, 0), stats[@intFromEnum(Stat.gso_messages)]);
        try testing.expectEqual(@as(u64, @intFromEnum(Gso.State.disabled)), stats[@intFromEnum(Stat.gso_state)]);
    }
}

/// (cnt, payload offset, payload length) of a received packet (64-48).
fn packetKey(packet: []const u8) [3]u64 {
    const f = flavour48();
    const n: usize = @intCast(std.mem.readInt(u64, packet[0..8], .big) & 0xffff);
    var key = [3]u64{ 0, 0, 0 };
    for (0..n) |i| {
        const word = std.mem.readInt(u64, packet[8 + 8 * i ..][0..8], .big);
        if (!Flavour.pointerIsImmediate(word)) continue;
        switch (f.pointerId(word)) {
            protocol.id_heap_cnt => key[0] = f.pointerValue(word),
            protocol.id_payload_offset => key[1] = f.pointerValue(word),
            protocol.id_payload_length => key[2] = f.pointerValue(word),
            else => {},
        }
    }
    return key;
}

test "batch limit: about 2 MiB of whole GSO messages, between 64 and 256 packets" {
    try testing.expectEqual(@as(u32, 231), batchLimit(9000)); // 33 messages of 7
    try testing.expectEqual(@as(u32, 220), batchLimit(1472)); // 5 messages of 44
    try testing.expectEqual(@as(u32, 256), batchLimit(512)); // 4 messages of 64 segments
    try testing.expectEqual(@as(u32, 64), batchLimit(65507));
    try testing.expectEqual(@as(u32, 64), batchLimit(packet_size_limit));
    var size: u32 = send_heap.packet_size_min;
    while (size <= packet_size_limit) : (size += 97) {
        const limit = batchLimit(size);
        try testing.expect(limit >= batch_group_cut and limit <= batch_max);
    }
}

test "batches: a group of at least 64 packets ends its batch; GSO messages hold at most 64 segments" {
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    const data = try testing.allocator.alloc(u8, 94_400);
    defer testing.allocator.free(data);
    @memset(data, 1);
    const items = [_]ItemRecord{addressedItem(0x3300, data)};
    const f = flavour48();
    const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .packet_size_max = 512 });
    defer stream.destroy();
    // Two groups of about 200 packets, queued back to back: one batch each
    // (without the cut at the group end the first batch would take 256 packets).
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &items, .flavour = f }} }, .serial, 1, &.{});
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &items, .flavour = f }} }, .serial, 2, &.{});
    var records: [2]Completion = undefined;
    try waitRecords(stream, &records);
    try testing.expectEqual(@as(u64, 1), records[0].token);
    try testing.expectEqual(@as(u64, 2), records[1].token);
    var gen = try Packetiser.init(&items, f, 1, 512, false);
    const packets = gen.totals().packets;
    try testing.expect(packets > 128 and packets < 256);
    var stats: [stat_names.len]u64 = undefined;
    _ = stream.statValues(&stats);
    try testing.expectEqual(2 * packets, stats[@intFromEnum(Stat.packets)]);
    try testing.expectEqual(@as(u64, 2), stats[@intFromEnum(Stat.batches)]);
    if (stats[@intFromEnum(Stat.gso_state)] == @intFromEnum(Gso.State.enabled)) {
        // Full-size packets merge 64 to a message (the kernel's limit), not 127 (65507 bytes).
        const per_group = (packets + gso_segments_max - 1) / gso_segments_max;
        try testing.expectEqual(2 * per_group, stats[@intFromEnum(Stat.gso_messages)]);
    }
}

test "V6 group modes: ROUND_ROBIN interleaves packets, SERIAL does not" {
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    const a = [_]u8{1} ** 8;
    const b = [_]u8{2} ** 72;
    const c = [_]u8{3} ** 136;
    const items_a = [_]ItemRecord{addressedItem(0x1000, &a)};
    const items_b = [_]ItemRecord{addressedItem(0x1000, &b)};
    const items_c = [_]ItemRecord{addressedItem(0x1000, &c)};
    const f = flavour48();
    const group = [_]HeapSpec{
        .{ .items = &items_a, .flavour = f },
        .{ .items = &items_b, .flavour = f },
        .{ .items = &items_c, .flavour = f },
    };
    const round_robin = [_][3]u64{ .{ 1, 0, 8 }, .{ 2, 0, 40 }, .{ 3, 0, 40 }, .{ 2, 40, 32 }, .{ 3, 40, 48 }, .{ 3, 88, 48 } };
    const serial = [_][3]u64{ .{ 1, 0, 8 }, .{ 2, 0, 40 }, .{ 2, 40, 32 }, .{ 3, 0, 40 }, .{ 3, 40, 48 }, .{ 3, 88, 48 } };
    for ([_]GroupMode{ .round_robin, .serial }, [_][]const [3]u64{ &round_robin, &serial }) |mode, expected| {
        const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .packet_size_max = 88 });
        defer stream.destroy();
        var cnts: [3]u64 = undefined;
        try stream.send(SliceHeaps{ .heaps = &group }, mode, 55, &cnts);
        try testing.expectEqualSlices(u64, &.{ 1, 2, 3 }, &cnts);
        var buffer: [128]u8 = undefined;
        for (expected) |key| {
            const n = try receiver.recv(&buffer, 2000);
            try testing.expectEqual(key, packetKey(buffer[0..n]));
        }
        var record: [1]Completion = undefined;
        try waitRecords(stream, &record);
        try testing.expectEqual(@as(u64, 55), record[0].token);
        try testing.expectEqual(@as(u64, 56 + 88 + 72 + 88 + 88 + 88), record[0].bytes_sent);
    }
}

test "V7 cnt sequence: explicit cnts do not advance it, auto cnts wrap at HAB bits" {
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .heaps_max = 8 });
    defer stream.destroy();
    const f = flavour48();
    const start = [_]ItemRecord{immediateItem(protocol.id_stream_ctrl, 0)};
    const heap = HeapSpec{ .items = &start, .flavour = f };
    var explicit = heap;
    explicit.cnt = 0x9876543210AB;
    var cnts: [6]u64 = undefined;
    try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 0, cnts[0..1]);
    try stream.setCntSequence(0x1111111111, 0x1234512345);
    try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 1, cnts[1..2]);
    try stream.send(SliceHeaps{ .heaps = &.{explicit} }, .serial, 2, cnts[2..3]);
    try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 3, cnts[3..4]);
    try stream.setCntSequence((1 << 48) - 1, 1);
    try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 4, cnts[4..5]);
    try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 5, cnts[5..6]);
    const expected = [_]u64{ 1, 0x1111111111, 0x9876543210AB, 0x2345623456, (1 << 48) - 1, 0 };
    try testing.expectEqualSlices(u64, &expected, &cnts);
    var buffer: [128]u8 = undefined;
    for (expected) |cnt| {
        const n = try receiver.recv(&buffer, 2000);
        try testing.expectEqual(@as(usize, 57), n);
        try testing.expectEqual(cnt, packetKey(buffer[0..n])[0]);
    }
    try testing.expectError(error.InvalidArgument, stream.setCntSequence(1, 0));
    explicit.cnt = 1 << 48;
    try testing.expectError(error.InvalidCnt, stream.send(SliceHeaps{ .heaps = &.{explicit} }, .serial, 6, &.{}));
    var records: [6]Completion = undefined;
    try waitRecords(stream, &records);
    for (records, 0..) |record, i| try testing.expectEqual(@as(u64, i), record.token);
}

test "queue_full, undrained completions count, stop reports pending groups" {
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    const f = flavour48();
    const data = try testing.allocator.alloc(u8, 256 * 1024);
    defer testing.allocator.free(data);
    @memset(data, 0);
    const large = [_]ItemRecord{addressedItem(0x1000, data)};
    const small = [_]ItemRecord{immediateItem(protocol.id_stream_ctrl, 0)};
    {
        // 1 MB/s: a 256 KiB heap takes about 0.2 s after the first burst.
        const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .rate = 1e6, .heaps_max = 2 });
        defer stream.destroy();
        const heap = HeapSpec{ .items = &large, .flavour = f };
        try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 1, &.{});
        try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 2, &.{});
        try testing.expectError(error.QueueFull, stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 3, &.{}));
        try testing.expectError(error.QueueFull, stream.send(SliceHeaps{ .heaps = &.{ heap, heap, heap } }, .round_robin, 4, &.{}));
        // Not everything is out yet.
        try testing.expectError(error.Empty, stream.flush(1));
        stream.stop();
        stream.stop();
        var records: [4]Completion = undefined;
        try testing.expectEqual(@as(usize, 2), stream.poll(&records));
        for (records[0..2], [_]u64{ 1, 2 }) |record, token| {
            try testing.expectEqual(token, record.token);
            try testing.expectEqual(@as(i64, @intFromEnum(status.Status.stopped)), @as(i64, @bitCast(record.status)));
            try testing.expect(record.bytes_sent < 256 * 1024);
        }
        try testing.expectError(error.Stopped, stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 5, &.{}));
        try testing.expectError(error.Stopped, stream.wait(10));
        try stream.flush(10);
        var stats: [stat_names.len]u64 = undefined;
        _ = stream.statValues(&stats);
        try testing.expectEqual(@as(u64, 2), stats[@intFromEnum(Stat.queue_full)]);
    }
    {
        const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .heaps_max = 2 });
        defer stream.destroy();
        const heap = HeapSpec{ .items = &small, .flavour = f };
        try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 1, &.{});
        try stream.flush(2000);
        // Sent, but its record is not drained: one slot left.
        try stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 2, &.{});
        try stream.flush(2000);
        try testing.expectError(error.QueueFull, stream.send(SliceHeaps{ .heaps = &.{heap} }, .serial, 3, &.{}));
        var records: [2]Completion = undefined;
        try testing.expectEqual(@as(usize, 2), stream.poll(&records));
        try stream.send(SliceHeaps{ .heaps = &.{ heap, heap } }, .round_robin, 4, &.{});
        try stream.flush(2000);
        try testing.expectEqual(@as(usize, 1), stream.poll(&records));
        try testing.expectEqual(@as(u64, 4), records[0].token);
        try testing.expectEqual(@as(u64, 2 * 57), records[0].bytes_sent);
    }
}

test "the rate limiter paces a real stream" {
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    // 20 MB/s with 64 KiB bursts: 1 MiB needs at least (1 MiB - 64 KiB) / 20e6 = 49 ms.
    const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .rate = 20e6 });
    defer stream.destroy();
    const data = try testing.allocator.alloc(u8, 1 << 20);
    defer testing.allocator.free(data);
    @memset(data, 1);
    const heap = [_]ItemRecord{addressedItem(0x1000, data)};
    var timer = try std.time.Timer.start();
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap, .flavour = flavour48() }} }, .serial, 1, &.{});
    try stream.flush(10_000);
    const elapsed = timer.read();
    try testing.expect(elapsed >= 45 * std.time.ns_per_ms);
    var stats: [stat_names.len]u64 = undefined;
    _ = stream.statValues(&stats);
    try testing.expect(stats[@intFromEnum(Stat.sleeps)] >= 10);
    // A per-heap rate of 0 (unlimited) overrides the stream's rate.
    timer.reset();
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap, .flavour = flavour48(), .rate = 0 }} }, .serial, 2, &.{});
    try stream.flush(10_000);
    try testing.expect(timer.read() < 2 * std.time.ns_per_s);
}

var doorbell_calls = std.atomic.Value(u32).init(0);
var doorbell_handle = std.atomic.Value(u32).init(0);

fn testDoorbell(handle: u32) callconv(.c) void {
    doorbell_handle.store(handle, .release);
    _ = doorbell_calls.fetchAdd(1, .acq_rel);
}

test "doorbell rings once per arm" {
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{});
    defer stream.destroy();
    stream.handle = 77;
    stream.setNotify(&testDoorbell);
    doorbell_calls.store(0, .release);
    stream.arm();
    try testing.expectEqual(@as(u32, 0), doorbell_calls.load(.acquire));
    const heap = [_]ItemRecord{immediateItem(protocol.id_stream_ctrl, 0)};
    const spec = HeapSpec{ .items = &heap, .flavour = flavour48() };
    try stream.send(SliceHeaps{ .heaps = &.{spec} }, .serial, 1, &.{});
    try stream.flush(2000);
    try stream.send(SliceHeaps{ .heaps = &.{spec} }, .serial, 2, &.{});
    try stream.flush(2000);
    try testing.expectEqual(@as(u32, 1), doorbell_calls.load(.acquire));
    try testing.expectEqual(@as(u32, 77), doorbell_handle.load(.acquire));
    // Records are waiting: arming rings at once.
    stream.arm();
    try testing.expectEqual(@as(u32, 2), doorbell_calls.load(.acquire));
    var records: [2]Completion = undefined;
    try testing.expectEqual(@as(usize, 2), stream.poll(&records));
    stream.setNotify(null);
    stream.arm();
    try stream.send(SliceHeaps{ .heaps = &.{spec} }, .serial, 3, &.{});
    try stream.flush(2000);
    try testing.expectEqual(@as(u32, 2), doorbell_calls.load(.acquire));
}

test "bad configurations and arguments are errors" {
    const v4 = try std.net.Address.parseIp("127.0.0.1", 9);
    const v6 = try std.net.Address.parseIp("::1", 9);
    const alloc = testing.allocator;
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{}, .{}));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{ v4, v6 }, .{}));
    try testing.expectError(error.PacketTooSmall, Stream.create(alloc, &.{v4}, .{ .packet_size_max = 55 }));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .packet_size_max = packet_size_limit + 1 }));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .heaps_max = 0 }));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .rate = -1 }));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .rate = std.math.nan(f64) }));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .burst_rate_ratio = 0.5 }));
    // A TTL means multicast: unicast endpoints are refused.
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .ttl = 1 }));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .interface_address = v6 }));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .cpu = 10000 }));
    try testing.expectError(error.InvalidArgument, Stream.create(alloc, &.{v4}, .{ .cpu = affinity.cores_limit }));

    const stream = try Stream.create(alloc, &.{v4}, .{ .heaps_max = 2 });
    defer stream.destroy();
    const heap = [_]ItemRecord{immediateItem(protocol.id_stream_ctrl, 0)};
    var spec = HeapSpec{ .items = &heap, .flavour = flavour48() };
    try testing.expectError(error.InvalidArgument, stream.send(SliceHeaps{ .heaps = &.{} }, .serial, 1, &.{}));
    spec.substream = 1;
    try testing.expectError(error.InvalidArgument, stream.send(SliceHeaps{ .heaps = &.{spec} }, .serial, 1, &.{}));
    spec.substream = 0;
    spec.rate = std.math.nan(f64);
    try testing.expectError(error.InvalidArgument, stream.send(SliceHeaps{ .heaps = &.{spec} }, .serial, 1, &.{}));
    spec.rate = 1e-9;
    try testing.expectError(error.InvalidArgument, stream.send(SliceHeaps{ .heaps = &.{spec} }, .serial, 1, &.{}));
    spec.rate = -1;
    const bad_items = [_]ItemRecord{immediateItem(0x8000, 0)};
    const bad = HeapSpec{ .items = &bad_items, .flavour = flavour48() };
    try testing.expectError(error.InvalidArgument, stream.send(SliceHeaps{ .heaps = &.{ spec, bad } }, .serial, 1, &.{}));
    // Nothing of the failed group was queued, and the cnt sequence did not move.
    var cnts: [1]u64 = undefined;
    try stream.send(SliceHeaps{ .heaps = &.{spec} }, .serial, 2, &cnts);
    try testing.expectEqual(@as(u64, 1), cnts[0]);
    var record: [1]Completion = undefined;
    try waitRecords(stream, &record);
    try testing.expectEqual(@as(u64, 2), record[0].token);
    try testing.expectError(error.Empty, stream.wait(1));
}

test "packets too big for UDP fail the group with EMSGSIZE, like spead2's test_send_error" {
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .packet_size_max = 100_000, .buffer_size = 0 });
    defer stream.destroy();
    const data = try testing.allocator.alloc(u8, 256 * 1024);
    defer testing.allocator.free(data);
    @memset(data, 0);
    const heap = [_]ItemRecord{addressedItem(0x1000, data)};
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap, .flavour = flavour48() }} }, .serial, 9, &.{});
    var record: [1]Completion = undefined;
    try waitRecords(stream, &record);
    try testing.expectEqual(@as(u64, 9), record[0].token);
    try testing.expectEqual(@as(i64, @intFromEnum(status.Status.system_error)), @as(i64, @bitCast(record[0].status)));
    try testing.expectEqual(@as(u64, @intFromEnum(linux.E.MSGSIZE)), record[0].errno);
    // The stream goes on working.
    const small = [_]ItemRecord{immediateItem(protocol.id_stream_ctrl, 0)};
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &small, .flavour = flavour48() }} }, .serial, 10, &.{});
    try waitRecords(stream, &record);
    try testing.expectEqual(@as(u64, 0), record[0].status);
    try testing.expectEqual(@as(u64, 57), record[0].bytes_sent);
}

test "the I/O thread pins itself to the configured core" {
    const allowed = try std.posix.sched_getaffinity(0);
    if (allowed[0] & 1 == 0) return error.SkipZigTest; // core 0 is outside our cpuset
    const receiver = try Receiver.open("127.0.0.1");
    defer receiver.close();
    const stream = try Stream.create(testing.allocator, &.{receiver.address}, .{ .cpu = 0 });
    defer stream.destroy();
    const heap = [_]ItemRecord{immediateItem(protocol.id_stream_ctrl, 0)};
    try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap, .flavour = flavour48() }} }, .serial, 7, &.{});
    var record: [1]Completion = undefined;
    try waitRecords(stream, &record);
    try testing.expectEqual(@as(u64, 0), record[0].status);
    var stats: [stat_names.len]u64 = undefined;
    _ = stream.statValues(&stats);
    try testing.expectEqual(@as(u64, 0), stats[@intFromEnum(Stat.affinity_failures)]);
    try testing.expectEqualStrings("affinity_failures", stat_names[@intFromEnum(Stat.affinity_failures)]);
}

test "TCP: packets back to back on one connection, byte for byte, across a full socket; a refused connect is recorded" {
    const listen_address = try std.net.Address.parseIp("127.0.0.1", 0);
    var server = try listen_address.listen(.{});
    defer server.deinit();
    // A small send buffer, so that the socket fills and writes are partial.
    const stream = try Stream.createTcp(testing.allocator, server.listen_address, .{ .packet_size_max = 9000, .buffer_size = 4096, .heaps_max = 8 });
    defer stream.destroy();
    const conn = try server.accept();
    defer conn.stream.close();
    const data = try testing.allocator.alloc(u8, 300_000);
    defer testing.allocator.free(data);
    for (data, 0..) |*b, i| b.* = @truncate(i *% 7);
    const f = flavour48();
    const heap = [_]ItemRecord{ immediateItem(0x1600, 5), addressedItem(0x3300, data) };
    const heaps = 3;
    for (0..heaps) |_| try stream.send(SliceHeaps{ .heaps = &.{.{ .items = &heap, .flavour = f }} }, .serial, 1, &.{});
    // Read everything back (the sender waits on the full socket meanwhile) and compare.
    var expected = std.ArrayList(u8).init(testing.allocator);
    defer expected.deinit();
    var buf: [packet_size_limit]u8 = undefined;
    for (0..heaps) |h| {
        var gen = try Packetiser.init(&heap, f, h + 1, 9000, false);
        while (gen.hasNext()) try expected.appendSlice(buf[0..try gen.nextInto(&buf)]);
    }
    const got = try testing.allocator.alloc(u8, expected.items.len);
    defer testing.allocator.free(got);
    var have: usize = 0;
    var reads: usize = 0;
    while (have < got.len) : (reads += 1) {
        try testing.expect(reads < 1_000_000);
        const n = try conn.stream.read(got[have..]);
        try testing.expect(n > 0);
        have += n;
    }
    try testing.expectEqualSlices(u8, expected.items, got);
    var records: [heaps]Completion = undefined;
    try waitRecords(stream, &records);
    for (records) |r| try testing.expectEqual(@as(u64, 0), r.status);

    // Nothing listens on a port just closed: connect is refused, errno kept.
    const closed = server.listen_address;
    server.deinit();
    server = try listen_address.listen(.{});
    try testing.expectError(error.SystemError, Stream.createTcp(testing.allocator, closed, .{}));
    try testing.expectEqual(@as(u16, @intFromEnum(linux.E.CONNREFUSED)), sys_error.get().errno);
}
