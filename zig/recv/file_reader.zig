//! A reader over a file of concatenated SPEAD packets: what `send.BytesStream`
//! (and spead2's `BytesStream`) writes, memory framing (docs/PROTOCOL.md §10).
//! The file is mapped read-only and fed by a buffer reader in place
//! (zig/recv/stream.zig `BufferReader`), so its bytes are copied once, into
//! the heaps; the reader thread populates the mapping a window ahead
//! (`MADV_POPULATE_READ`) instead of taking a page fault per page.
//!
//! A pcap or pcapng capture of UDP traffic is read the same way
//! (`addCapture`), one datagram per packet.
//!
//! The mapping is owned here, never by JS: the reader unmaps it when it is
//! joined. A file that shrinks while it is being read would make the
//! reader's next access past the new end fault (SIGBUS); the reader guards
//! its mapping (zig/core/map_guard.zig), so the rest reads as zeros, and it
//! stops and counts `files_shrunk`. Bad contents are only counted (the reader
//! stops at the first undecodable packet, as spead2's memory reader does).
const std = @import("std");
const builtin = @import("builtin");
const linux = std.os.linux;
const assert = std.debug.assert;
const status = @import("../core/status.zig");
const Error = status.Error;
const sys_error = @import("../core/sys_error.zig");
const recv_stream = @import("stream.zig");
const Stream = recv_stream.Stream;

/// Longest path accepted (Linux's PATH_MAX, terminator included).
pub const path_len_max = 4096;

/// A read-only private mapping of a whole regular file.
const Mapping = struct {
    allocator: std.mem.Allocator,
    /// Empty for an empty file (nothing mapped).
    bytes: []align(std.heap.page_size_min) const u8,

    fn release(ctx: *anyopaque) void {
        const self: *Mapping = @ptrCast(@alignCast(ctx));
        if (self.bytes.len > 0) {
            const rc = linux.munmap(self.bytes.ptr, self.bytes.len);
            // Only a wrong address or length fails: a bug here.
            assert(linux.E.init(rc) == .SUCCESS);
        }
        const allocator = self.allocator;
        allocator.destroy(self);
    }
};

/// Records a failed call on `path` ("open /data/x.spead") for spead_last_error.
fn fail(errno: linux.E, op: []const u8, path: []const u8) Error {
    var text: [sys_error.text_len_max]u8 = undefined;
    const shown = std.fmt.bufPrint(&text, "{s} {s}", .{ op, path }) catch blk: {
        // Too long for the record: keep the end of the path, which names the file.
        const room = text.len - op.len - 4;
        break :blk std.fmt.bufPrint(&text, "{s} ...{s}", .{ op, path[path.len - room ..] }) catch unreachable;
    };
    return sys_error.fail(errno, shown, null);
}

/// Maps `path` (a regular file) read-only. `InvalidArgument` for an empty or
/// over-long path, one with a NUL byte, or something that is not a regular
/// file; `SystemError` (errno recorded) when it cannot be opened or mapped.
fn map(allocator: std.mem.Allocator, path: []const u8) Error!*Mapping {
    if (builtin.os.tag != .linux) return error.SystemError;
    if (path.len == 0 or path.len >= path_len_max) return error.InvalidArgument;
    if (std.mem.indexOfScalar(u8, path, 0) != null) return error.InvalidArgument;
    var z: [path_len_max]u8 = undefined;
    @memcpy(z[0..path.len], path);
    z[path.len] = 0;
    const path_z: [*:0]const u8 = z[0..path.len :0];

    const open_rc = linux.open(path_z, .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    if (linux.E.init(open_rc) != .SUCCESS) return fail(linux.E.init(open_rc), "open", path);
    const fd: i32 = @intCast(open_rc);
    defer _ = linux.close(fd);

    var st: linux.Stat = undefined;
    const stat_rc = linux.fstat(fd, &st);
    if (linux.E.init(stat_rc) != .SUCCESS) return fail(linux.E.init(stat_rc), "fstat", path);
    if (!linux.S.ISREG(st.mode)) return error.InvalidArgument;
    const size = std.math.cast(usize, st.size) orelse return error.InvalidArgument;

    const self = allocator.create(Mapping) catch return error.OutOfMemory;
    errdefer allocator.destroy(self);
    self.* = .{ .allocator = allocator, .bytes = &.{} };
    if (size == 0) return self;
    const rc = linux.mmap(null, size, linux.PROT.READ, .{ .TYPE = .PRIVATE }, fd, 0);
    if (linux.E.init(rc) != .SUCCESS) return fail(linux.E.init(rc), "mmap", path);
    const ptr: [*]align(std.heap.page_size_min) const u8 = @ptrFromInt(rc);
    self.bytes = ptr[0..size];
    // Read front to back: the kernel may read ahead further and drop pages behind.
    _ = linux.madvise(@constCast(ptr), size, linux.MADV.SEQUENTIAL);
    return self;
}

/// Maps `path` and starts a buffer reader thread over it, which stops the
/// stream at the end of the file. The reader owns the mapping and unmaps it
/// when joined (stop or destroy). Errors as `map`, and as
/// `BufferReader.addBorrowed` (`Stopped`, `CapacityExceeded`).
pub fn add(stream: *Stream, path: []const u8) Error!void {
    const mapping = try map(stream.allocator, path);
    errdefer Mapping.release(mapping);
    try recv_stream.BufferReader.addBorrowed(stream, .{
        .bytes = mapping.bytes,
        .ctx = mapping,
        .release = Mapping.release,
        .populate = true,
    });
}

/// Maps the pcap or pcapng capture at `path` and starts a buffer reader thread that
/// feeds it one UDP datagram per packet (zig/recv/pcap.zig), then stops the
/// stream at the end of the file. `port` other than 0 keeps only datagrams to
/// that destination port. `Malformed` when the file is neither, or a classic
/// capture of a link type pcap.zig does not read; otherwise errors as `add`.
pub fn addCapture(stream: *Stream, path: []const u8, port: u16) Error!void {
    const mapping = try map(stream.allocator, path);
    errdefer Mapping.release(mapping);
    const capture = pcap.Capture.open(mapping.bytes) catch return error.Malformed;
    try recv_stream.BufferReader.addBorrowed(stream, .{
        .bytes = mapping.bytes,
        .ctx = mapping,
        .release = Mapping.release,
        .populate = true,
        .framing = .{ .capture = .{ .capture = capture, .port = port } },
    });
}

const pcap = @import("pcap.zig");

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;
const packet_mod = @import("packet.zig");

fn testStream() !*Stream {
    return recv_stream.testStream(.{ .ring_heaps = 4 });
}

/// Writes `bytes` to a file in `dir` and returns its absolute path.
fn writeTemp(dir: std.testing.TmpDir, name: []const u8, bytes: []const u8, buf: []u8) ![]const u8 {
    try dir.dir.writeFile(.{ .sub_path = name, .data = bytes });
    return dir.dir.realpath(name, buf);
}

/// One single-packet heap `cnt` with `payload`.
fn appendHeap(out: *std.ArrayList(u8), cnt: u64, payload: []const u8) !void {
    var buf: [2048]u8 = undefined;
    const imm = packet_mod.imm;
    try out.appendSlice(packet_mod.buildTestPacket(&buf, 40, &.{ imm(1, cnt), imm(2, payload.len), imm(3, 0), imm(4, payload.len), packet_mod.addr(0x1000, 0) }, payload));
}

/// Pops until stopped; returns the heap cnts in order.
fn drain(stream: *Stream, cnts: *std.ArrayList(u64)) !void {
    var i: usize = 0;
    while (i < 10_000) : (i += 1) {
        const heap = stream.pop(5000) catch |err| switch (err) {
            error.Stopped => return,
            else => return err,
        };
        defer heap.deinit();
        try cnts.append(heap.cnt);
    }
    return error.TestUnexpectedResult;
}

test "file reader: heaps of a packet file in order, then stopped" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    for (1..11) |cnt| try appendHeap(&bytes, cnt, "0123456789abcdef");
    var path_buf: [std.fs.max_path_bytes]u8 = undefined;
    const path = try writeTemp(tmp, "ten.spead", bytes.items, &path_buf);

    const stream = try testStream();
    defer stream.destroy();
    try expectRead(stream, path, &.{ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, null);
    try testing.expectEqual(@as(u64, 10), stream.stat(.packets));
}

test "file reader: truncated and garbage files are counted, empty files just stop" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    for (1..4) |cnt| try appendHeap(&bytes, cnt, "0123456789abcdef");
    var path_buf: [std.fs.max_path_bytes]u8 = undefined;

    // Cut inside the last packet: two heaps, then one truncated packet counted.
    const cut = try writeTemp(tmp, "cut.spead", bytes.items[0 .. bytes.items.len - 5], &path_buf);
    try expectFile(cut, &.{ 1, 2 }, .packets_rejected_truncated);
    // Not SPEAD at all: nothing, one bad packet counted.
    const junk = try writeTemp(tmp, "junk.bin", "this is not a SPEAD packet, just text that is long enough", &path_buf);
    try expectFile(junk, &.{}, .packets_rejected_bad_magic);
    // Empty: nothing mapped, the stream stops.
    const empty = try writeTemp(tmp, "empty.spead", "", &path_buf);
    try expectFile(empty, &.{}, null);
}

/// Reads `path` through a new stream: the heap cnts must be `want`, and
/// `rejected` (if any) must count one packet.
fn expectFile(path: []const u8, want: []const u64, rejected: ?recv_stream.Stat) !void {
    const stream = try testStream();
    defer stream.destroy();
    try expectRead(stream, path, want, rejected);
}

fn expectRead(stream: *Stream, path: []const u8, want: []const u64, rejected: ?recv_stream.Stat) !void {
    try add(stream, path);
    var cnts = std.ArrayList(u64).init(testing.allocator);
    defer cnts.deinit();
    try drain(stream, &cnts);
    try testing.expectEqualSlices(u64, want, cnts.items);
    if (rejected) |stat| try testing.expectEqual(@as(u64, 1), stream.stat(stat));
}

test "file reader: bad paths are refused with a status and leave the stream usable" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const stream = try testStream();
    defer stream.destroy();
    try testing.expectError(error.InvalidArgument, add(stream, ""));
    try testing.expectError(error.InvalidArgument, add(stream, "a\x00b"));
    try testing.expectError(error.SystemError, add(stream, "/nonexistent/spead/file"));
    try testing.expectEqual(@as(u16, @intFromEnum(linux.E.NOENT)), sys_error.get().errno);
    try testing.expect(std.mem.startsWith(u8, sys_error.get().text, "open /nonexistent"));
    var path_buf: [std.fs.max_path_bytes]u8 = undefined;
    const dir_path = try tmp.dir.realpath(".", &path_buf);
    try testing.expectError(error.InvalidArgument, add(stream, dir_path)); // a directory
    const long = [_]u8{'a'} ** path_len_max;
    try testing.expectError(error.InvalidArgument, add(stream, &long));
    // Still usable: a good file after the refusals.
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    try appendHeap(&bytes, 7, "payload");
    var file_buf: [std.fs.max_path_bytes]u8 = undefined;
    const path = try writeTemp(tmp, "one.spead", bytes.items, &file_buf);
    try expectRead(stream, path, &.{7}, null);
}

test "file reader: the mapping is released when the stream is destroyed early" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    for (1..200) |cnt| try appendHeap(&bytes, cnt, "0123456789abcdef");
    var path_buf: [std.fs.max_path_bytes]u8 = undefined;
    const path = try writeTemp(tmp, "many.spead", bytes.items, &path_buf);
    // Nobody pops: the reader blocks on the full ring until destroy stops it
    // (testing.allocator reports the Mapping if it is not released).
    const stream = try testStream();
    try add(stream, path);
    stream.destroy();
}

/// Appends the single packet of heap `cnt` as a captured Ethernet frame to `port`.
fn appendCapturedHeap(out: *std.ArrayList(u8), endian: std.builtin.Endian, cnt: u64, payload: []const u8, port: u16) !void {
    var packet = std.ArrayList(u8).init(testing.allocator);
    defer packet.deinit();
    try appendHeap(&packet, cnt, payload);
    var frame: [2048]u8 = undefined;
    try pcap.writeRecord(out, endian, pcap.buildEthernetIpv4Udp(&frame, packet.items, port), null);
}

test "capture reader: datagrams in order, other frames counted and passed over, then stopped" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    for ([_]std.builtin.Endian{ .little, .big }) |endian| {
        var bytes = std.ArrayList(u8).init(testing.allocator);
        defer bytes.deinit();
        try pcap.writeGlobalHeader(&bytes, endian, true, .ethernet);
        try appendCapturedHeap(&bytes, endian, 1, "first heap", 7148);
        try pcap.writeRecord(&bytes, endian, "not an IP frame at all", null);
        try appendCapturedHeap(&bytes, endian, 2, "other port", 7149);
        // Snapped by the capture: counted, not fed.
        var frame: [2048]u8 = undefined;
        var packet = std.ArrayList(u8).init(testing.allocator);
        defer packet.deinit();
        try appendHeap(&packet, 3, "snapped");
        try pcap.writeRecord(&bytes, endian, pcap.buildEthernetIpv4Udp(&frame, packet.items, 7148), 50);
        // A UDP datagram that is not SPEAD.
        try pcap.writeRecord(&bytes, endian, pcap.buildEthernetIpv4Udp(&frame, "hello", 7148), null);
        try appendCapturedHeap(&bytes, endian, 4, "last heap", 7148);
        var path_buf: [std.fs.max_path_bytes]u8 = undefined;
        const path = try writeTemp(tmp, "capture.pcap", bytes.items, &path_buf);

        // Every port.
        {
            const stream = try testStream();
            defer stream.destroy();
            try addCapture(stream, path, 0);
            var cnts = std.ArrayList(u64).init(testing.allocator);
            defer cnts.deinit();
            try drain(stream, &cnts);
            try testing.expectEqualSlices(u64, &.{ 1, 2, 4 }, cnts.items);
            try testing.expectEqual(@as(u64, 1), stream.stat(.capture_frames_not_udp));
            try testing.expectEqual(@as(u64, 1), stream.stat(.capture_frames_truncated));
            try testing.expectEqual(@as(u64, 0), stream.stat(.capture_frames_filtered));
            try testing.expectEqual(@as(u64, 1), stream.stat(.packets_rejected_truncated));
            try testing.expectEqual(@as(u64, 3), stream.stat(.packets));
        }
        // One port; the file cut inside its last record.
        {
            const cut = try writeTemp(tmp, "cut.pcap", bytes.items[0 .. bytes.items.len - 3], &path_buf);
            const stream = try testStream();
            defer stream.destroy();
            try addCapture(stream, cut, 7148);
            var cnts = std.ArrayList(u64).init(testing.allocator);
            defer cnts.deinit();
            try drain(stream, &cnts);
            try testing.expectEqualSlices(u64, &.{1}, cnts.items);
            try testing.expectEqual(@as(u64, 1), stream.stat(.capture_frames_filtered));
            try testing.expectEqual(@as(u64, 2), stream.stat(.capture_frames_truncated));
        }
    }
}

test "capture reader: files that are not pcap captures are refused and leave the stream usable" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    var path_buf: [std.fs.max_path_bytes]u8 = undefined;
    const stream = try testStream();
    defer stream.destroy();
    const empty = try writeTemp(tmp, "empty.pcap", "", &path_buf);
    try testing.expectError(error.Malformed, addCapture(stream, empty, 0));
    var spead = std.ArrayList(u8).init(testing.allocator);
    defer spead.deinit();
    for (1..4) |cnt| try appendHeap(&spead, cnt, "0123456789abcdef");
    const packets = try writeTemp(tmp, "packets.spead", spead.items, &path_buf);
    try testing.expectError(error.Malformed, addCapture(stream, packets, 0));
    try testing.expectError(error.SystemError, addCapture(stream, "/nonexistent/x.pcap", 0));
    // A capture with only its global header: no heaps, the stream stops.
    var header = std.ArrayList(u8).init(testing.allocator);
    defer header.deinit();
    try pcap.writeGlobalHeader(&header, .little, false, .linux_sll2);
    const bare = try writeTemp(tmp, "bare.pcap", header.items, &path_buf);
    try addCapture(stream, bare, 0);
    var cnts = std.ArrayList(u64).init(testing.allocator);
    defer cnts.deinit();
    try drain(stream, &cnts);
    try testing.expectEqual(@as(usize, 0), cnts.items.len);
}

test "capture reader: a pcapng capture of two interfaces in two sections" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    var frame: [2048]u8 = undefined;
    var packet = std.ArrayList(u8).init(testing.allocator);
    defer packet.deinit();
    try pcap.writeSectionHeader(&bytes, .little);
    try pcap.writeInterface(&bytes, .little, 0, 0); // LINKTYPE_NULL: its packets are skipped
    try pcap.writeInterface(&bytes, .little, @intFromEnum(pcap.LinkType.ethernet), 65535);
    for ([_]u64{ 1, 2 }) |cnt| {
        packet.clearRetainingCapacity();
        try appendHeap(&packet, cnt, "over ethernet");
        try pcap.writeEnhancedPacket(&bytes, .little, 1, pcap.buildEthernetIpv4Udp(&frame, packet.items, 7148), null);
        try pcap.writeEnhancedPacket(&bytes, .little, 0, packet.items, null);
    }
    try pcap.writeSectionHeader(&bytes, .big);
    try pcap.writeInterface(&bytes, .big, @intFromEnum(pcap.LinkType.raw), 65535);
    packet.clearRetainingCapacity();
    try appendHeap(&packet, 3, "raw IP, big-endian section");
    try pcap.writeEnhancedPacket(&bytes, .big, 0, pcap.buildEthernetIpv4Udp(&frame, packet.items, 7148)[14..], null);
    var path_buf: [std.fs.max_path_bytes]u8 = undefined;
    const path = try writeTemp(tmp, "capture.pcapng", bytes.items, &path_buf);

    const stream = try testStream();
    defer stream.destroy();
    try addCapture(stream, path, 7148);
    var cnts = std.ArrayList(u64).init(testing.allocator);
    defer cnts.deinit();
    try drain(stream, &cnts);
    try testing.expectEqualSlices(u64, &.{ 1, 2, 3 }, cnts.items);
    try testing.expectEqual(@as(u64, 2), stream.stat(.capture_frames_not_udp));
    try testing.expectEqual(@as(u64, 0), stream.stat(.capture_frames_truncated));
}

test "file reader: a file cut short while it is read stops the stream with files_shrunk, not SIGBUS" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    var bytes = std.ArrayList(u8).init(testing.allocator);
    defer bytes.deinit();
    const payload = [_]u8{0x5a} ** 1000;
    for (1..2001) |cnt| try appendHeap(&bytes, cnt, &payload);
    var path_buf: [std.fs.max_path_bytes]u8 = undefined;
    const path = try writeTemp(tmp, "shrinks.spead", bytes.items, &path_buf);

    // A ring of 4: the reader blocks after a few heaps, well before the cut.
    const stream = try testStream();
    defer stream.destroy();
    try add(stream, path);
    const first = try stream.pop(5000);
    try testing.expectEqual(@as(u64, 1), first.cnt);
    first.deinit();
    const file = try tmp.dir.openFile("shrinks.spead", .{ .mode = .read_write });
    // At a page boundary: past the last page the mapping faults (within a page
    // the rest reads as zeros, which the reader takes as a bad packet).
    try file.setEndPos(std.mem.alignBackward(usize, bytes.items.len / 4, std.heap.pageSize()));
    file.close();
    var cnts = std.ArrayList(u64).init(testing.allocator);
    defer cnts.deinit();
    try drain(stream, &cnts);
    // Some heaps after the first, fewer than the file had, then a stop (not a crash).
    try testing.expect(cnts.items.len > 0 and cnts.items.len < 1999);
    try testing.expectEqual(@as(u64, 1), stream.stat(.files_shrunk));
}
