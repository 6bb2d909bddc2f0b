//! Decoding of one SPEAD packet (docs/PROTOCOL.md §1, §5). A packet is an 8-byte
//! header, item_count big-endian item pointers and a payload. The four special
//! immediates (HEAP_CNT, HEAP_LENGTH, PAYLOAD_OFFSET, PAYLOAD_LENGTH) may appear
//! anywhere in the pointer list. Bad bytes come from the network, so every
//! problem is reported as a `Reject` reason for the caller to count, never an
//! assertion.
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const assert = std.debug.assert;
const flavour = @import("../core/flavour.zig");

/// Why a packet could not be decoded. Each reason has its own counter.
pub const Reject = enum(u8) {
    /// Fewer than 8 bytes, or the pointer table / payload runs past the end.
    truncated,
    /// Magic or version is not 0x53 0x04.
    bad_magic,
    /// Header widths are zero or do not add up to 64 bits (or are not whole bytes of address).
    bad_flavour,
    /// HEAP_CNT, PAYLOAD_OFFSET or PAYLOAD_LENGTH is missing.
    missing_items,
    /// payload_offset + payload_length exceeds HEAP_LENGTH.
    heap_length_overflow,
};

pub const Header = struct {
    heap_address_bits: u8,
    item_count: u16,
};

/// A decoded packet. Slices point into the caller's bytes.
pub const Packet = struct {
    heap_address_bits: u8,
    heap_cnt: u64,
    /// null when the packet carries no HEAP_LENGTH (an "unsized" heap).
    heap_length: ?u64,
    payload_offset: u64,
    payload_length: u64,
    /// Pointer words from the first non-special pointer on (specials after it
    /// stay in; the heap filters ids 1-4 itself, as spead2 does).
    pointers: []const u8,
    payload: []const u8,
    /// Bytes of the packet: header + pointers + payload.
    size: usize,

    pub fn pointerCount(self: Packet) usize {
        assert(self.pointers.len % protocol.pointer_size == 0);
        return self.pointers.len / protocol.pointer_size;
    }

    pub fn pointer(self: Packet, index: usize) u64 {
        assert(index < self.pointerCount());
        return std.mem.readInt(u64, self.pointers[index * protocol.pointer_size ..][0..8], .big);
    }
};

pub const Decoded = union(enum) {
    ok: Packet,
    rejected: Reject,
};

/// Parses the 8-byte header; `bytes` must hold at least 8 bytes.
pub fn decodeHeader(bytes: []const u8) union(enum) { ok: Header, rejected: Reject } {
    assert(bytes.len >= protocol.header_size);
    const word = std.mem.readInt(u64, bytes[0..8], .big);
    if (@as(u16, @truncate(word >> 48)) != protocol.magic_version) return .{ .rejected = .bad_magic };
    const id_bits: u32 = @as(u32, @as(u8, @truncate(word >> 40))) * 8;
    const address_bits: u32 = @as(u32, @as(u8, @truncate(word >> 32))) * 8;
    if (id_bits == 0 or address_bits == 0) return .{ .rejected = .bad_flavour };
    if (id_bits + address_bits != 64) return .{ .rejected = .bad_flavour };
    assert(address_bits < 64);
    return .{ .ok = .{ .heap_address_bits = @intCast(address_bits), .item_count = @truncate(word) } };
}

fn addressMask(heap_address_bits: u8) u64 {
    assert(heap_address_bits > 0 and heap_address_bits < 64);
    return (@as(u64, 1) << @intCast(heap_address_bits)) - 1;
}

fn idMask(heap_address_bits: u8) u64 {
    return (@as(u64, 1) << @intCast(63 - @as(u32, heap_address_bits))) - 1;
}

pub fn pointerId(heap_address_bits: u8, word: u64) u64 {
    return (word >> @intCast(heap_address_bits)) & idMask(heap_address_bits);
}

pub fn pointerValue(heap_address_bits: u8, word: u64) u64 {
    return word & addressMask(heap_address_bits);
}

pub fn pointerIsImmediate(word: u64) bool {
    return word & flavour.immediate_mask != 0;
}

/// Decodes the packet at the start of `bytes` (which may hold more after it).
pub fn decode(bytes: []const u8) Decoded {
    if (bytes.len < protocol.header_size) return .{ .rejected = .truncated };
    const header = switch (decodeHeader(bytes)) {
        .ok => |h| h,
        .rejected => |r| return .{ .rejected = r },
    };
    const pointers_end = protocol.header_size + @as(usize, header.item_count) * protocol.pointer_size;
    if (pointers_end > bytes.len) return .{ .rejected = .truncated };
    return decodePointers(bytes[0..pointers_end], header, bytes[pointers_end..]);
}

/// Decodes a packet received in two pieces (zig/recv/udp.zig's scatter
/// receive): `head` must be exactly its header and item pointers, and
/// `payload` holds its payload (and maybe more). Null when the header says the
/// pointers do not end exactly at `head.len`: the caller then joins the
/// pieces and uses `decode`.
pub fn decodeSplit(head: []const u8, payload: []const u8) ?Decoded {
    if (head.len < protocol.header_size) return null;
    const header = switch (decodeHeader(head)) {
        .ok => |h| h,
        .rejected => |r| return .{ .rejected = r },
    };
    if (protocol.header_size + @as(usize, header.item_count) * protocol.pointer_size != head.len) return null;
    return decodePointers(head, header, payload);
}

/// The pointer table (`head`: header and pointers) and a payload taken from
/// the start of `rest`.
fn decodePointers(head: []const u8, header: Header, rest: []const u8) Decoded {
    const pointers_end = head.len;
    const bytes = head;
    const hab = header.heap_address_bits;
    var heap_cnt: ?u64 = null;
    var heap_length: ?u64 = null;
    var payload_offset: ?u64 = null;
    var payload_length: ?u64 = null;
    var first_regular: usize = header.item_count;
    var i: usize = 0;
    while (i < header.item_count) : (i += 1) {
        const word = std.mem.readInt(u64, bytes[protocol.header_size + i * protocol.pointer_size ..][0..8], .big);
        var special = false;
        if (pointerIsImmediate(word)) {
            const value = pointerValue(hab, word);
            special = true;
            switch (pointerId(hab, word)) {
                protocol.id_heap_cnt => heap_cnt = value,
                protocol.id_heap_length => heap_length = value,
                protocol.id_payload_offset => payload_offset = value,
                protocol.id_payload_length => payload_length = value,
                else => special = false,
            }
        }
        if (!special) first_regular = @min(first_regular, i);
    }
    if (heap_cnt == null or payload_offset == null or payload_length == null) {
        return .{ .rejected = .missing_items };
    }
    // Values are below 2^56, so the sums cannot overflow u64.
    if (payload_length.? > rest.len) return .{ .rejected = .truncated };
    if (heap_length) |length| {
        if (payload_offset.? + payload_length.? > length) return .{ .rejected = .heap_length_overflow };
    }
    const size = pointers_end + @as(usize, @intCast(payload_length.?));
    return .{ .ok = .{
        .heap_address_bits = hab,
        .heap_cnt = heap_cnt.?,
        .heap_length = heap_length,
        .payload_offset = payload_offset.?,
        .payload_length = payload_length.?,
        .pointers = bytes[protocol.header_size + first_regular * protocol.pointer_size .. pointers_end],
        .payload = rest[0..@intCast(payload_length.?)],
        .size = size,
    } };
}

pub const PacketSize = union(enum) {
    /// More bytes are needed before the size is known.
    incomplete,
    /// The header is not a SPEAD header, or PAYLOAD_LENGTH is absent.
    invalid,
    /// Total bytes of the packet (it may be larger than the bytes given so far).
    size: u64,
};

/// Packet length from the header and the PAYLOAD_LENGTH immediate, for framing
/// a byte stream (TCP, memory). Needs only the header and the pointer table.
pub fn getPacketSize(bytes: []const u8) PacketSize {
    if (bytes.len < protocol.header_size) return .incomplete;
    const header = switch (decodeHeader(bytes)) {
        .ok => |h| h,
        .rejected => return .invalid,
    };
    const pointers_end = protocol.header_size + @as(usize, header.item_count) * protocol.pointer_size;
    if (pointers_end > bytes.len) return .incomplete;
    // The last PAYLOAD_LENGTH wins, as in `decode`, so framing and decoding agree.
    var payload_length: ?u64 = null;
    var i: usize = 0;
    while (i < header.item_count) : (i += 1) {
        const word = std.mem.readInt(u64, bytes[protocol.header_size + i * protocol.pointer_size ..][0..8], .big);
        if (pointerIsImmediate(word) and pointerId(header.heap_address_bits, word) == protocol.id_payload_length) {
            payload_length = pointerValue(header.heap_address_bits, word);
        }
    }
    const length = payload_length orelse return .invalid;
    return .{ .size = length + pointers_end };
}

// ---------------------------------------------------------------------------
// Test helpers: build packets by hand (also used by the other receive tests).

pub const TestPointer = struct {
    id: u64,
    value: u64,
    immediate: bool,
};

/// Writes header + pointers + payload into `out` and returns the packet bytes.
pub fn buildTestPacket(out: []u8, heap_address_bits: u8, pointers: []const TestPointer, payload: []const u8) []u8 {
    const size = protocol.header_size + pointers.len * protocol.pointer_size + payload.len;
    assert(out.len >= size);
    const id_bytes: u64 = 8 - heap_address_bits / 8;
    const header: u64 = (@as(u64, protocol.magic_version) << 48) | (id_bytes << 40) | (@as(u64, heap_address_bits / 8) << 32) | pointers.len;
    std.mem.writeInt(u64, out[0..8], header, .big);
    for (pointers, 0..) |p, i| {
        const word = (if (p.immediate) flavour.immediate_mask else 0) | (p.id << @intCast(heap_address_bits)) | p.value;
        std.mem.writeInt(u64, out[protocol.header_size + i * protocol.pointer_size ..][0..8], word, .big);
    }
    @memcpy(out[protocol.header_size + pointers.len * protocol.pointer_size .. size], payload);
    return out[0..size];
}

pub fn imm(id: u64, value: u64) TestPointer {
    return .{ .id = id, .value = value, .immediate = true };
}

pub fn addr(id: u64, address: u64) TestPointer {
    return .{ .id = id, .value = address, .immediate = false };
}

const testing = std.testing;

test "decode V1 empty heap (64-48)" {
    const bytes = [_]u8{
        0x53, 0x04, 0x02, 0x06, 0x00, 0x00, 0x00, 0x05,
        0x80, 0x01, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56,
        0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x80, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x80, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00,
    };
    const p = decode(&bytes).ok;
    try testing.expectEqual(@as(u8, 48), p.heap_address_bits);
    try testing.expectEqual(@as(u64, 0x123456), p.heap_cnt);
    try testing.expectEqual(@as(?u64, 1), p.heap_length);
    try testing.expectEqual(@as(u64, 0), p.payload_offset);
    try testing.expectEqual(@as(u64, 1), p.payload_length);
    try testing.expectEqual(@as(usize, 1), p.pointerCount());
    try testing.expectEqual(@as(u64, 0), p.pointer(0));
    try testing.expectEqual(@as(usize, 49), p.size);
    try testing.expectEqual(PacketSize{ .size = 49 }, getPacketSize(&bytes));
    try testing.expectEqual(PacketSize.incomplete, getPacketSize(bytes[0..20]));
}

test "specials in any order, user pointer in between" {
    var buf: [256]u8 = undefined;
    const pkt = buildTestPacket(&buf, 40, &.{
        imm(protocol.id_payload_length, 3), addr(0x1000, 0), imm(protocol.id_heap_cnt, 7), imm(protocol.id_payload_offset, 0),
    }, "abc");
    const p = decode(pkt).ok;
    try testing.expectEqual(@as(u64, 7), p.heap_cnt);
    try testing.expectEqual(@as(?u64, null), p.heap_length);
    // pointers start at the first non-special; trailing specials remain
    try testing.expectEqual(@as(usize, 3), p.pointerCount());
    try testing.expectEqual(@as(u64, 0x1000), pointerId(40, p.pointer(0)));
    try testing.expectEqualStrings("abc", p.payload);
}

test "decode rejects bad input" {
    var buf: [256]u8 = undefined;
    try testing.expectEqual(Reject.truncated, decode(buf[0..4]).rejected);
    const good = buildTestPacket(&buf, 40, &.{
        imm(protocol.id_heap_cnt, 1), imm(protocol.id_heap_length, 4), imm(protocol.id_payload_offset, 0), imm(protocol.id_payload_length, 4),
    }, "wxyz");
    try testing.expect(decode(good) == .ok);
    // payload past the end
    try testing.expectEqual(Reject.truncated, decode(good[0 .. good.len - 1]).rejected);
    // pointer table past the end
    try testing.expectEqual(Reject.truncated, decode(good[0..20]).rejected);
    var bad: [64]u8 = undefined;
    @memcpy(bad[0..good.len], good);
    bad[0] = 0x54;
    try testing.expectEqual(Reject.bad_magic, decode(bad[0..good.len]).rejected);
    try testing.expectEqual(PacketSize.invalid, getPacketSize(bad[0..good.len]));
    bad[0] = 0x53;
    bad[1] = 0x03;
    try testing.expectEqual(Reject.bad_magic, decode(bad[0..good.len]).rejected);
    bad[1] = 0x04;
    bad[2] = 0x04; // 32 + 40 != 64
    try testing.expectEqual(Reject.bad_flavour, decode(bad[0..good.len]).rejected);
    bad[2] = 0x00;
    bad[3] = 0x08;
    try testing.expectEqual(Reject.bad_flavour, decode(bad[0..good.len]).rejected);

    const missing = buildTestPacket(&buf, 40, &.{ imm(protocol.id_heap_cnt, 1), imm(protocol.id_payload_length, 0) }, "");
    try testing.expectEqual(Reject.missing_items, decode(missing).rejected);
    try testing.expect(getPacketSize(missing) == .size);
    // addressed pointers with special ids are not specials
    const addressed = buildTestPacket(&buf, 40, &.{ imm(protocol.id_heap_cnt, 1), addr(protocol.id_payload_offset, 0), imm(protocol.id_payload_length, 0) }, "");
    try testing.expectEqual(Reject.missing_items, decode(addressed).rejected);
    const overflow = buildTestPacket(&buf, 40, &.{
        imm(protocol.id_heap_cnt, 1), imm(protocol.id_heap_length, 4), imm(protocol.id_payload_offset, 2), imm(protocol.id_payload_length, 4),
    }, "wxyz");
    try testing.expectEqual(Reject.heap_length_overflow, decode(overflow).rejected);
    // an absurd payload length does not overflow anything
    const absurd = buildTestPacket(&buf, 56, &.{
        imm(protocol.id_heap_cnt, 1), imm(protocol.id_payload_offset, 0), imm(protocol.id_payload_length, (1 << 56) - 1),
    }, "");
    try testing.expectEqual(Reject.truncated, decode(absurd).rejected);
    try testing.expectEqual(PacketSize{ .size = (1 << 56) - 1 + 32 }, getPacketSize(absurd));
}

test "every flavour decodes" {
    var buf: [256]u8 = undefined;
    var hab: u8 = 8;
    while (hab <= 56) : (hab += 8) {
        const pkt = buildTestPacket(&buf, hab, &.{
            imm(protocol.id_heap_cnt, 5), imm(protocol.id_heap_length, 2), imm(protocol.id_payload_offset, 0), imm(protocol.id_payload_length, 2),
        }, "hi");
        const p = decode(pkt).ok;
        try testing.expectEqual(hab, p.heap_address_bits);
        try testing.expectEqual(@as(u64, 5), p.heap_cnt);
    }
}

test "two PAYLOAD_LENGTH pointers: framing and decoding use the same (last) one" {
    // Found by zig/recv/recv_fuzz.zig: getPacketSize took the first, decode the last.
    var buf: [256]u8 = undefined;
    const pkt = buildTestPacket(&buf, 48, &.{
        imm(protocol.id_heap_cnt, 4), imm(protocol.id_payload_length, 10), imm(protocol.id_payload_offset, 0), imm(protocol.id_payload_length, 2),
    }, "abcdefghij");
    const p = decode(pkt).ok;
    try testing.expectEqual(@as(u64, 2), p.payload_length);
    try testing.expectEqual(PacketSize{ .size = p.size }, getPacketSize(pkt));
}

test "decodeSplit: header and payload in separate pieces decode as the joined packet" {
    var buf: [256]u8 = undefined;
    const bytes = buildTestPacket(&buf, 48, &.{ imm(1, 9), imm(2, 100), imm(3, 20), imm(4, 5), addr(0x1000, 0) }, "hello");
    const joined = decode(bytes).ok;
    const head_len = bytes.len - 5;
    var payload: [8]u8 = undefined;
    @memcpy(payload[0..5], "hello");
    const split = decodeSplit(bytes[0..head_len], &payload).?.ok;
    try std.testing.expectEqual(joined.heap_cnt, split.heap_cnt);
    try std.testing.expectEqual(joined.payload_offset, split.payload_offset);
    try std.testing.expectEqual(joined.size, split.size);
    try std.testing.expectEqualSlices(u8, joined.pointers, split.pointers);
    try std.testing.expectEqual(@intFromPtr(&payload), @intFromPtr(split.payload.ptr));
    try std.testing.expectEqualStrings("hello", split.payload);
    // A head that is not exactly the pointer table: the caller must join the pieces.
    try std.testing.expectEqual(@as(?Decoded, null), decodeSplit(bytes[0 .. head_len - 8], bytes[head_len - 8 ..]));
    try std.testing.expectEqual(@as(?Decoded, null), decodeSplit(bytes[0..4], bytes[4..]));
    // A payload piece shorter than PAYLOAD_LENGTH is truncated; a bad header is rejected.
    try std.testing.expectEqual(Reject.truncated, decodeSplit(bytes[0..head_len], payload[0..4]).?.rejected);
    var bad = buf;
    bad[0] = 0;
    try std.testing.expectEqual(Reject.bad_magic, decodeSplit(bad[0..head_len], &payload).?.rejected);
}
