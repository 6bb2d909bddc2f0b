//! UDP reader (spead2's udp_reader, docs/PROTOCOL.md §5, §10): one thread per
//! socket receives up to 64 datagrams per recvmmsg call and feeds them to the
//! stream as one batch under one lock. Each datagram must hold exactly one packet
//! (decoded size == datagram length); datagrams longer than packet_size_max are
//! truncated by the packet_size_max + 1 buffer and dropped. The thread polls
//! with a short timeout so stop() joins it promptly.
//!
//! Two ways to receive:
//! * scatter (in-order ring streams whose packets carry large payloads): each
//!   datagram is received in three pieces: its header into the reader's buffer, its
//!   payload straight into the heap being assembled, where the next packets
//!   of that heap will go (`reassembly.Table.pendingPayload`), and anything
//!   longer back into the reader's buffer. The guess (same heap, next offsets,
//!   the same header and payload sizes as the last packet fed whole) is
//!   checked against the decoded header; a packet that does not match is
//!   joined back together in the reader's buffer and fed like any other (one
//!   copy more, for it only). A right guess saves the copy of the payload out
//!   of the reader's buffer (a fifth of the reader's CPU at 1 MiB heaps). The
//!   socket is read under the stream's table lock, so the heap memory the
//!   kernel writes into cannot be delivered meanwhile. A receive asks for no
//!   more datagrams than the heap has packets left (datagrams past its end
//!   would land in the reader's buffer and be copied), and once a heap is
//!   done the next receive takes one datagram, the next heap's first packet,
//!   so that the receive after it can aim at that heap: at 1 MiB heaps of
//!   9000-byte packets, three receives per heap with every packet but the
//!   first in place, instead of two with a quarter of them copied.
//! * whole datagrams, with UDP_GRO when the kernel accepts it (one receive
//!   then carries several equal-size segments): chunk streams, out-of-order
//!   streams, and streams of small packets. GRO saves the kernel's work per
//!   packet, scatter the copy per byte. A stream that may scatter starts
//!   with whole datagrams and GRO off, and decides for good after
//!   `Options.scatter_probe_packets` packets in a row that had at least
//!   `Options.scatter_payload_min` bytes of payload (scatter) or fewer (GRO
//!   on): at 1472-byte packets GRO is worth more, at 9000 bytes scatter.
//!   GRO is never turned off under a live socket: datagrams coalesced before
//!   would then arrive without their segment size.
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const assert = std.debug.assert;
const posix = std.posix;
const linux = std.os.linux;
const Error = @import("../core/status.zig").Error;
const sys_error = @import("../core/sys_error.zig");
const packet_mod = @import("packet.zig");
const recv_stream = @import("stream.zig");
const Stream = recv_stream.Stream;
const reassembly = @import("reassembly.zig");

pub const packet_size_max_default: u32 = 9200;
pub const buffer_size_default: u32 = 8 << 20;
/// A UDP payload is at most 65507 (IPv4) / 65527 (IPv6) bytes.
pub const packet_size_max_limit: u32 = 65535;
pub const buffer_size_limit: u32 = 1 << 30;
pub const mmsg_count = 64;
/// GRO hands over up to 64 KiB of coalesced segments in one message.
const gro_buffer_size = 65536;
const poll_timeout_ms = 20;
/// Longest pause after a receive that emptied the socket (see `UdpReader.pause_ns`).
const pause_max_ns: u64 = 500 * std.time.ns_per_us;
/// Shorter pauses are not worth a sleep: none then.
const pause_min_ns: u64 = 50 * std.time.ns_per_us;
/// The rate the socket buffer must absorb during a pause: 40 Gb/s, in bytes per ns.
const pause_fill_bytes_per_ns = 5;
const control_size = 64;
const sol_udp = 17;
const ipproto_ipv6 = 41;
const native = @import("builtin").cpu.arch.endian();

pub const Options = struct {
    address: std.net.Address,
    packet_size_max: u32 = packet_size_max_default,
    buffer_size: u32 = buffer_size_default,
    /// IPv4 multicast: the interface address to join on (null: INADDR_ANY).
    interface_v4: ?std.net.Address = null,
    /// IPv6 multicast: the interface index to join on (0: default).
    interface_index: u32 = 0,
    /// Ask for UDP_GRO (falls back silently when refused). Tests turn it off
    /// to exercise the plain path. Not used with scatter receive.
    try_gro: bool = true,
    /// Receive payloads in place where the stream allows it and packets are
    /// large (see the file comment). Tests turn it off to exercise the
    /// whole-datagram paths.
    try_scatter: bool = true,
    /// Scatter receive starts once this many packets in a row carried at
    /// least `scatter_payload_min` payload bytes (heaps' last packets, often
    /// short, are not counted).
    scatter_probe_packets: u32 = 256,
    scatter_payload_min: u32 = 4096,
};

/// What the socket ended up with.
pub const Info = struct {
    port: u16,
    /// SO_RCVBUF as the kernel reports it (Linux doubles the request and caps it
    /// at net.core.rmem_max).
    buffer_size: u32,
    gro: bool,
    /// Payloads may be received in place (scatter receive, once packets are large).
    scatter: bool = false,
    /// The buffer went past net.core.rmem_max through SO_RCVBUFFORCE (the
    /// process has CAP_NET_ADMIN); spead2 only warns that it got less.
    buffer_size_forced: bool = false,
};

pub fn isMulticast(address: std.net.Address) bool {
    return switch (address.any.family) {
        posix.AF.INET => (std.mem.bigToNative(u32, address.in.sa.addr) >> 28) == 0xe,
        posix.AF.INET6 => address.in6.sa.addr[0] == 0xff,
        else => false,
    };
}

const IpMreq = extern struct {
    multiaddr: u32,
    interface: u32,
};

const Ipv6Mreq = extern struct {
    addr: [16]u8,
    ifindex: u32,
};

pub fn setInt(fd: posix.socket_t, level: i32, name: u32, value: c_int, what: []const u8) Error!void {
    try sys_error.setsockopt(fd, level, name, std.mem.asBytes(&value), what);
}

pub fn readBufferSize(fd: posix.socket_t) Error!c_int {
    // (std.posix.getsockopt passes an uninitialised length in Zig 0.14.)
    var size: c_int = 0;
    var len: posix.socklen_t = @sizeOf(c_int);
    try sys_error.check(linux.getsockopt(fd, posix.SOL.SOCKET, posix.SO.RCVBUF, std.mem.asBytes(&size), &len), "getsockopt SO_RCVBUF", null);
    return size;
}

fn joinGroup(fd: posix.socket_t, options: Options) Error!void {
    try setInt(fd, posix.SOL.SOCKET, posix.SO.REUSEADDR, 1, "setsockopt SO_REUSEADDR");
    switch (options.address.any.family) {
        posix.AF.INET => {
            const mreq: IpMreq = .{
                .multiaddr = options.address.in.sa.addr,
                .interface = if (options.interface_v4) |i| i.in.sa.addr else 0,
            };
            try sys_error.setsockopt(fd, posix.IPPROTO.IP, linux.IP.ADD_MEMBERSHIP, std.mem.asBytes(&mreq), "setsockopt IP_ADD_MEMBERSHIP");
        },
        posix.AF.INET6 => {
            const mreq: Ipv6Mreq = .{ .addr = options.address.in6.sa.addr, .ifindex = options.interface_index };
            try sys_error.setsockopt(fd, ipproto_ipv6, linux.IPV6.ADD_MEMBERSHIP, std.mem.asBytes(&mreq), "setsockopt IPV6_ADD_MEMBERSHIP");
        },
        else => unreachable,
    }
}

/// Scatter receive's guess for the next packets, from the last packet fed whole.
const Guess = struct {
    cnt: u64 = 0,
    /// Header and item pointers of a packet after a heap's first (0: no guess yet).
    head_len: usize = 0,
    /// Payload bytes of such a packet (not a heap's last, which may be shorter).
    payload_len: usize = 0,
};

/// Where one slot's payload piece went (scatter receive).
const SlotGuess = struct {
    /// Empty: the slot received the whole datagram into the reader's buffer.
    dest: []u8 = &.{},
    /// The packet guessed: heap, payload offset, bytes of header and pointers.
    cnt: u64 = 0,
    offset: u64 = 0,
    head_len: usize = 0,
    /// Set by `classify`: the guess was right and the payload is in place.
    in_place: bool = false,
};

pub const UdpReader = struct {
    stream: *Stream,
    fd: posix.socket_t,
    packet_size_max: u32,
    /// GRO is on: messages may carry several segments.
    use_gro: bool,
    /// The kernel accepts UDP_GRO (on from the start, or once `probe` finds
    /// small packets); slots are then 64 KiB.
    gro_available: bool,
    /// Receiving in place (see `scatter_allowed`).
    use_scatter: bool = false,
    /// The stream allows scatter receive; it starts after the probe.
    scatter_allowed: bool,
    scatter_probe_packets: u32,
    scatter_payload_min: u32,
    /// Large and small packets in a row so far (the probe).
    large_packets: u32 = 0,
    small_packets: u32 = 0,
    /// After a receive that found fewer datagrams than it had room for (the
    /// socket is empty), the reader sleeps this long before it polls again, so
    /// that the next wake-up finds a batch instead of a packet or two: one
    /// wake-up (a context switch, two syscalls) per several dozen packets at
    /// paced rates. At most a quarter of the socket buffer arrives meanwhile at
    /// 40 Gb/s; 0 when that is under `pause_min_ns` (a small buffer).
    pause_ns: u64 = 0,
    /// Bytes per receive buffer: packet_size_max + 1 (to see truncation) or 64 KiB with GRO.
    slot_size: usize,
    storage: []u8,
    iovecs: [mmsg_count][3]posix.iovec = undefined,
    msgs: [mmsg_count]linux.mmsghdr = undefined,
    guess: Guess = .{},
    slot_guesses: [mmsg_count]SlotGuess = [_]SlotGuess{.{}} ** mmsg_count,
    /// Datagrams the next recvmmsg asks for (`aim` sets it for scatter receive).
    receive_count: usize = mmsg_count,
    /// The last aimed receive put a payload in place, so the guess's sizes
    /// hold: when its heap is done, the next receive takes one datagram.
    aim_streak: bool = false,
    /// Packets whose payload was received in place (tests read it).
    in_place_packets: u64 = 0,
    controls: [mmsg_count][control_size]u8 align(8) = undefined,
    thread: std.Thread = undefined,
    stop_requested: std.atomic.Value(bool) = std.atomic.Value(bool).init(false),

    /// Opens, configures and binds the socket, then starts the reader thread on
    /// `stream`. Port 0 binds an ephemeral port (see `Info.port`).
    pub fn add(stream: *Stream, options: Options) Error!Info {
        const family = options.address.any.family;
        if (family != posix.AF.INET and family != posix.AF.INET6) return error.InvalidArgument;
        if (options.packet_size_max < protocol.header_size or options.packet_size_max > packet_size_max_limit) return error.InvalidArgument;
        if (options.buffer_size > buffer_size_limit) return error.InvalidArgument;
        if (options.interface_v4) |i| if (i.any.family != posix.AF.INET) return error.InvalidArgument;

        const fd = try sys_error.socket(family, posix.SOCK.DGRAM | posix.SOCK.CLOEXEC, posix.IPPROTO.UDP);
        errdefer posix.close(fd);
        if (isMulticast(options.address)) try joinGroup(fd, options);
        // As spead2: a refused size is not fatal; the kernel's value is reported.
        setInt(fd, posix.SOL.SOCKET, posix.SO.RCVBUF, @intCast(options.buffer_size), "setsockopt SO_RCVBUF") catch {};
        // Only heaps the table assembles in order, in memory it allocated, are aimed at.
        var scatter_allowed = options.try_scatter and stream.chunk_hooks == null and
            !stream.config.reassembly.allow_out_of_order;
        const gro_available = options.try_gro and if (setInt(fd, sol_udp, linux.UDP.GRO, 1, "setsockopt UDP_GRO")) |_| true else |_| false;
        // A stream that may scatter starts without GRO (see `probe`): GRO cannot be
        // turned off later without losing datagrams already coalesced in the queue
        // (they then come without their segment size).
        var use_gro = gro_available;
        if (gro_available and scatter_allowed) {
            if (setInt(fd, sol_udp, linux.UDP.GRO, 0, "setsockopt UDP_GRO")) |_| {
                use_gro = false;
            } else |_| {
                scatter_allowed = false;
            }
        }
        try sys_error.bind(fd, options.address);
        var bound: std.net.Address = undefined;
        var bound_len: posix.socklen_t = @sizeOf(std.net.Address);
        try sys_error.check(linux.getsockname(fd, &bound.any, &bound_len), "getsockname", null);
        var buffer_size = try readBufferSize(fd);
        // Linux grants min(request, rmem_max) and reports double that. When capped, a
        // process that may (CAP_NET_ADMIN) takes the size asked for: at full rate the
        // socket buffer is what absorbs the reader's scheduling gaps.
        var buffer_size_forced = false;
        if (@divTrunc(buffer_size, 2) < options.buffer_size) {
            if (setInt(fd, posix.SOL.SOCKET, posix.SO.RCVBUFFORCE, @intCast(options.buffer_size), "setsockopt SO_RCVBUFFORCE")) |_| {
                buffer_size = try readBufferSize(fd);
                buffer_size_forced = true;
            } else |_| {}
        }

        const allocator = stream.allocator;
        const pause_ns = @min(pause_max_ns, @as(u64, @intCast(@max(buffer_size, 0))) / 4 / pause_fill_bytes_per_ns);
        const self = allocator.create(UdpReader) catch return error.OutOfMemory;
        errdefer allocator.destroy(self);
        const slot_size: usize = if (gro_available) gro_buffer_size else @as(usize, options.packet_size_max) + 1;
        const storage = allocator.alloc(u8, slot_size * mmsg_count) catch return error.OutOfMemory;
        errdefer allocator.free(storage);
        self.* = .{
            .stream = stream,
            .fd = fd,
            .packet_size_max = options.packet_size_max,
            .use_gro = use_gro,
            .gro_available = gro_available,
            .scatter_allowed = scatter_allowed,
            .scatter_probe_packets = options.scatter_probe_packets,
            .scatter_payload_min = options.scatter_payload_min,
            .pause_ns = if (pause_ns >= pause_min_ns) pause_ns else 0,
            .slot_size = slot_size,
            .storage = storage,
        };
        for (&self.iovecs, &self.msgs, 0..) |*iov, *msg, i| {
            iov[0] = .{ .base = storage[i * slot_size ..].ptr, .len = slot_size };
            msg.* = .{
                .hdr = .{
                    .name = null,
                    .namelen = 0,
                    .iov = iov,
                    .iovlen = 1,
                    .control = null,
                    .controllen = 0,
                    .flags = 0,
                },
                .len = 0,
            };
        }
        try stream.addReader(.{ .ctx = self, .vtable = &vtable });
        return .{ .port = bound.getPort(), .buffer_size = @intCast(@max(buffer_size, 0)), .gro = gro_available, .scatter = scatter_allowed, .buffer_size_forced = buffer_size_forced };
    }

    const vtable: recv_stream.Reader.VTable = recv_stream.threadReaderVTable(UdpReader, "spead-udp-recv", run, free);

    fn free(self: *UdpReader) void {
        posix.close(self.fd);
        const allocator = self.stream.allocator;
        allocator.free(self.storage);
        allocator.destroy(self);
    }

    fn running(self: *UdpReader) bool {
        return !self.stop_requested.load(.acquire) and !self.stream.isStopped();
    }

    fn run(self: *UdpReader) void {
        self.stream.readerThreadStarted();
        // Ends on stop; each pass waits at most poll_timeout_ms.
        while (self.running()) {
            var fds = [_]posix.pollfd{.{ .fd = self.fd, .events = posix.POLL.IN, .revents = 0 }};
            // Heaps not yet announced to JS: wake up in time to announce them.
            const due = self.stream.pendingNotifyMs();
            if (due == 0) self.stream.signalIfDue();
            const timeout: i32 = if (due) |ms| @intCast(@max(1, @min(ms, poll_timeout_ms))) else poll_timeout_ms;
            const ready = posix.poll(&fds, timeout) catch {
                std.time.sleep(poll_timeout_ms * std.time.ns_per_ms);
                continue;
            };
            if (ready == 0) {
                self.stream.signalIfDue();
                continue;
            }
            const received = (if (self.use_scatter) self.receiveInPlace() else self.receiveWhole()) orelse return;
            if (received > 0 and received < self.receive_count and self.pause_ns > 0) std.time.sleep(self.pause_ns);
        }
    }

    /// Receives and feeds one batch of whole datagrams. Returns how many
    /// datagrams came, or null once the stream has stopped.
    fn receiveWhole(self: *UdpReader) ?usize {
        self.receive_count = mmsg_count;
        const received = self.receive() orelse return 0;
        if (received == 0) return 0;
        var batch: recv_stream.Batch = undefined;
        if (!self.stream.batchBegin(&batch)) return null;
        self.feed(&batch, received);
        self.stream.batchEnd(&batch);
        return received;
    }

    /// `receiveWhole` for scatter receive: the kernel writes into heap
    /// memory, so only under the table lock.
    fn receiveInPlace(self: *UdpReader) ?usize {
        var batch: recv_stream.Batch = undefined;
        if (!self.stream.batchBegin(&batch)) return null;
        self.aim();
        const received = self.receive() orelse 0;
        if (received == 0) {
            self.stream.batchCancel(&batch);
            return 0;
        }
        // One datagram after each heap, not one after another: a stream whose
        // next packet does not start a heap to aim at gets full batches again
        // until a guess is right.
        if (self.receive_count == 1) self.aim_streak = false;
        self.classify(received);
        self.feed(&batch, received);
        self.stream.batchEnd(&batch);
        return received;
    }

    /// Points each slot's payload piece at where the guess says its packet's
    /// payload goes (table lock held) and sets how many datagrams to receive:
    /// as many as the heap has packets left, or when its heap is done and the
    /// last aim was right, one (the next heap's first packet, fed whole, sets
    /// the guess to that heap), otherwise a full batch of whole datagrams.
    fn aim(self: *UdpReader) void {
        const g = self.guess;
        const pending: ?reassembly.PendingPayload = if (g.head_len > 0 and g.payload_len > 0)
            self.stream.table.pendingPayload(g.cnt)
        else
            null;
        var dest: []u8 = if (pending) |p| p.dest else &.{};
        var offset: u64 = if (pending) |p| p.offset else 0;
        var aimed: usize = 0;
        for (&self.iovecs, &self.msgs, &self.slot_guesses, 0..) |*iov, *msg, *slot, i| {
            const base = self.storage[i * self.slot_size ..][0..self.slot_size];
            // A piece shorter than payload_len is for a heap's last packet.
            const len = @min(dest.len, g.payload_len);
            if (len == 0 or g.head_len + len > self.slot_size) {
                slot.* = .{};
                iov[0] = .{ .base = base.ptr, .len = base.len };
                msg.hdr.iovlen = 1;
                continue;
            }
            slot.* = .{ .dest = dest[0..len], .cnt = g.cnt, .offset = offset, .head_len = g.head_len };
            iov[0] = .{ .base = base.ptr, .len = g.head_len };
            iov[1] = .{ .base = dest.ptr, .len = len };
            iov[2] = .{ .base = base[g.head_len + len ..].ptr, .len = base.len - g.head_len - len };
            msg.hdr.iovlen = 3;
            dest = dest[len..];
            offset += len;
            aimed += 1;
        }
        if (aimed > 0) {
            self.receive_count = aimed;
        } else if (self.aim_streak and g.head_len > 0 and g.payload_len > 0) {
            self.receive_count = 1;
        } else {
            self.receive_count = mmsg_count;
        }
    }

    /// Checks each aimed slot's guess against its header, before anything is
    /// fed (so no heap memory has been written since the receive). A slot
    /// whose packet is not the one guessed is joined back together in the
    /// reader's buffer (header piece, payload piece, rest: the datagram's
    /// bytes in order) and fed whole.
    fn classify(self: *UdpReader, received: usize) void {
        for (self.msgs[0..received], self.slot_guesses[0..received], 0..) |*msg, *slot, i| {
            if (slot.dest.len == 0) continue;
            const head_len = slot.head_len;
            const base = self.storage[i * self.slot_size ..][0..self.slot_size];
            const length = @min(msg.len, self.slot_size);
            const truncated = msg.hdr.flags & linux.MSG.TRUNC != 0;
            if (!truncated and length > head_len) {
                if (packet_mod.decodeSplit(base[0..head_len], slot.dest)) |decoded| switch (decoded) {
                    .ok => |packet| if (packet.heap_cnt == slot.cnt and packet.payload_offset == slot.offset and
                        packet.size == length)
                    {
                        slot.in_place = true;
                        self.aim_streak = true;
                        continue;
                    },
                    .rejected => {},
                };
            }
            if (length > head_len) {
                const piece = @min(length - head_len, slot.dest.len);
                @memcpy(base[head_len..][0..piece], slot.dest[0..piece]);
            }
            slot.dest = &.{};
        }
    }

    /// One recvmmsg call; null on a transient error.
    fn receive(self: *UdpReader) ?usize {
        for (&self.msgs, 0..) |*msg, i| {
            msg.hdr.flags = 0;
            msg.len = 0;
            if (self.use_gro) {
                msg.hdr.control = &self.controls[i];
                msg.hdr.controllen = control_size;
            }
        }
        assert(self.receive_count >= 1 and self.receive_count <= mmsg_count);
        const rc = linux.recvmmsg(self.fd, &self.msgs, @intCast(self.receive_count), linux.MSG.DONTWAIT, null);
        switch (linux.E.init(rc)) {
            .SUCCESS => {
                assert(rc <= self.receive_count);
                return rc;
            },
            .AGAIN, .INTR => return null,
            else => {
                // Unexpected (e.g. ENOMEM): back off instead of spinning.
                std.time.sleep(std.time.ns_per_ms);
                return null;
            },
        }
    }

    fn feed(self: *UdpReader, batch: *recv_stream.Batch, received: usize) void {
        for (self.msgs[0..received], 0..) |*msg, i| {
            const data = self.storage[i * self.slot_size ..][0..@min(msg.len, self.slot_size)];
            const truncated = msg.hdr.flags & linux.MSG.TRUNC != 0;
            if (self.use_scatter and self.slot_guesses[i].in_place) {
                // Checked by `classify`: it decodes, and its payload is in place.
                const slot = &self.slot_guesses[i];
                const packet = packet_mod.decodeSplit(data[0..slot.head_len], slot.dest).?.ok;
                self.in_place_packets += 1;
                if (!batch.addPacket(packet)) return;
                continue;
            }
            if (self.use_gro and !truncated) {
                if (groSegmentSize(&msg.hdr)) |segment| {
                    var offset: usize = 0;
                    while (offset < data.len) : (offset += segment) {
                        const end = @min(offset + segment, data.len);
                        if (!self.processDatagram(batch, data[offset..end], false)) return;
                    }
                    continue;
                }
            }
            if (!self.processDatagram(batch, data, truncated)) return;
        }
    }

    /// Returns false once the stream has stopped (stop item).
    fn processDatagram(self: *UdpReader, batch: *recv_stream.Batch, bytes: []const u8, truncated: bool) bool {
        if (truncated or bytes.len > self.packet_size_max) {
            batch.count(.packets_rejected_oversize);
            return true;
        }
        switch (packet_mod.decode(bytes)) {
            .rejected => |reason| batch.countDecodeReject(reason),
            .ok => |packet| {
                if (packet.size != bytes.len) {
                    batch.count(.packets_rejected_size_mismatch);
                    return true;
                }
                if (self.scatter_allowed) self.learn(packet);
                return batch.addPacket(packet);
            },
        }
        return true;
    }

    /// Counts large and small packets in a row: after enough large ones the
    /// reader receives in place from then on; after enough small ones it
    /// turns GRO on (where the kernel has it) and stops probing.
    fn probe(self: *UdpReader, packet: packet_mod.Packet) void {
        // A heap's last packet is often short: it neither counts nor breaks a run.
        if (packet.payload_offset > 0 and packet.heap_length != null and
            packet.payload_offset + packet.payload_length == packet.heap_length.?) return;
        if (packet.payload_length >= self.scatter_payload_min) {
            self.small_packets = 0;
            self.large_packets += 1;
            if (self.large_packets >= self.scatter_probe_packets) self.use_scatter = true;
            return;
        }
        self.large_packets = 0;
        self.small_packets += 1;
        if (self.small_packets < self.scatter_probe_packets) return;
        self.scatter_allowed = false;
        if (self.gro_available) {
            setInt(self.fd, sol_udp, linux.UDP.GRO, 1, "setsockopt UDP_GRO") catch return;
            self.use_gro = true;
        }
    }

    /// Updates the guess from a packet fed whole: the next packets of its heap
    /// are guessed to follow it, with the sizes of a packet in a heap's middle.
    fn learn(self: *UdpReader, packet: packet_mod.Packet) void {
        if (!self.use_scatter) self.probe(packet);
        const g = &self.guess;
        g.cnt = packet.heap_cnt;
        // A heap's first packet may carry more item pointers, and its last a
        // shorter payload: neither sets the sizes.
        const last = if (packet.heap_length) |l| packet.payload_offset + packet.payload_length >= l else true;
        if (packet.payload_offset == 0 or last or packet.payload_length == 0) return;
        g.head_len = packet.size - @as(usize, @intCast(packet.payload_length));
        g.payload_len = @intCast(packet.payload_length);
    }
};

/// The UDP_GRO control message's segment size, if the kernel coalesced.
fn groSegmentSize(hdr: *const linux.msghdr) ?usize {
    const control: [*]const u8 = @ptrCast(hdr.control orelse return null);
    const len: usize = hdr.controllen;
    const cmsg_header_size = 16; // cmsghdr: len (usize), level (i32), type (i32)
    var offset: usize = 0;
    var steps: usize = 0;
    while (offset + cmsg_header_size <= len and steps < control_size / cmsg_header_size) : (steps += 1) {
        const cmsg_len = std.mem.readInt(usize, control[offset..][0..8], native);
        const level = std.mem.readInt(i32, control[offset + 8 ..][0..4], native);
        const kind = std.mem.readInt(i32, control[offset + 12 ..][0..4], native);
        if (cmsg_len < cmsg_header_size or offset + cmsg_len > len) return null;
        if (level == sol_udp and kind == linux.UDP.GRO and cmsg_len >= cmsg_header_size + 4) {
            const segment = std.mem.readInt(i32, control[offset + cmsg_header_size ..][0..4], native);
            return if (segment > 0) @intCast(segment) else null;
        }
        offset += std.mem.alignForward(usize, cmsg_len, 8);
    }
    return null;
}

comptime {
    // groSegmentSize reads struct cmsghdr as laid out on 64-bit Linux.
    assert(@sizeOf(usize) == 8);
}

// ---------------------------------------------------------------------------
// Tests (loopback only)

const testing = std.testing;
const imm = packet_mod.imm;
const addr = packet_mod.addr;

const testStream = recv_stream.testStream;

const Sender = struct {
    fd: posix.socket_t,
    to: std.net.Address,

    fn open(to: std.net.Address) !Sender {
        const fd = try posix.socket(to.any.family, posix.SOCK.DGRAM | posix.SOCK.CLOEXEC, 0);
        return .{ .fd = fd, .to = to };
    }

    fn close(self: Sender) void {
        posix.close(self.fd);
    }

    fn send(self: Sender, bytes: []const u8) !void {
        _ = try posix.sendto(self.fd, bytes, 0, &self.to.any, self.to.getOsSockLen());
    }

    /// A heap of `data` in packets of `chunk` payload bytes.
    fn sendHeap(self: Sender, cnt: u64, data: []const u8, chunk: usize) !void {
        var buf: [9000]u8 = undefined;
        var off: usize = 0;
        while (true) {
            const len = @min(chunk, data.len - off);
            try self.send(packet_mod.buildTestPacket(&buf, 48, &.{
                imm(1, cnt), imm(2, data.len), imm(3, off), imm(4, len), addr(0x1000, 0),
            }, data[off .. off + len]));
            off += len;
            if (off >= data.len) break;
        }
    }

    fn sendStop(self: Sender, cnt: u64) !void {
        var buf: [128]u8 = undefined;
        try self.send(packet_mod.buildTestPacket(&buf, 48, &.{ imm(1, cnt), imm(2, 1), imm(3, 0), imm(4, 1), imm(6, 2), addr(0, 0) }, "\x00"));
    }
};

fn waitStat(stream: *Stream, which: recv_stream.Stat, at_least: u64) !void {
    var spins: usize = 0;
    while (stream.stat(which) < at_least) : (spins += 1) {
        if (spins >= 5000) return error.TestTimeout;
        std.time.sleep(std.time.ns_per_ms);
    }
}

test "loopback IPv4: heaps arrive, stop item stops the stream" {
    const stream = try testStream(.{ .ring_heaps = 64 });
    defer stream.destroy();
    const info = try UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0) });
    try testing.expect(info.port != 0);
    try testing.expect(info.buffer_size > 0);
    const sender = try Sender.open(try std.net.Address.parseIp("127.0.0.1", info.port));
    defer sender.close();

    var data: [20000]u8 = undefined;
    var prng = std.Random.DefaultPrng.init(42);
    prng.random().bytes(&data);
    var cnt: u64 = 1;
    while (cnt <= 10) : (cnt += 1) {
        try sender.sendHeap(cnt, data[0 .. 1000 * cnt], 1400);
        // pace the sender so loopback never drops (the socket buffer may be small)
        const heap = try stream.pop(5000);
        defer heap.deinit();
        try testing.expectEqual(cnt, heap.cnt);
        try testing.expect(heap.complete);
        try testing.expectEqualSlices(u8, data[0 .. 1000 * cnt], heap.itemBytes(heap.items[0]));
    }
    try sender.sendStop(11);
    try testing.expectError(error.Stopped, stream.pop(5000));
    try testing.expectEqual(@as(u64, 10), stream.stat(.heaps));
    try testing.expect(stream.stat(.batches) >= 1);
    try testing.expect(stream.stat(.max_batch) >= 1);
    try testing.expect(stream.stat(.packets) >= 10);
}

test "datagram checks: oversize, size mismatch and garbage are counted and dropped" {
    for ([_]bool{ true, false }) |gro| try datagramChecks(gro);
}

fn datagramChecks(gro: bool) !void {
    const stream = try testStream(.{});
    defer stream.destroy();
    const info = try UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0), .packet_size_max = 200, .try_gro = gro, .try_scatter = !gro });
    if (!gro) try testing.expect(!info.gro);
    const sender = try Sender.open(try std.net.Address.parseIp("127.0.0.1", info.port));
    defer sender.close();
    var big: [300]u8 = undefined;
    @memset(&big, 0);
    try sender.sendHeap(1, &big, 300); // one 348-byte datagram > packet_size_max
    var buf: [256]u8 = undefined;
    const good = packet_mod.buildTestPacket(&buf, 48, &.{ imm(1, 2), imm(2, 4), imm(3, 0), imm(4, 4) }, "abcd");
    var padded: [256]u8 = undefined;
    @memcpy(padded[0..good.len], good);
    padded[good.len] = 0;
    try sender.send(padded[0 .. good.len + 1]); // trailing byte
    try sender.send("not spead at all");
    try sender.send(good);
    const heap = try stream.pop(5000);
    heap.deinit();
    try waitStat(stream, .packets_rejected_bad_magic, 1);
    try testing.expectEqual(@as(u64, 1), stream.stat(.packets_rejected_oversize));
    try testing.expectEqual(@as(u64, 1), stream.stat(.packets_rejected_size_mismatch));
    // The good packet may come in a later batch than the garbage, and pop()
    // returns its heap before that batch's counters are folded in.
    try waitStat(stream, .packets, 1);
}

test "loopback IPv6 (skipped without ::1)" {
    const stream = try testStream(.{});
    defer stream.destroy();
    const info = UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("::1", 0) }) catch return error.SkipZigTest;
    const sender = try Sender.open(try std.net.Address.parseIp("::1", info.port));
    defer sender.close();
    try sender.sendHeap(5, "over IPv6", 100);
    const heap = try stream.pop(5000);
    defer heap.deinit();
    try testing.expectEqualStrings("over IPv6", heap.itemBytes(heap.items[0]));
}

test "full ring blocks the worker; stop joins promptly" {
    const stream = try testStream(.{ .ring_heaps = 1 });
    defer stream.destroy();
    const info = try UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0) });
    const sender = try Sender.open(try std.net.Address.parseIp("127.0.0.1", info.port));
    defer sender.close();
    var cnt: u64 = 1;
    while (cnt <= 4) : (cnt += 1) try sender.sendHeap(cnt, "single packet heap", 100);
    try waitStat(stream, .worker_blocked, 1);
    var popped: u64 = 0;
    while (popped < 4) : (popped += 1) {
        const heap = try stream.pop(5000);
        try testing.expectEqual(popped + 1, heap.cnt);
        heap.deinit();
    }
    var timer = try std.time.Timer.start();
    stream.stop();
    try testing.expect(timer.read() < 1000 * std.time.ns_per_ms);
    try testing.expectError(error.Stopped, stream.pop(0));
}

test "bad options are refused; a taken port is an error" {
    const stream = try testStream(.{});
    defer stream.destroy();
    try testing.expectError(error.InvalidArgument, UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0), .packet_size_max = 4 }));
    try testing.expectError(error.InvalidArgument, UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0), .packet_size_max = 70000 }));
    const info = try UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0) });
    try testing.expectError(error.SystemError, UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", info.port) }));
    try testing.expectEqual(@as(u16, @intFromEnum(linux.E.ADDRINUSE)), sys_error.get().errno);
    try testing.expect(isMulticast(try std.net.Address.parseIp("239.1.2.3", 0)));
    try testing.expect(isMulticast(try std.net.Address.parseIp("ff02::1", 0)));
    try testing.expect(!isMulticast(try std.net.Address.parseIp("10.0.0.1", 0)));
}

test "GRO control message parsing" {
    var control: [control_size]u8 align(8) = [_]u8{0} ** control_size;
    std.mem.writeInt(usize, control[0..8], 20, native);
    std.mem.writeInt(i32, control[8..12], sol_udp, native);
    std.mem.writeInt(i32, control[12..16], linux.UDP.GRO, native);
    std.mem.writeInt(i32, control[16..20], 1472, native);
    var iov: posix.iovec = undefined;
    var hdr: linux.msghdr = .{ .name = null, .namelen = 0, .iov = @ptrCast(&iov), .iovlen = 1, .control = &control, .controllen = 24, .flags = 0 };
    try testing.expectEqual(@as(?usize, 1472), groSegmentSize(&hdr));
    hdr.controllen = 8;
    try testing.expectEqual(@as(?usize, null), groSegmentSize(&hdr));
    std.mem.writeInt(usize, control[0..8], 4, native); // corrupt length
    hdr.controllen = 24;
    try testing.expectEqual(@as(?usize, null), groSegmentSize(&hdr));
}

/// Sends packet `index` of `count` (of `chunk` payload bytes each) of heap `cnt`, whose payload is `data`; `extra` pointers widen the header.
fn sendPart(sender: Sender, cnt: u64, data: []const u8, chunk: usize, index: usize, extra: usize) !void {
    var buf: [2048]u8 = undefined;
    const off = index * chunk;
    const len = @min(chunk, data.len - off);
    var pointers: [8]packet_mod.TestPointer = undefined;
    pointers[0] = imm(1, cnt);
    pointers[1] = imm(2, data.len);
    pointers[2] = imm(3, off);
    pointers[3] = imm(4, len);
    var n: usize = 4;
    while (n < 4 + extra) : (n += 1) pointers[n] = addr(0x1000 + n, 0);
    try sender.send(packet_mod.buildTestPacket(&buf, 48, pointers[0..n], data[off .. off + len]));
}

/// A UDP reader on `stream` that receives in place from its first large packet, and a sender to it.
fn scatterReader(stream: *Stream) !struct { *UdpReader, Sender } {
    // Every packet counts as large, and one is enough to switch (GRO off, if it was on).
    const info = try UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0), .scatter_probe_packets = 1, .scatter_payload_min = 1 });
    try testing.expect(info.scatter);
    const reader: *UdpReader = @ptrCast(@alignCast(stream.readers[0].ctx));
    return .{ reader, try Sender.open(try std.net.Address.parseIp("127.0.0.1", info.port)) };
}

test "scatter receive: payloads land in place; wrong guesses are joined and fed whole" {
    const stream = try testStream(.{ .ring_heaps = 16, .contiguous_only = false });
    defer stream.destroy();
    const reader, const sender = try scatterReader(stream);
    defer sender.close();

    var a: [12000]u8 = undefined;
    var b: [3000]u8 = undefined;
    var prng = std.Random.DefaultPrng.init(7);
    prng.random().bytes(&a);
    prng.random().bytes(&b);
    const chunk = 1000;
    // Heap 1's first packets are fed whole and set the guess (the first has a wider header).
    try sendPart(sender, 1, &a, chunk, 0, 1);
    try sendPart(sender, 1, &a, chunk, 1, 0);
    try sendPart(sender, 1, &a, chunk, 2, 0);
    try waitStat(stream, .packets, 3);
    try testing.expect(reader.use_scatter);
    // Aimed at heap 1 from offset 3000: three right guesses, then heap 2 (another
    // cnt), a wider header, a repeat and an oversize datagram in aimed slots.
    try sendPart(sender, 1, &a, chunk, 3, 0);
    try sendPart(sender, 1, &a, chunk, 4, 0);
    try sendPart(sender, 1, &a, chunk, 5, 0);
    try sendPart(sender, 2, &b, chunk, 0, 0);
    try sendPart(sender, 1, &a, chunk, 6, 2);
    try sendPart(sender, 1, &a, chunk, 6, 0); // a repeat: out of order
    var big: [9300]u8 = undefined;
    @memset(&big, 0x53);
    try sender.send(&big);
    try waitStat(stream, .packets, 9);
    try testing.expect(reader.in_place_packets >= 3);
    try waitStat(stream, .packets_rejected_oversize, 1);
    try testing.expectEqual(@as(u64, 1), stream.stat(.packets_rejected_out_of_order));
    // The rest of both heaps, one at a time so each is aimed.
    var index: usize = 7;
    while (index < 12) : (index += 1) {
        try sendPart(sender, 1, &a, chunk, index, 0);
        try waitStat(stream, .packets, 9 + index - 6);
    }
    try sendPart(sender, 2, &b, chunk, 1, 0);
    try sendPart(sender, 2, &b, chunk, 2, 0);
    try testing.expect(reader.in_place_packets >= 6);
    var seen: u32 = 0;
    while (seen < 2) : (seen += 1) {
        const heap = try stream.pop(5000);
        defer heap.deinit();
        try testing.expect(heap.complete);
        const want: []const u8 = if (heap.cnt == 1) &a else &b;
        try testing.expectEqualSlices(u8, want, heap.payload[0..want.len]);
    }
}

test "scatter receive: a receive stops at the heap's end, then takes the next heap's first packet alone" {
    const stream = try testStream(.{ .ring_heaps = 16 });
    defer stream.destroy();
    const reader, const sender = try scatterReader(stream);
    defer sender.close();

    const chunk = 1000;
    const packets = 12;
    var data: [3][packets * chunk]u8 = undefined;
    var prng = std.Random.DefaultPrng.init(11);
    for (&data) |*d| prng.random().bytes(d);
    // Heap 1's first packets are fed whole and set the guess.
    for (0..3) |i| try sendPart(sender, 1, &data[0], chunk, i, if (i == 0) 1 else 0);
    try waitStat(stream, .packets, 3);
    try testing.expect(reader.use_scatter);
    const before = reader.in_place_packets;
    // The rest of heap 1 and two more heaps in one burst, each heap's first
    // packet with a wider header as spead2 sends them: a receive that ran past
    // a heap's end would take the next heap's packets whole.
    for (3..packets) |i| try sendPart(sender, 1, &data[0], chunk, i, 0);
    for (1..3) |h| {
        for (0..packets) |i| try sendPart(sender, h + 1, &data[h], chunk, i, if (i == 0) 1 else 0);
    }
    try waitStat(stream, .packets, 3 * packets);
    // Every packet but the heaps' first ones landed in place.
    try testing.expectEqual(@as(u64, (packets - 3) + 2 * (packets - 1)), reader.in_place_packets - before);
    for (0..3) |h| {
        const heap = try stream.pop(5000);
        defer heap.deinit();
        try testing.expect(heap.complete);
        try testing.expectEqual(@as(u64, h + 1), heap.cnt);
        try testing.expectEqualSlices(u8, &data[h], heap.payload[0..data[h].len]);
    }
}

test "scatter receive is off for out-of-order streams, and when not asked for" {
    const stream = try testStream(.{ .reassembly = .{ .allow_out_of_order = true } });
    defer stream.destroy();
    const info = try UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0) });
    try testing.expect(!info.scatter);
    const stream2 = try testStream(.{});
    defer stream2.destroy();
    const info2 = try UdpReader.add(stream2, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0), .try_scatter = false });
    try testing.expect(!info2.scatter);
    // Allowed, but small packets never start it: they turn GRO on instead.
    const stream3 = try testStream(.{});
    defer stream3.destroy();
    const info3 = try UdpReader.add(stream3, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0), .scatter_probe_packets = 2 });
    try testing.expect(info3.scatter);
    const sender = try Sender.open(try std.net.Address.parseIp("127.0.0.1", info3.port));
    defer sender.close();
    var data: [3000]u8 = undefined;
    @memset(&data, 1);
    try sender.sendHeap(1, &data, 1000);
    const heap = try stream3.pop(5000);
    heap.deinit();
    const reader: *UdpReader = @ptrCast(@alignCast(stream3.readers[0].ctx));
    try testing.expect(!reader.use_scatter and !reader.scatter_allowed);
    try testing.expectEqual(info3.gro, reader.use_gro);
}

test "pause after an emptying receive: none for a small socket buffer, bounded for a large one" {
    const stream = try testStream(.{});
    defer stream.destroy();
    _ = try UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0), .buffer_size = 16384 });
    const small: *UdpReader = @ptrCast(@alignCast(stream.readers[0].ctx));
    try testing.expectEqual(@as(u64, 0), small.pause_ns);
    const info = try UdpReader.add(stream, .{ .address = try std.net.Address.parseIp("127.0.0.1", 0), .buffer_size = 8 << 20 });
    const large: *UdpReader = @ptrCast(@alignCast(stream.readers[1].ctx));
    try testing.expect(large.pause_ns <= pause_max_ns);
    // A quarter of the buffer lasts at least the pause at 40 Gb/s.
    try testing.expect(large.pause_ns * pause_fill_bytes_per_ns <= info.buffer_size / 4);
    if (info.buffer_size >= 4 << 20) try testing.expect(large.pause_ns >= pause_min_ns);
}
