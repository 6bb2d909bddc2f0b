//! TCP reader (spead2's tcp_reader; docs/PROTOCOL.md §10): SPEAD packets back
//! to back on one byte stream, each framed by its header and PAYLOAD_LENGTH
//! (`packet.getPacketSize`). The reader listens, accepts one connection (the
//! listening socket is then closed, as spead2 closes its acceptor), reads into
//! a buffer of `buffer_packets` packets of `max_size`, and feeds every whole
//! packet of each read to the stream as one batch; a packet cut by a read is
//! carried over to the next. The peer closing the connection (or resetting
//! it) ends the data: the stream stops, as spead2's does at EOF.
//!
//! Bad bytes are counted, never fatal, and the reader tries to find the next
//! packet as spead2 does: a header that is not SPEAD (or has no
//! PAYLOAD_LENGTH) is counted and passed over 8 bytes at a time; a packet
//! longer than `max_size` is counted (`packets_rejected_oversize`) and its
//! bytes skipped; a packet whose declared length does not decode is counted and
//! passed over; a pointer table too long to fit in the buffer is counted as
//! oversize and the buffer dropped; a packet cut short by the end of the
//! connection counts as `packets_rejected_truncated`.
//!
//! The thread polls with a short timeout so stop() joins it promptly, whether
//! it waits for a connection or for data.
const std = @import("std");
const assert = std.debug.assert;
const posix = std.posix;
const linux = std.os.linux;
const protocol = @import("../core/protocol.zig");
const Error = @import("../core/status.zig").Error;
const sys_error = @import("../core/sys_error.zig");
const packet_mod = @import("packet.zig");
const recv_stream = @import("stream.zig");
const udp = @import("udp.zig");
const Stream = recv_stream.Stream;

/// spead2's tcp_reader::default_max_size.
pub const max_size_default: u32 = 65536;
/// spead2's tcp_reader::default_buffer_size (the socket's receive buffer).
pub const buffer_size_default: u32 = 208 * 1024;
/// Largest `max_size` accepted (the reader's buffer is a multiple of it).
pub const max_size_limit: u32 = 64 << 20;
pub const buffer_size_limit: u32 = 1 << 30;
/// The reader's buffer holds this many packets of `max_size` (spead2's
/// pkts_per_buffer), but at most `storage_cap` bytes and at least two packets.
pub const buffer_packets = 64;
/// A buffer the size of a core's L2 cache keeps each read's bytes in cache
/// until they are copied into their heaps: with 1 MiB heaps of 64 KiB packets
/// (bench/tcp.ts), the reader thread took 0.37-0.48 s per 1.07 GB at 512 KiB
/// against 0.45-0.61 s at spead2's 4 MiB (spead2_recv's thread: 0.32-0.47).
const storage_cap: usize = 512 << 10;
const poll_timeout_ms = 20;

pub const Options = struct {
    address: std.net.Address,
    max_size: u32 = max_size_default,
    buffer_size: u32 = buffer_size_default,
};

/// What the listening socket ended up with.
pub const Info = struct {
    port: u16,
    /// SO_RCVBUF as the kernel reports it (the accepted socket inherits it).
    buffer_size: u32,
};

// Socket options as the UDP reader sets and reads them.
const setInt = udp.setInt;
const readBufferSize = udp.readBufferSize;

/// The reader's buffer size for packets of at most `max_size` bytes.
fn storageSize(max_size: u32) usize {
    const m: usize = max_size;
    return @max(2 * m, @min(m * buffer_packets, storage_cap));
}

pub const TcpReader = struct {
    stream: *Stream,
    /// The listening socket until a connection is accepted, then -1.
    listen_fd: posix.socket_t,
    /// The connection, once accepted.
    conn_fd: posix.socket_t = -1,
    max_size: u32,
    storage: []u8,
    /// Unconsumed bytes are storage[head..tail].
    head: usize = 0,
    tail: usize = 0,
    /// Bytes of an oversize packet still to pass over.
    to_skip: u64 = 0,
    thread: std.Thread = undefined,
    stop_requested: std.atomic.Value(bool) = std.atomic.Value(bool).init(false),

    /// Opens, binds and listens, then starts the reader thread on `stream`.
    /// Port 0 binds an ephemeral port (see `Info.port`).
    pub fn add(stream: *Stream, options: Options) Error!Info {
        const family = options.address.any.family;
        if (family != posix.AF.INET and family != posix.AF.INET6) return error.InvalidArgument;
        if (options.max_size < protocol.header_size or options.max_size > max_size_limit) return error.InvalidArgument;
        if (options.buffer_size > buffer_size_limit) return error.InvalidArgument;

        const fd = try sys_error.socket(family, posix.SOCK.STREAM | posix.SOCK.CLOEXEC | posix.SOCK.NONBLOCK, posix.IPPROTO.TCP);
        errdefer posix.close(fd);
        // As asio's acceptor (spead2): the port can be reused at once after a close.
        try setInt(fd, posix.SOL.SOCKET, posix.SO.REUSEADDR, 1, "setsockopt SO_REUSEADDR");
        // As spead2: a refused size is not fatal; the kernel's value is reported.
        // Set before listen, so that the window is scaled for it.
        if (options.buffer_size > 0) setInt(fd, posix.SOL.SOCKET, posix.SO.RCVBUF, @intCast(options.buffer_size), "setsockopt SO_RCVBUF") catch {};
        try sys_error.bind(fd, options.address);
        try sys_error.check(linux.listen(fd, 1), "listen", options.address);
        var bound: std.net.Address = undefined;
        var bound_len: posix.socklen_t = @sizeOf(std.net.Address);
        try sys_error.check(linux.getsockname(fd, &bound.any, &bound_len), "getsockname", null);
        const buffer_size = try readBufferSize(fd);

        const allocator = stream.allocator;
        const self = allocator.create(TcpReader) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const storage = allocator.alloc(u8, storageSize(options.max_size)) catch return error.OutOfMemory;
        errdefer allocator.free(storage);
        self.* = .{ .stream = stream, .listen_fd = fd, .max_size = options.max_size, .storage = storage };
        try stream.addReader(.{ .ctx = self, .vtable = &vtable });
        return .{ .port = bound.getPort(), .buffer_size = @intCast(@max(buffer_size, 0)) };
    }

    const vtable: recv_stream.Reader.VTable = recv_stream.threadReaderVTable(TcpReader, "spead-tcp-recv", run, free);

    fn free(self: *TcpReader) void {
        if (self.listen_fd >= 0) posix.close(self.listen_fd);
        if (self.conn_fd >= 0) posix.close(self.conn_fd);
        const allocator = self.stream.allocator;
        allocator.free(self.storage);
        allocator.destroy(self);
    }

    fn running(self: *TcpReader) bool {
        return !self.stop_requested.load(.acquire) and !self.stream.isStopped();
    }

    /// Waits up to one poll timeout for `fd` to be readable, announcing
    /// heaps that are due meanwhile. False on timeout.
    fn waitReadable(self: *TcpReader, fd: posix.socket_t) bool {
        var fds = [_]posix.pollfd{.{ .fd = fd, .events = posix.POLL.IN, .revents = 0 }};
        const due = self.stream.pendingNotifyMs();
        if (due == 0) self.stream.signalIfDue();
        const timeout: i32 = if (due) |ms| @intCast(@max(1, @min(ms, poll_timeout_ms))) else poll_timeout_ms;
        const ready = posix.poll(&fds, timeout) catch {
            std.time.sleep(poll_timeout_ms * std.time.ns_per_ms);
            return false;
        };
        if (ready == 0) self.stream.signalIfDue();
        return ready > 0;
    }

    fn run(self: *TcpReader) void {
        self.stream.readerThreadStarted();
        // Each pass waits at most poll_timeout_ms (or backs off as long).
        while (self.conn_fd < 0) {
            if (!self.running()) return;
            if (!self.waitReadable(self.listen_fd)) continue;
            const rc = linux.accept4(self.listen_fd, null, null, posix.SOCK.CLOEXEC);
            switch (linux.E.init(rc)) {
                .SUCCESS => {
                    self.conn_fd = @intCast(rc);
                    posix.close(self.listen_fd);
                    self.listen_fd = -1;
                },
                // The peer gave up before the accept, or a signal: wait for another.
                .AGAIN, .INTR, .CONNABORTED, .PROTO => {},
                // Out of descriptors or memory: back off instead of spinning.
                else => std.time.sleep(poll_timeout_ms * std.time.ns_per_ms),
            }
        }
        while (self.running()) {
            self.makeRoom();
            const rc = linux.recvfrom(self.conn_fd, self.storage[self.tail..].ptr, self.storage.len - self.tail, linux.MSG.DONTWAIT, null, null);
            switch (linux.E.init(rc)) {
                .SUCCESS => {
                    // 0: the peer closed the connection.
                    if (!self.feed(rc, rc == 0)) break;
                },
                .AGAIN, .INTR => _ = self.waitReadable(self.conn_fd),
                // Reset (or any other failure of the connection): nothing more can come.
                else => {
                    _ = self.feed(0, true);
                    break;
                },
            }
        }
        // The stream has stopped: close our side now (as spead2's stop closes
        // the socket), not when the stream is destroyed.
        posix.close(self.conn_fd);
        self.conn_fd = -1;
    }

    /// Moves unconsumed bytes to the front when past half the buffer (as
    /// spead2), or when the buffer is full, so that a read has room.
    fn makeRoom(self: *TcpReader) void {
        if (self.head == self.tail) {
            self.head = 0;
            self.tail = 0;
            return;
        }
        if (self.head > self.storage.len / 2 or (self.tail == self.storage.len and self.head > 0)) {
            const len = self.tail - self.head;
            std.mem.copyForwards(u8, self.storage[0..len], self.storage[self.head..self.tail]);
            self.head = 0;
            self.tail = len;
        }
        // A buffer full of one pointer table is dropped by `process`.
        assert(self.tail < self.storage.len);
    }

    /// Feeds the whole packets of `received` new bytes as one batch; at the
    /// end of the data, stops the stream. Returns false once the stream has
    /// stopped.
    fn feed(self: *TcpReader, received: usize, end: bool) bool {
        self.tail += received;
        assert(self.tail <= self.storage.len);
        var batch: recv_stream.Batch = undefined;
        if (!self.stream.batchBegin(&batch)) return false;
        const go_on = self.process(&batch);
        if (end) {
            // What is left is a packet the peer did not finish (an oversize one
            // being skipped was counted already).
            if (go_on and self.to_skip == 0 and self.head < self.tail) batch.count(.packets_rejected_truncated);
            self.head = self.tail;
            batch.end_of_data = true;
        }
        const stopped = !go_on or end;
        self.stream.batchEnd(&batch);
        return !stopped;
    }

    /// Feeds every whole packet in storage[head..tail]. Returns false once
    /// the stream has stopped (a stop item).
    fn process(self: *TcpReader, batch: *recv_stream.Batch) bool {
        // Each pass consumes bytes or ends the loop.
        while (self.head < self.tail) {
            const avail = self.storage[self.head..self.tail];
            if (self.to_skip > 0) {
                const n: usize = @intCast(@min(self.to_skip, avail.len));
                self.head += n;
                self.to_skip -= n;
                continue;
            }
            switch (packet_mod.getPacketSize(avail)) {
                .incomplete => {
                    if (avail.len == self.storage.len) {
                        // A pointer table longer than the buffer: its length cannot be
                        // found. Drop the buffer and look for a header after it (spead2).
                        batch.count(.packets_rejected_oversize);
                        self.head = self.tail;
                    }
                    return true;
                },
                .invalid => {
                    batch.countDecodeReject(switch (packet_mod.decodeHeader(avail)) {
                        .rejected => |reason| reason,
                        .ok => .missing_items, // no PAYLOAD_LENGTH
                    });
                    self.head += protocol.header_size;
                },
                .size => |size| {
                    if (size > self.max_size) {
                        batch.count(.packets_rejected_oversize);
                        self.to_skip = size;
                        continue;
                    }
                    const n: usize = @intCast(size);
                    if (n > avail.len) return true;
                    self.head += n;
                    switch (packet_mod.decode(avail[0..n])) {
                        .rejected => |reason| batch.countDecodeReject(reason),
                        .ok => |packet| {
                            if (packet.size != n) {
                                batch.count(.packets_rejected_size_mismatch);
                                continue;
                            }
                            if (!batch.addPacket(packet)) return false;
                        },
                    }
                },
            }
        }
        return true;
    }
};

// ---------------------------------------------------------------------------
// Tests (loopback only)

const testing = std.testing;
const imm = packet_mod.imm;
const addr = packet_mod.addr;

const testStream = recv_stream.testStream;

/// A blocking client connection.
const Client = struct {
    fd: posix.socket_t,

    fn connect(to: std.net.Address) !Client {
        const fd = try posix.socket(to.any.family, posix.SOCK.STREAM | posix.SOCK.CLOEXEC, 0);
        errdefer posix.close(fd);
        try posix.connect(fd, &to.any, to.getOsSockLen());
        return .{ .fd = fd };
    }

    fn close(self: Client) void {
        posix.close(self.fd);
    }

    fn write(self: Client, bytes: []const u8) !void {
        var off: usize = 0;
        while (off < bytes.len) off += try posix.write(self.fd, bytes[off..]);
    }

    /// A heap of `data` in packets of `chunk` payload bytes, appended to `out`.
    fn heapBytes(out: *std.ArrayList(u8), cnt: u64, data: []const u8, chunk: usize) !void {
        var buf: [9000]u8 = undefined;
        var off: usize = 0;
        while (true) {
            const len = @min(chunk, data.len - off);
            try out.appendSlice(packet_mod.buildTestPacket(&buf, 48, &.{
                imm(1, cnt), imm(2, data.len), imm(3, off), imm(4, len), addr(0x1000, 0),
            }, data[off .. off + len]));
            off += len;
            if (off >= data.len) break;
        }
    }
};

fn waitStat(stream: *Stream, which: recv_stream.Stat, at_least: u64) !void {
    var spins: usize = 0;
    while (stream.stat(which) < at_least) : (spins += 1) {
        if (spins >= 5000) return error.TestTimeout;
        std.time.sleep(std.time.ns_per_ms);
    }
}

fn loopback(port: u16) std.net.Address {
    return std.net.Address.parseIp("127.0.0.1", port) catch unreachable;
}

test "heaps arrive across arbitrary write splits; the peer closing stops the stream" {
    const stream = try testStream(.{ .ring_heaps = 64 });
    defer stream.destroy();
    const info = try TcpReader.add(stream, .{ .address = loopback(0) });
    try testing.expect(info.port != 0);
    try testing.expect(info.buffer_size > 0);

    var data: [20000]u8 = undefined;
    var prng = std.Random.DefaultPrng.init(7);
    prng.random().bytes(&data);
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var cnt: u64 = 1;
    while (cnt <= 20) : (cnt += 1) try Client.heapBytes(&bytes, cnt, data[0 .. 997 * cnt], 1400);

    const client = try Client.connect(loopback(info.port));
    // Writes of 1 to 3000 bytes, each a little apart, cut packets anywhere.
    var off: usize = 0;
    var writes: usize = 0;
    while (off < bytes.items.len) : (writes += 1) {
        const n = @min(bytes.items.len - off, 1 + prng.random().uintLessThan(usize, 3000));
        try client.write(bytes.items[off .. off + n]);
        off += n;
        if (writes % 16 == 0) std.time.sleep(200 * std.time.ns_per_us);
    }
    client.close();
    cnt = 1;
    while (cnt <= 20) : (cnt += 1) {
        const heap = try stream.pop(5000);
        defer heap.deinit();
        try testing.expectEqual(cnt, heap.cnt);
        try testing.expect(heap.complete);
        try testing.expectEqualSlices(u8, data[0 .. 997 * cnt], heap.itemBytes(heap.items[0]));
    }
    try testing.expectError(error.Stopped, stream.pop(5000));
    try testing.expectEqual(@as(u64, 0), stream.stat(.packets_rejected_truncated));
}

test "bad bytes are counted and passed over; a cut packet at the end is counted" {
    const stream = try testStream(.{ .ring_heaps = 16 });
    defer stream.destroy();
    const info = try TcpReader.add(stream, .{ .address = loopback(0), .max_size = 512 });
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var buf: [2048]u8 = undefined;
    try Client.heapBytes(&bytes, 1, "first", 100);
    // 16 bytes of garbage: two headers passed over.
    try bytes.appendSlice("not spead at all");
    // A packet over max_size: skipped whole.
    const big = [_]u8{0xab} ** 1000;
    try Client.heapBytes(&bytes, 2, &big, 1000);
    // No PAYLOAD_LENGTH: one header passed over, then its pointer (0 = heap cnt 0) another.
    try bytes.appendSlice(packet_mod.buildTestPacket(&buf, 48, &.{imm(1, 0)}, ""));
    try Client.heapBytes(&bytes, 3, "third", 100);
    // A cut packet at the end.
    const last = packet_mod.buildTestPacket(&buf, 48, &.{ imm(1, 4), imm(2, 4), imm(3, 0), imm(4, 4) }, "abcd");
    try bytes.appendSlice(last[0 .. last.len - 2]);

    const client = try Client.connect(loopback(info.port));
    try client.write(bytes.items);
    client.close();
    for ([_]u64{ 1, 3 }, [_][]const u8{ "first", "third" }) |cnt, text| {
        const heap = try stream.pop(5000);
        defer heap.deinit();
        try testing.expectEqual(cnt, heap.cnt);
        try testing.expectEqualStrings(text, heap.itemBytes(heap.items[0]));
    }
    try testing.expectError(error.Stopped, stream.pop(5000));
    // Two in the garbage, one the pointer after the header without PAYLOAD_LENGTH.
    try testing.expectEqual(@as(u64, 3), stream.stat(.packets_rejected_bad_magic));
    try testing.expectEqual(@as(u64, 1), stream.stat(.packets_rejected_missing_items));
    try testing.expectEqual(@as(u64, 1), stream.stat(.packets_rejected_oversize));
    try testing.expectEqual(@as(u64, 1), stream.stat(.packets_rejected_truncated));
}

test "stop while waiting for a connection, and while connected, joins promptly" {
    for ([_]bool{ false, true }) |connected| {
        const stream = try testStream(.{});
        defer stream.destroy();
        const info = try TcpReader.add(stream, .{ .address = loopback(0) });
        var client: ?Client = null;
        defer if (client) |c| c.close();
        if (connected) {
            client = try Client.connect(loopback(info.port));
            try client.?.write("SPEAD"); // part of a header: the reader waits for more
        }
        std.time.sleep(30 * std.time.ns_per_ms);
        var timer = try std.time.Timer.start();
        stream.stop();
        try testing.expect(timer.read() < 1000 * std.time.ns_per_ms);
        try testing.expectError(error.Stopped, stream.pop(0));
    }
}

test "a stop item stops the stream; one connection only" {
    const stream = try testStream(.{});
    defer stream.destroy();
    const info = try TcpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0) });
    const client = try Client.connect(loopback(info.port));
    defer client.close();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try Client.heapBytes(&bytes, 1, "one", 100);
    var buf: [128]u8 = undefined;
    try bytes.appendSlice(packet_mod.buildTestPacket(&buf, 48, &.{ imm(1, 2), imm(2, 1), imm(3, 0), imm(4, 1), imm(6, 2), addr(0, 0) }, "\x00"));
    try client.write(bytes.items);
    const heap = try stream.pop(5000);
    heap.deinit();
    try testing.expectError(error.Stopped, stream.pop(5000));
    // The listening socket was closed at the accept.
    try testing.expectError(error.ConnectionRefused, Client.connect(loopback(info.port)));
}

test "IPv6 loopback (skipped without ::1); bad options are refused" {
    const stream = try testStream(.{});
    defer stream.destroy();
    try testing.expectError(error.InvalidArgument, TcpReader.add(stream, .{ .address = loopback(0), .max_size = 4 }));
    try testing.expectError(error.InvalidArgument, TcpReader.add(stream, .{ .address = loopback(0), .max_size = max_size_limit + 1 }));
    const info = TcpReader.add(stream, .{ .address = try std.net.Address.parseIp("::1", 0) }) catch return error.SkipZigTest;
    const client = try Client.connect(try std.net.Address.parseIp("::1", info.port));
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try Client.heapBytes(&bytes, 5, "over IPv6", 100);
    try client.write(bytes.items);
    client.close();
    const heap = try stream.pop(5000);
    defer heap.deinit();
    try testing.expectEqualStrings("over IPv6", heap.itemBytes(heap.items[0]));
}

test "corrupted byte streams: every damage counted or fed, never a fault; the stream stops at the end" {
    var prng = std.Random.DefaultPrng.init(2026);
    const random = prng.random();
    var clean = std.ArrayList(u8).init(testing.allocator);
    defer clean.deinit();
    var data: [5000]u8 = undefined;
    random.bytes(&data);
    var cnt: u64 = 1;
    while (cnt <= 12) : (cnt += 1) try Client.heapBytes(&clean, cnt, data[0 .. 100 * cnt + 7], 700);
    var round: usize = 0;
    while (round < 24) : (round += 1) {
        const bytes = try testing.allocator.dupe(u8, clean.items);
        defer testing.allocator.free(bytes);
        // Flip, zero or max out a few bytes anywhere (headers, pointers, payloads).
        const flips = 1 + random.uintLessThan(usize, 8);
        for (0..flips) |_| {
            const at = random.uintLessThan(usize, bytes.len);
            bytes[at] = switch (random.uintLessThan(u8, 3)) {
                0 => bytes[at] ^ (@as(u8, 1) << random.int(u3)),
                1 => 0,
                else => 0xff,
            };
        }
        const cut = if (round % 3 == 0) random.uintLessThan(usize, bytes.len) else bytes.len;
        const stream = try testStream(.{ .ring_heaps = 64 });
        defer stream.destroy();
        const info = try TcpReader.add(stream, .{ .address = loopback(0), .max_size = @intCast(1024 + 64 * round) });
        const client = try Client.connect(loopback(info.port));
        var off: usize = 0;
        while (off < cut) {
            const n = @min(cut - off, 1 + random.uintLessThan(usize, 2000));
            try client.write(bytes[off .. off + n]);
            off += n;
        }
        client.close();
        // Every heap the stream finished, then Stopped (at the end of the bytes or a stop item).
        var stopped = false;
        var popped: usize = 0;
        while (!stopped and popped < 100_000) : (popped += 1) {
            const heap = stream.pop(5000) catch |err| {
                try testing.expectEqual(error.Stopped, err);
                stopped = true;
                break;
            };
            heap.deinit();
        }
        try testing.expect(stopped);
    }
}
