//! Classic pcap capture files (what `tcpdump -w` writes), read down to the
//! payload of each UDP datagram, for the capture reader in
//! zig/recv/file_reader.zig: a stream can replay a capture of SPEAD traffic as
//! spead2's `udp_pcap_file_reader` does.
//!
//! What is read: the global header in either byte order, with microsecond or
//! nanosecond timestamps (which are not used); link types Ethernet (with up to
//! two 802.1Q/802.1ad tags), Linux cooked captures v1 and v2 (`tcpdump -i
//! any`), and raw IP; IPv4 datagrams that are not fragments (as spead2) and
//! IPv6 datagrams whose next header is UDP. pcapng files are refused.
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
const magic_pcapng: u32 = 0x0a0d_0d0a;

/// Link types read (LINKTYPE_* values of the pcap format).
pub const LinkType = enum(u32) {
    ethernet = 1,
    raw = 101,
    linux_sll = 113,
    ipv4 = 228,
    ipv6 = 229,
    linux_sll2 = 276,
};

pub const OpenError = error{
    /// Not a classic pcap file (too short, another magic number, or pcapng).
    NotPcap,
    /// A link type other than those of `LinkType`.
    UnsupportedLinkType,
};

/// The capture's global header, as far as reading it needs.
pub const Capture = struct {
    /// Fields are stored in the writer's byte order.
    endian: std.builtin.Endian,
    link: LinkType,

    /// Reads the global header at the start of `bytes`.
    pub fn open(bytes: []const u8) OpenError!Capture {
        if (bytes.len < global_header_size) return error.NotPcap;
        const little = std.mem.readInt(u32, bytes[0..4], .little);
        const endian: std.builtin.Endian = if (little == magic_micro or little == magic_nano)
            .little
        else if (@byteSwap(little) == magic_micro or @byteSwap(little) == magic_nano)
            .big
        else
            return error.NotPcap;
        // The link type is the low 16 bits (the upper ones carry FCS flags we do not read).
        const network = std.mem.readInt(u32, bytes[20..24], endian) & 0xffff;
        const link = std.meta.intToEnum(LinkType, network) catch return error.UnsupportedLinkType;
        return .{ .endian = endian, .link = link };
    }

    /// True if `bytes` start like a pcapng file (for a clearer refusal).
    pub fn isPcapng(bytes: []const u8) bool {
        return bytes.len >= 4 and std.mem.readInt(u32, bytes[0..4], .little) == magic_pcapng;
    }

    /// The record at `offset` (a record boundary, at or after the global
    /// header): its captured frame and where the next record starts.
    pub fn record(self: Capture, bytes: []const u8, offset: usize) Record {
        assert(offset >= global_header_size and offset <= bytes.len);
        const rest = bytes[offset..];
        if (rest.len == 0) return .end;
        if (rest.len < record_header_size) return .cut_short;
        const included = std.mem.readInt(u32, rest[8..12], self.endian);
        const original = std.mem.readInt(u32, rest[12..16], self.endian);
        if (included > rest.len - record_header_size) return .cut_short;
        const frame = rest[record_header_size..][0..included];
        return .{ .frame = .{
            .bytes = frame,
            .complete = included >= original,
            .next = offset + record_header_size + included,
        } };
    }

    /// The UDP payload in `frame`, or why there is none. `port` other than
    /// 0 keeps only datagrams to that destination port.
    pub fn udpPayload(self: Capture, frame: []const u8, port: u16) Payload {
        const found: ?IpPacket = switch (self.link) {
            .ethernet => ethernetPayload(frame),
            .linux_sll => linkPayload(frame, 16, 14),
            .linux_sll2 => linkPayload(frame, 20, 0),
            .raw, .ipv4, .ipv6 => IpPacket{ .bytes = frame, .ethertype = null },
        };
        const ip = found orelse return .{ .skip = .not_udp };
        return ipUdpPayload(ip, port);
    }
};

pub const Record = union(enum) {
    /// A record; `complete` is false when the capture kept only the start of the frame.
    frame: struct { bytes: []const u8, complete: bool, next: usize },
    /// The file ends exactly at a record boundary.
    end,
    /// The file ends inside a record (a capture that was cut off).
    cut_short,
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

/// Appends a global header.
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

/// Appends a record holding the first `keep` bytes of `frame` (all of it if null).
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

test "global header: both byte orders and timestamp kinds; pcapng and others refused" {
    for ([_]std.builtin.Endian{ .little, .big }) |endian| {
        for ([_]bool{ false, true }) |nano| {
            var out = std.ArrayList(u8).init(testing.allocator);
            defer out.deinit();
            try writeGlobalHeader(&out, endian, nano, .linux_sll2);
            const c = try Capture.open(out.items);
            try testing.expectEqual(endian, c.endian);
            try testing.expectEqual(LinkType.linux_sll2, c.link);
            try testing.expectError(error.NotPcap, Capture.open(out.items[0 .. global_header_size - 1]));
        }
    }
    var ng = [_]u8{0} ** 32;
    std.mem.writeInt(u32, ng[0..4], magic_pcapng, .little);
    try testing.expect(Capture.isPcapng(&ng));
    try testing.expectError(error.NotPcap, Capture.open(&ng));
    var out = std.ArrayList(u8).init(testing.allocator);
    defer out.deinit();
    try writeGlobalHeader(&out, .little, false, .ethernet);
    std.mem.writeInt(u32, out.items[20..24], 0, .little); // LINKTYPE_NULL (BSD loopback)
    try testing.expectError(error.UnsupportedLinkType, Capture.open(out.items));
}

test "records: frames in order, snapped frames marked, a cut-off tail reported" {
    var out = std.ArrayList(u8).init(testing.allocator);
    defer out.deinit();
    try writeGlobalHeader(&out, .big, false, .ethernet);
    try writeRecord(&out, .big, "abcdef", null);
    try writeRecord(&out, .big, "0123456789", 4);
    const c = try Capture.open(out.items);
    const first = c.record(out.items, global_header_size).frame;
    try testing.expectEqualStrings("abcdef", first.bytes);
    try testing.expect(first.complete);
    const second = c.record(out.items, first.next).frame;
    try testing.expectEqualStrings("0123", second.bytes);
    try testing.expect(!second.complete);
    try testing.expectEqual(Record.end, c.record(out.items, second.next));
    // Cut inside a record header, then inside a record's bytes.
    try testing.expectEqual(Record.cut_short, c.record(out.items[0 .. second.next - 5], first.next));
    try testing.expectEqual(Record.cut_short, c.record(out.items[0 .. first.next + 3], first.next));
}

test "udp payload: Ethernet, tagged Ethernet, cooked v1/v2, raw IPv4 and IPv6" {
    var buf: [256]u8 = undefined;
    const eth = buildEthernetIpv4Udp(&buf, "spead!", 7148);
    const c_eth: Capture = .{ .endian = .little, .link = .ethernet };
    try testing.expectEqualStrings("spead!", c_eth.udpPayload(eth, 0).udp);
    try testing.expectEqualStrings("spead!", c_eth.udpPayload(eth, 7148).udp);
    try testing.expectEqual(Skip.filtered, c_eth.udpPayload(eth, 7149).skip);
    // Ethernet padding after the datagram is not payload.
    var padded: [256]u8 = undefined;
    @memcpy(padded[0..eth.len], eth);
    @memset(padded[eth.len..][0..10], 0xee);
    try testing.expectEqualStrings("spead!", c_eth.udpPayload(padded[0 .. eth.len + 10], 0).udp);

    // One 802.1Q tag.
    var tagged: [256]u8 = undefined;
    @memcpy(tagged[0..12], eth[0..12]);
    std.mem.writeInt(u16, tagged[12..14], ethertype_vlan, .big);
    std.mem.writeInt(u16, tagged[14..16], 42, .big);
    @memcpy(tagged[16..][0 .. eth.len - 12], eth[12..]);
    try testing.expectEqualStrings("spead!", c_eth.udpPayload(tagged[0 .. eth.len + 4], 0).udp);

    const ip = eth[14..];
    // Linux cooked v1: 16 bytes, protocol at 14.
    var sll: [256]u8 = undefined;
    @memset(sll[0..16], 0);
    std.mem.writeInt(u16, sll[14..16], ethertype_ipv4, .big);
    @memcpy(sll[16..][0..ip.len], ip);
    const c_sll: Capture = .{ .endian = .little, .link = .linux_sll };
    try testing.expectEqualStrings("spead!", c_sll.udpPayload(sll[0 .. 16 + ip.len], 0).udp);
    // v2: 20 bytes, protocol at 0.
    var sll2: [256]u8 = undefined;
    @memset(sll2[0..20], 0);
    std.mem.writeInt(u16, sll2[0..2], ethertype_ipv4, .big);
    @memcpy(sll2[20..][0..ip.len], ip);
    const c_sll2: Capture = .{ .endian = .little, .link = .linux_sll2 };
    try testing.expectEqualStrings("spead!", c_sll2.udpPayload(sll2[0 .. 20 + ip.len], 0).udp);
    // Raw IPv4.
    const c_raw: Capture = .{ .endian = .little, .link = .raw };
    try testing.expectEqualStrings("spead!", c_raw.udpPayload(ip, 0).udp);

    // Raw IPv6 with the same UDP datagram.
    var v6: [256]u8 = undefined;
    @memset(v6[0..40], 0);
    v6[0] = 0x60;
    const udp = ip[20..];
    std.mem.writeInt(u16, v6[4..6], @intCast(udp.len), .big);
    v6[6] = udp_protocol;
    v6[7] = 64;
    @memcpy(v6[40..][0..udp.len], udp);
    try testing.expectEqualStrings("spead!", c_raw.udpPayload(v6[0 .. 40 + udp.len], 7148).udp);
    const c_v6: Capture = .{ .endian = .little, .link = .ipv6 };
    try testing.expectEqualStrings("spead!", c_v6.udpPayload(v6[0 .. 40 + udp.len], 0).udp);
}

test "udp payload: fragments, other protocols and broken headers are skipped, never read past the frame" {
    var buf: [256]u8 = undefined;
    const good = buildEthernetIpv4Udp(&buf, "payload", 9000);
    const c: Capture = .{ .endian = .little, .link = .ethernet };
    var f: [256]u8 = undefined;
    const Mutation = struct { at: usize, value: u8 };
    const cases = [_]Mutation{
        .{ .at = 12, .value = 0x86 }, // ethertype 0x8600: not IP
        .{ .at = 14, .value = 0x46 }, // IHL 6 but options not there: total length still fits, header check
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
        switch (c.udpPayload(f[0..good.len], 0)) {
            .skip => |s| try testing.expectEqual(Skip.not_udp, s),
            .udp => |p| {
                // IHL 6 reads one option word out of the UDP header: still inside the frame.
                try testing.expectEqual(@as(usize, 14), m.at);
                try testing.expect(@intFromPtr(p.ptr) + p.len <= @intFromPtr(&f) + good.len);
            },
        }
    }
    // Every prefix of a good frame parses or is skipped without reading past its end.
    for (0..good.len) |n| {
        switch (c.udpPayload(good[0..n], 0)) {
            .skip => {},
            .udp => return error.TestUnexpectedResult,
        }
    }
    try testing.expectEqualStrings("payload", c.udpPayload(good, 0).udp);
}
