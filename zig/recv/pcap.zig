//! Packet capture files (what `tcpdump -w` and Wireshark write), read down to
//! the payload of each UDP datagram, for the capture reader in
//! zig/recv/file_reader.zig: a stream can replay a capture of SPEAD traffic as
//! spead2's `udp_pcap_file_reader` (libpcap) does.
//!
//! What is read: classic pcap in either byte order, with microsecond or
//! nanosecond timestamps (which are not used), and pcapng (any number of
//! sections and interfaces, either byte order; enhanced, simple and obsolete
//! packet blocks; other blocks passed over); link types Ethernet (with up to
//! two 802.1Q/802.1ad tags), Linux cooked captures v1 and v2 (`tcpdump -i
//! any`), and raw IP; IPv4 datagrams that are not fragments (as spead2) and
//! IPv6 datagrams whose next header is UDP.
//!
//! Everything here is a pure function of the bytes: a capture comes from disk,
//! so every length is checked against what is there, and a frame that does
//! not parse is a `Skip` reason the reader counts, never a failure.
const std = @import("std");
const assert = std.debug.assert;

pub const global_header_size = 24;
pub const record_header_size = 16;

const magic_micro: u32 = 0xa1b2_c3d4;
const magic_nano: u32 = 0xa1b2_3c4d;
const block_section_header: u32 = 0x0a0d_0d0a;
const block_interface: u32 = 0x0000_0001;
const block_packet_obsolete: u32 = 0x0000_0002;
const block_simple_packet: u32 = 0x0000_0003;
const block_enhanced_packet: u32 = 0x0000_0006;
const byte_order_magic: u32 = 0x1a2b_3c4d;
/// Interfaces of one pcapng section that are remembered; packets of later
/// ones are skipped as `not_udp`.
pub const interfaces_max = 64;

/// Link types read (LINKTYPE_* values of the pcap formats).
pub const LinkType = enum(u16) {
    ethernet = 1,
    raw = 101,
    linux_sll = 113,
    ipv4 = 228,
    ipv6 = 229,
    linux_sll2 = 276,
};

pub const OpenError = error{
    /// Neither a classic pcap file nor a pcapng file (too short, another magic number).
    NotPcap,
    /// A classic pcap file with a link type other than those of `LinkType`.
    UnsupportedLinkType,
};

pub const Format = enum { pcap, pcapng };

/// A capture being read: the format, and what the records read so far say
/// about the ones to come (pcapng: byte order and interfaces of the section).
pub const Capture = struct {
    format: Format,
    /// Fields are stored in the writer's byte order (pcapng: per section).
    endian: std.builtin.Endian,
    /// Classic pcap: the file's link type.
    link: u16 = 0,
    /// pcapng: the link types of the current section's interfaces, in order.
    interfaces: [interfaces_max]u16 = undefined,
    /// pcapng: interface description blocks seen in this section (may exceed `interfaces_max`).
    interface_count: u32 = 0,
    /// pcapng: the snap length of interface 0, which bounds simple packet blocks.
    snap_length_0: u32 = 0,

    /// Reads the start of `bytes`: a classic global header or a pcapng
    /// section header block.
    pub fn open(bytes: []const u8) OpenError!Capture {
        if (bytes.len < 4) return error.NotPcap;
        const little = std.mem.readInt(u32, bytes[0..4], .little);
        if (little == block_section_header) {
            if (bytes.len < 12) return error.NotPcap;
            const endian = sectionEndian(bytes[8..12]) orelse return error.NotPcap;
            return .{ .format = .pcapng, .endian = endian };
        }
        if (bytes.len < global_header_size) return error.NotPcap;
        const endian: std.builtin.Endian = if (little == magic_micro or little == magic_nano)
            .little
        else if (@byteSwap(little) == magic_micro or @byteSwap(little) == magic_nano)
            .big
        else
            return error.NotPcap;
        // The link type is the low 16 bits (the upper ones carry FCS flags we do not read).
        const network: u16 = @truncate(std.mem.readInt(u32, bytes[20..24], endian));
        _ = std.meta.intToEnum(LinkType, network) catch return error.UnsupportedLinkType;
        return .{ .format = .pcap, .endian = endian, .link = network };
    }

    /// Where the first record starts (pcapng: the section header, read as a block).
    pub fn start(self: *const Capture) usize {
        return switch (self.format) {
            .pcap => global_header_size,
            .pcapng => 0,
        };
    }

    /// The record at `offset` (a record boundary at or after `start()`) and
    /// where the next one starts. pcapng blocks that describe rather than
    /// carry packets update the capture and come back as `.other`.
    pub fn next(self: *Capture, bytes: []const u8, offset: usize) Record {
        assert(offset >= self.start() and offset <= bytes.len);
        return switch (self.format) {
            .pcap => self.nextPcap(bytes, offset),
            .pcapng => self.nextBlock(bytes, offset),
        };
    }

    fn nextPcap(self: *const Capture, bytes: []const u8, offset: usize) Record {
        const rest = bytes[offset..];
        if (rest.len == 0) return .end;
        if (rest.len < record_header_size) return .cut_short;
        const included = std.mem.readInt(u32, rest[8..12], self.endian);
        const original = std.mem.readInt(u32, rest[12..16], self.endian);
        if (included > rest.len - record_header_size) return .cut_short;
        return .{ .frame = .{
            .bytes = rest[record_header_size..][0..included],
            .complete = included >= original,
            .next = offset + record_header_size + included,
            .link = self.link,
        } };
    }

    fn nextBlock(self: *Capture, bytes: []const u8, offset: usize) Record {
        const rest = bytes[offset..];
        if (rest.len == 0) return .end;
        if (rest.len < 12) return .cut_short;
        const kind_little = std.mem.readInt(u32, rest[0..4], .little);
        if (kind_little == block_section_header) {
            // A new section: its own byte order, no interfaces yet.
            if (rest.len < 28) return .cut_short;
            self.endian = sectionEndian(rest[8..12]) orelse return .corrupt;
            self.interface_count = 0;
        }
        const kind = std.mem.readInt(u32, rest[0..4], self.endian);
        const length = std.mem.readInt(u32, rest[4..8], self.endian);
        if (length < 12 or length % 4 != 0) return .corrupt;
        if (length > rest.len) return .cut_short;
        const body = rest[8 .. length - 4];
        const after = offset + length;
        switch (kind) {
            block_interface => {
                if (body.len < 8) return .corrupt;
                if (self.interface_count < interfaces_max) {
                    self.interfaces[self.interface_count] = std.mem.readInt(u16, body[0..2], self.endian);
                }
                if (self.interface_count == 0) self.snap_length_0 = std.mem.readInt(u32, body[4..8], self.endian);
                self.interface_count += 1;
                return .{ .other = after };
            },
            block_enhanced_packet, block_packet_obsolete => {
                if (body.len < 20) return .corrupt;
                const interface: u32 = if (kind == block_enhanced_packet)
                    std.mem.readInt(u32, body[0..4], self.endian)
                else
                    std.mem.readInt(u16, body[0..2], self.endian);
                const included = std.mem.readInt(u32, body[12..16], self.endian);
                const original = std.mem.readInt(u32, body[16..20], self.endian);
                if (included > body.len - 20) return .corrupt;
                return .{ .frame = .{
                    .bytes = body[20..][0..included],
                    .complete = included >= original,
                    .next = after,
                    .link = self.interfaceLink(interface),
                } };
            },
            block_simple_packet => {
                if (body.len < 4) return .corrupt;
                const original = std.mem.readInt(u32, body[0..4], self.endian);
                var included = @min(original, body.len - 4);
                if (self.snap_length_0 != 0) included = @min(included, self.snap_length_0);
                return .{ .frame = .{
                    .bytes = body[4..][0..included],
                    .complete = included >= original,
                    .next = after,
                    .link = self.interfaceLink(0),
                } };
            },
            else => return .{ .other = after },
        }
    }

    /// The link type of a pcapng interface of this section; 0 (no link type
    /// this file reads) for one never described or past `interfaces_max`.
    fn interfaceLink(self: *const Capture, interface: u32) u16 {
        if (interface >= self.interface_count or interface >= interfaces_max) return 0;
        return self.interfaces[interface];
    }

    /// The UDP payload in `frame` (captured on a `link` link), or why there
    /// is none. `port` other than 0 keeps only datagrams to that destination port.
    pub fn udpPayload(frame: []const u8, link: u16, port: u16) Payload {
        const known = std.meta.intToEnum(LinkType, link) catch return .{ .skip = .not_udp };
        const found: ?IpPacket = switch (known) {
            .ethernet => ethernetPayload(frame),
            .linux_sll => linkPayload(frame, 16, 14),
            .linux_sll2 => linkPayload(frame, 20, 0),
            .raw, .ipv4, .ipv6 => IpPacket{ .bytes = frame, .ethertype = null },
        };
        const ip = found orelse return .{ .skip = .not_udp };
        return ipUdpPayload(ip, port);
    }
};

/// The byte order a pcapng section header's byte-order magic says, or null.
fn sectionEndian(magic: *const [4]u8) ?std.builtin.Endian {
    if (std.mem.readInt(u32, magic, .little) == byte_order_magic) return .little;
    if (std.mem.readInt(u32, magic, .big) == byte_order_magic) return .big;
    return null;
}

pub const Record = union(enum) {
    /// A captured frame; `complete` is false when the capture kept only its
    /// start. `link` is its link type (0 when the capture does not say).
    frame: struct { bytes: []const u8, complete: bool, next: usize, link: u16 },
    /// A pcapng block that carries no packet; the next record starts here.
    other: usize,
    /// The file ends exactly at a record boundary.
    end,
    /// The file ends inside a record (a capture that was cut off).
    cut_short,
    /// A pcapng block whose lengths do not add up: nothing after it can be trusted.
    corrupt,
};

pub const Skip = enum {
    /// Not an unfragmented UDP datagram over IPv4 or IPv6, or a header that does not parse.
    not_udp,
    /// A UDP datagram to another destination port than the one asked for.
    filtered,
};

pub const Payload = union(enum) {
    udp: []const u8,
    skip: Skip,
};

const ethertype_ipv4: u16 = 0x0800;
const ethertype_ipv6: u16 = 0x86dd;
const ethertype_vlan: u16 = 0x8100;
const ethertype_qinq: u16 = 0x88a8;

/// An IP packet and the link's protocol type for it (null: judge by the version nibble).
const IpPacket = struct { bytes: []const u8, ethertype: ?u16 };

fn ethernetPayload(frame: []const u8) ?IpPacket {
    var at: usize = 12;
    var tags: u32 = 0;
    while (true) {
        if (frame.len < at + 2) return null;
        const ethertype = std.mem.readInt(u16, frame[at..][0..2], .big);
        if ((ethertype == ethertype_vlan or ethertype == ethertype_qinq) and tags < 2) {
            at += 4;
            tags += 1;
            continue;
        }
        return .{ .bytes = frame[at + 2 ..], .ethertype = ethertype };
    }
}

/// Linux cooked headers: `header` bytes, the protocol type at `type_at`.
fn linkPayload(frame: []const u8, header: usize, type_at: usize) ?IpPacket {
    if (frame.len < header) return null;
    return .{ .bytes = frame[header..], .ethertype = std.mem.readInt(u16, frame[type_at..][0..2], .big) };
}

const udp_protocol: u8 = 17;
const udp_header_size = 8;

fn ipUdpPayload(ip: IpPacket, port: u16) Payload {
    const bytes = ip.bytes;
    if (bytes.len < 1) return .{ .skip = .not_udp };
    const version = bytes[0] >> 4;
    if (ip.ethertype) |t| {
        const expected: u8 = switch (t) {
            ethertype_ipv4 => 4,
            ethertype_ipv6 => 6,
            else => return .{ .skip = .not_udp },
        };
        if (version != expected) return .{ .skip = .not_udp };
    }
    const datagram: []const u8 = switch (version) {
        4 => ipv4: {
            if (bytes.len < 20) return .{ .skip = .not_udp };
            const header = @as(usize, bytes[0] & 0x0f) * 4;
            const total = std.mem.readInt(u16, bytes[2..4], .big);
            if (header < 20 or total < header or total > bytes.len) return .{ .skip = .not_udp };
            // More-fragments flag or a fragment offset: a piece of a datagram (spead2 drops these too).
            if (std.mem.readInt(u16, bytes[6..8], .big) & 0x3fff != 0) return .{ .skip = .not_udp };
            if (bytes[9] != udp_protocol) return .{ .skip = .not_udp };
            break :ipv4 bytes[header..total];
        },
        6 => ipv6: {
            if (bytes.len < 40) return .{ .skip = .not_udp };
            const payload_len = std.mem.readInt(u16, bytes[4..6], .big);
            if (bytes[6] != udp_protocol or payload_len > bytes.len - 40) return .{ .skip = .not_udp };
            break :ipv6 bytes[40..][0..payload_len];
        },
        else => return .{ .skip = .not_udp },
    };
    if (datagram.len < udp_header_size) return .{ .skip = .not_udp };
    const udp_len = std.mem.readInt(u16, datagram[4..6], .big);
    if (udp_len < udp_header_size or udp_len > datagram.len) return .{ .skip = .not_udp };
    if (port != 0 and std.mem.readInt(u16, datagram[2..4], .big) != port) return .{ .skip = .filtered };
    return .{ .udp = datagram[udp_header_size..udp_len] };
}

// ---------------------------------------------------------------------------
// Writing captures (tests, here and in zig/recv/file_reader.zig)

/// Appends a classic global header.
pub fn writeGlobalHeader(out: *std.ArrayList(u8), endian: std.builtin.Endian, nano: bool, link: LinkType) !void {
    var h: [global_header_size]u8 = undefined;
    std.mem.writeInt(u32, h[0..4], if (nano) magic_nano else magic_micro, endian);
    std.mem.writeInt(u16, h[4..6], 2, endian);
    std.mem.writeInt(u16, h[6..8], 4, endian);
    std.mem.writeInt(u32, h[8..12], 0, endian);
    std.mem.writeInt(u32, h[12..16], 0, endian);
    std.mem.writeInt(u32, h[16..20], 262144, endian);
    std.mem.writeInt(u32, h[20..24], @intFromEnum(link), endian);
    try out.appendSlice(&h);
}

/// Appends a classic record holding the first `keep` bytes of `frame` (all of it if null).
pub fn writeRecord(out: *std.ArrayList(u8), endian: std.builtin.Endian, frame: []const u8, keep: ?usize) !void {
    const included = keep orelse frame.len;
    assert(included <= frame.len);
    var h: [record_header_size]u8 = undefined;
    std.mem.writeInt(u32, h[0..4], 1_700_000_000, endian);
    std.mem.writeInt(u32, h[4..8], 0, endian);
    std.mem.writeInt(u32, h[8..12], @intCast(included), endian);
    std.mem.writeInt(u32, h[12..16], @intCast(frame.len), endian);
    try out.appendSlice(&h);
    try out.appendSlice(frame[0..included]);
}

/// Appends a pcapng block of `kind` around `body` (padded to 4 bytes).
pub fn writeBlock(out: *std.ArrayList(u8), endian: std.builtin.Endian, kind: u32, body: []const u8) !void {
    const padded = std.mem.alignForward(usize, body.len, 4);
    const length: u32 = @intCast(12 + padded);
    var word: [4]u8 = undefined;
    std.mem.writeInt(u32, &word, kind, endian);
    try out.appendSlice(&word);
    std.mem.writeInt(u32, &word, length, endian);
    try out.appendSlice(&word);
    try out.appendSlice(body);
    try out.appendNTimes(0, padded - body.len);
    try out.appendSlice(&word);
}

/// Appends a pcapng section header block.
pub fn writeSectionHeader(out: *std.ArrayList(u8), endian: std.builtin.Endian) !void {
    var b: [16]u8 = undefined;
    std.mem.writeInt(u32, b[0..4], byte_order_magic, endian);
    std.mem.writeInt(u16, b[4..6], 1, endian);
    std.mem.writeInt(u16, b[6..8], 0, endian);
    std.mem.writeInt(i64, b[8..16], -1, endian);
    try writeBlock(out, endian, block_section_header, &b);
}

/// Appends a pcapng interface description block.
pub fn writeInterface(out: *std.ArrayList(u8), endian: std.builtin.Endian, link: u16, snap_length: u32) !void {
    var b: [8]u8 = undefined;
    std.mem.writeInt(u16, b[0..2], link, endian);
    std.mem.writeInt(u16, b[2..4], 0, endian);
    std.mem.writeInt(u32, b[4..8], snap_length, endian);
    try writeBlock(out, endian, block_interface, &b);
}

/// Appends a pcapng enhanced packet block on `interface` holding the first
/// `keep` bytes of `frame` (all of it if null).
pub fn writeEnhancedPacket(out: *std.ArrayList(u8), endian: std.builtin.Endian, interface: u32, frame: []const u8, keep: ?usize) !void {
    const included = keep orelse frame.len;
    assert(included <= frame.len and frame.len <= 65536);
    var b: [20 + 65536]u8 = undefined;
    std.mem.writeInt(u32, b[0..4], interface, endian);
    std.mem.writeInt(u32, b[4..8], 0, endian);
    std.mem.writeInt(u32, b[8..12], 0, endian);
    std.mem.writeInt(u32, b[12..16], @intCast(included), endian);
    std.mem.writeInt(u32, b[16..20], @intCast(frame.len), endian);
    @memcpy(b[20..][0..included], frame[0..included]);
    try writeBlock(out, endian, block_enhanced_packet, b[0 .. 20 + included]);
}

/// Builds an Ethernet + IPv4 + UDP frame around `payload` into `buf`.
pub fn buildEthernetIpv4Udp(buf: []u8, payload: []const u8, port: u16) []const u8 {
    const len = 14 + 20 + udp_header_size + payload.len;
    assert(buf.len >= len and 20 + udp_header_size + payload.len <= 0xffff);
    @memset(buf[0..12], 0);
    std.mem.writeInt(u16, buf[12..14], ethertype_ipv4, .big);
    const ip = buf[14..];
    @memset(ip[0..20], 0);
    ip[0] = 0x45;
    std.mem.writeInt(u16, ip[2..4], @intCast(20 + udp_header_size + payload.len), .big);
    std.mem.writeInt(u16, ip[6..8], 0x4000, .big); // don't fragment
    ip[8] = 64;
    ip[9] = udp_protocol;
    ip[12..16].* = .{ 127, 0, 0, 1 };
    ip[16..20].* = .{ 127, 0, 0, 1 };
    const udp = ip[20..];
    std.mem.writeInt(u16, udp[0..2], 40000, .big);
    std.mem.writeInt(u16, udp[2..4], port, .big);
    std.mem.writeInt(u16, udp[4..6], @intCast(udp_header_size + payload.len), .big);
    std.mem.writeInt(u16, udp[6..8], 0, .big);
    @memcpy(udp[udp_header_size..][0..payload.len], payload);
    return buf[0..len];
}

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;

test "open: classic headers in both byte orders and timestamp kinds, pcapng sections; others refused" {
    for ([_]std.builtin.Endian{ .little, .big }) |endian| {
        for ([_]bool{ false, true }) |nano| {
            var out = std.ArrayList(u8).init(testing.allocator);
            defer out.deinit();
            try writeGlobalHeader(&out, endian, nano, .linux_sll2);
            const c = try Capture.open(out.items);
            try testing.expectEqual(Format.pcap, c.format);
            try testing.expectEqual(endian, c.endian);
            try testing.expectEqual(@as(u16, @intFromEnum(LinkType.linux_sll2)), c.link);
            try testing.expectEqual(@as(usize, global_header_size), c.start());
            try testing.expectError(error.NotPcap, Capture.open(out.items[0 .. global_header_size - 1]));
        }
        var ng = std.ArrayList(u8).init(testing.allocator);
        defer ng.deinit();
        try writeSectionHeader(&ng, endian);
        const c = try Capture.open(ng.items);
        try testing.expectEqual(Format.pcapng, c.format);
        try testing.expectEqual(endian, c.endian);
        try testing.expectEqual(@as(usize, 0), c.start());
        ng.items[8] ^= 0xff; // a broken byte-order magic
        try testing.expectError(error.NotPcap, Capture.open(ng.items));
    }
    var out = std.ArrayList(u8).init(testing.allocator);
    defer out.deinit();
    try writeGlobalHeader(&out, .little, false, .ethernet);
    std.mem.writeInt(u32, out.items[20..24], 0, .little); // LINKTYPE_NULL (BSD loopback)
    try testing.expectError(error.UnsupportedLinkType, Capture.open(out.items));
    try testing.expectError(error.NotPcap, Capture.open("not a capture, just some text"));
}

test "classic records: frames in order, snapped frames marked, a cut-off tail reported" {
    var out = std.ArrayList(u8).init(testing.allocator);
    defer out.deinit();
    try writeGlobalHeader(&out, .big, false, .ethernet);
    try writeRecord(&out, .big, "abcdef", null);
    try writeRecord(&out, .big, "0123456789", 4);
    var c = try Capture.open(out.items);
    const first = c.next(out.items, c.start()).frame;
    try testing.expectEqualStrings("abcdef", first.bytes);
    try testing.expect(first.complete);
    try testing.expectEqual(@as(u16, 1), first.link);
    const second = c.next(out.items, first.next).frame;
    try testing.expectEqualStrings("0123", second.bytes);
    try testing.expect(!second.complete);
    try testing.expectEqual(Record.end, c.next(out.items, second.next));
    // Cut inside a record header, then inside a record's bytes.
    try testing.expectEqual(Record.cut_short, c.next(out.items[0 .. second.next - 5], first.next));
    try testing.expectEqual(Record.cut_short, c.next(out.items[0 .. first.next + 3], first.next));
}

/// Reads every record of `bytes`; returns the frames' bytes and link types joined as "bytes@link;".
fn readAll(bytes: []const u8, out: *std.ArrayList(u8)) !Record {
    var c = try Capture.open(bytes);
    var offset = c.start();
    var i: usize = 0;
    while (i < 1000) : (i += 1) {
        const r = c.next(bytes, offset);
        switch (r) {
            .frame => |f| {
                try out.writer().print("{s}@{d}{s};", .{ f.bytes, f.link, if (f.complete) "" else "~" });
                offset = f.next;
            },
            .other => |n| offset = n,
            else => return r,
        }
    }
    return error.TestUnexpectedResult;
}

test "pcapng: interfaces per section, byte order per section, snapped and simple packets, unknown blocks" {
    var out = std.ArrayList(u8).init(testing.allocator);
    defer out.deinit();
    try writeSectionHeader(&out, .little);
    try writeInterface(&out, .little, 1, 0);
    try writeInterface(&out, .little, 276, 0);
    try writeBlock(&out, .little, 0x0000_0005, "interface statistics, skipped");
    try writeEnhancedPacket(&out, .little, 1, "second", null);
    try writeEnhancedPacket(&out, .little, 0, "first!", 3);
    try writeEnhancedPacket(&out, .little, 7, "nowhere", null); // an interface never described
    // A second section, big-endian, whose interface 0 is raw IP with a snap length of 4.
    try writeSectionHeader(&out, .big);
    try writeInterface(&out, .big, 101, 4);
    try writeEnhancedPacket(&out, .big, 1, "gone", null); // interface 1 belonged to the first section
    var simple: [4 + 8]u8 = undefined;
    std.mem.writeInt(u32, simple[0..4], 6, .big);
    @memcpy(simple[4..10], "simple");
    try writeBlock(&out, .big, block_simple_packet, simple[0..10]);

    var got = std.ArrayList(u8).init(testing.allocator);
    defer got.deinit();
    try testing.expectEqual(Record.end, try readAll(out.items, &got));
    try testing.expectEqualStrings("second@276;fir@1~;nowhere@0;gone@0;simp@101~;", got.items);

    // Cut short inside the last block, and a block whose length is not a multiple of 4.
    got.clearRetainingCapacity();
    try testing.expectEqual(Record.cut_short, try readAll(out.items[0 .. out.items.len - 2], &got));
    got.clearRetainingCapacity();
    const first_packet = 28 + 2 * 20 + 44; // section, two interfaces, the statistics block
    std.mem.writeInt(u32, out.items[first_packet + 4 ..][0..4], 30, .little);
    try testing.expectEqual(Record.corrupt, try readAll(out.items, &got));
    try testing.expectEqualStrings("", got.items);
}

test "pcapng: every prefix and single-byte corruption of a capture is read without a fault" {
    var out = std.ArrayList(u8).init(testing.allocator);
    defer out.deinit();
    try writeSectionHeader(&out, .little);
    try writeInterface(&out, .little, 1, 65535);
    var buf: [256]u8 = undefined;
    try writeEnhancedPacket(&out, .little, 0, buildEthernetIpv4Udp(&buf, "payload", 7148), null);
    try writeEnhancedPacket(&out, .little, 0, "tail", null);
    var got = std.ArrayList(u8).init(testing.allocator);
    defer got.deinit();
    for (4..out.items.len) |n| {
        got.clearRetainingCapacity();
        _ = readAll(out.items[0..n], &got) catch |err| try testing.expectEqual(error.NotPcap, err);
    }
    var copy = try testing.allocator.dupe(u8, out.items);
    defer testing.allocator.free(copy);
    for (0..copy.len) |i| {
        for ([_]u8{ 0x00, 0xff, 0x80, 0x03 }) |v| {
            @memcpy(copy, out.items);
            copy[i] = v;
            got.clearRetainingCapacity();
            _ = readAll(copy, &got) catch |err| try testing.expectEqual(error.NotPcap, err);
        }
    }
}

test "udp payload: Ethernet, tagged Ethernet, cooked v1/v2, raw IPv4 and IPv6" {
    var buf: [256]u8 = undefined;
    const eth = buildEthernetIpv4Udp(&buf, "spead!", 7148);
    const ethernet: u16 = @intFromEnum(LinkType.ethernet);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(eth, ethernet, 0).udp);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(eth, ethernet, 7148).udp);
    try testing.expectEqual(Skip.filtered, Capture.udpPayload(eth, ethernet, 7149).skip);
    try testing.expectEqual(Skip.not_udp, Capture.udpPayload(eth, 0, 0).skip); // unknown link
    // Ethernet padding after the datagram is not payload.
    var padded: [256]u8 = undefined;
    @memcpy(padded[0..eth.len], eth);
    @memset(padded[eth.len..][0..10], 0xee);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(padded[0 .. eth.len + 10], ethernet, 0).udp);

    // One 802.1Q tag.
    var tagged: [256]u8 = undefined;
    @memcpy(tagged[0..12], eth[0..12]);
    std.mem.writeInt(u16, tagged[12..14], ethertype_vlan, .big);
    std.mem.writeInt(u16, tagged[14..16], 42, .big);
    @memcpy(tagged[16..][0 .. eth.len - 12], eth[12..]);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(tagged[0 .. eth.len + 4], ethernet, 0).udp);

    const ip = eth[14..];
    // Linux cooked v1: 16 bytes, protocol at 14.
    var sll: [256]u8 = undefined;
    @memset(sll[0..16], 0);
    std.mem.writeInt(u16, sll[14..16], ethertype_ipv4, .big);
    @memcpy(sll[16..][0..ip.len], ip);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(sll[0 .. 16 + ip.len], @intFromEnum(LinkType.linux_sll), 0).udp);
    // v2: 20 bytes, protocol at 0.
    var sll2: [256]u8 = undefined;
    @memset(sll2[0..20], 0);
    std.mem.writeInt(u16, sll2[0..2], ethertype_ipv4, .big);
    @memcpy(sll2[20..][0..ip.len], ip);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(sll2[0 .. 20 + ip.len], @intFromEnum(LinkType.linux_sll2), 0).udp);
    // Raw IPv4.
    const raw: u16 = @intFromEnum(LinkType.raw);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(ip, raw, 0).udp);

    // Raw IPv6 with the same UDP datagram.
    var v6: [256]u8 = undefined;
    @memset(v6[0..40], 0);
    v6[0] = 0x60;
    const udp = ip[20..];
    std.mem.writeInt(u16, v6[4..6], @intCast(udp.len), .big);
    v6[6] = udp_protocol;
    v6[7] = 64;
    @memcpy(v6[40..][0..udp.len], udp);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(v6[0 .. 40 + udp.len], raw, 7148).udp);
    try testing.expectEqualStrings("spead!", Capture.udpPayload(v6[0 .. 40 + udp.len], @intFromEnum(LinkType.ipv6), 0).udp);
}

test "udp payload: fragments, other protocols and broken headers are skipped, never read past the frame" {
    var buf: [256]u8 = undefined;
    const good = buildEthernetIpv4Udp(&buf, "payload", 9000);
    const ethernet: u16 = @intFromEnum(LinkType.ethernet);
    var f: [256]u8 = undefined;
    const Mutation = struct { at: usize, value: u8 };
    const cases = [_]Mutation{
        .{ .at = 12, .value = 0x86 }, // ethertype 0x8600: not IP
        .{ .at = 14, .value = 0x46 }, // IHL 6: the UDP header moves into the payload
        .{ .at = 14, .value = 0x44 }, // IHL 4 < 5
        .{ .at = 14, .value = 0x65 }, // version 6 under an IPv4 ethertype
        .{ .at = 20, .value = 0x20 }, // more fragments
        .{ .at = 21, .value = 0x01 }, // fragment offset
        .{ .at = 23, .value = 6 }, // TCP
        .{ .at = 16, .value = 0xff }, // IPv4 total length past the frame
        .{ .at = 38, .value = 0xff }, // UDP length past the datagram
    };
    for (cases) |m| {
        @memcpy(f[0..good.len], good);
        f[m.at] = m.value;
        switch (Capture.udpPayload(f[0..good.len], ethernet, 0)) {
            .skip => |s| try testing.expectEqual(Skip.not_udp, s),
            .udp => |p| {
                // IHL 6 reads one option word out of the UDP header: still inside the frame.
                try testing.expectEqual(@as(usize, 14), m.at);
                try testing.expect(@intFromPtr(p.ptr) + p.len <= @intFromPtr(&f) + good.len);
            },
        }
    }
    // Every prefix of a good frame is skipped without reading past its end.
    for (0..good.len) |n| {
        switch (Capture.udpPayload(good[0..n], ethernet, 0)) {
            .skip => {},
            .udp => return error.TestUnexpectedResult,
        }
    }
    try testing.expectEqualStrings("payload", Capture.udpPayload(good, ethernet, 0).udp);
}
