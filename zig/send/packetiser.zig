//! Send side: item tables and the packetiser (docs/PROTOCOL.md §6).
//!
//! A heap is an item table handed over by JS (docs/ABI.md): records of four u64
//! words (id, value-or-address, length, flags). The table is validated once;
//! after that the packetiser reads it in place and never copies item bytes
//! unless asked to. It follows spead2's `packet_generator` step by step so the
//! bytes on the wire are identical:
//!
//! - packet_size_max is rounded down to a multiple of 8 and must be >= 56;
//! - every packet starts with HEAP_CNT, HEAP_LENGTH, PAYLOAD_OFFSET,
//!   PAYLOAD_LENGTH, in that order;
//! - item pointers are placed greedily, once each (or in every packet with
//!   repeat_pointers);
//! - if the payload is too small for every packet to carry some, a NULL
//!   pointer marks the end of the real data and zero bytes pad the payload.
//!
//! A packet comes out either as a header (written into a caller scratch area)
//! plus iovec segments that reference the items' own memory (the zero-copy UDP
//! path), or copied whole into a buffer; the copy is the same code with no
//! segments to spare.
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const fast_copy = @import("../core/fast_copy.zig");
const assert = std.debug.assert;
const Error = @import("../core/status.zig").Error;
const Flavour = @import("../core/flavour.zig").Flavour;

/// Header plus the four special immediates that open every packet.
pub const prefix_size: u64 = protocol.header_size + 4 * protocol.pointer_size;
/// spead2 refuses anything smaller: the prefix, one pointer and 8 payload bytes.
pub const packet_size_min: u64 = prefix_size + 2 * protocol.pointer_size;

/// Words per item record in a JS item table.
pub const item_words: usize = 4;
pub const item_flag_immediate: u64 = 1;

/// One record of an item table, exactly as JS lays it out (docs/ABI.md).
pub const ItemRecord = extern struct {
    id: u64,
    /// The immediate value, or the address of the item's bytes.
    value: u64,
    /// Length in bytes of an addressed item; ignored for immediates.
    length: u64,
    flags: u64,

    pub fn isImmediate(self: ItemRecord) bool {
        return self.flags & item_flag_immediate != 0;
    }

    /// The bytes of an addressed item. Only valid after `validateItems`.
    pub fn bytes(self: ItemRecord) []const u8 {
        assert(!self.isImmediate());
        if (self.length == 0) return &[_]u8{};
        const ptr: [*]const u8 = @ptrFromInt(@as(usize, @intCast(self.value)));
        return ptr[0..@intCast(self.length)];
    }
};

comptime {
    assert(@sizeOf(ItemRecord) == item_words * 8);
    assert(@alignOf(ItemRecord) == 8);
}

/// Reinterprets a JS table (item_count records of 4 words) as records. The
/// caller has checked that the pointer is 8-byte aligned.
pub fn recordsFromWords(words: []const u64) []const ItemRecord {
    assert(words.len % item_words == 0);
    const ptr: [*]const ItemRecord = @ptrCast(words.ptr);
    return ptr[0 .. words.len / item_words];
}

/// Checks every record of a table against the flavour and returns the number
/// of real payload bytes (the sum of the addressed items' lengths).
pub fn validateItems(items: []const ItemRecord, flavour: Flavour) Error!u64 {
    flavour.assertValid();
    var payload: u64 = 0;
    for (items) |item| {
        if (item.flags & ~item_flag_immediate != 0) return error.InvalidArgument;
        if (item.id > flavour.idMask()) return error.InvalidArgument;
        if (item.isImmediate()) {
            // ID 0 is the NULL item, which only makes sense as an address.
            if (item.id == protocol.id_null) return error.InvalidArgument;
            if (item.value > flavour.addressMask()) return error.InvalidArgument;
        } else {
            if (item.length > std.math.maxInt(usize)) return error.InvalidArgument;
            if (item.length > 0) {
                if (item.value == 0) return error.InvalidArgument;
                if (item.value > std.math.maxInt(usize)) return error.InvalidArgument;
                const end = @addWithOverflow(item.value, item.length);
                if (end[1] != 0 or end[0] > std.math.maxInt(usize)) return error.InvalidArgument;
            }
            const sum = @addWithOverflow(payload, item.length);
            if (sum[1] != 0) return error.InvalidArgument;
            payload = sum[0];
        }
    }
    return payload;
}

fn writeWord(dest: []u8, value: u64) void {
    assert(dest.len >= 8);
    std.mem.writeInt(u64, dest[0..8], value, .big);
}

pub const iovec_const = std.posix.iovec_const;

/// What `Packetiser.next` produced.
pub const Packet = struct {
    /// Bytes of the whole packet (header + pointers + payload).
    size: u64,
    /// Segments written to the caller's array; segment 0 is the header.
    segments_used: u32,
};

/// Bytes and packets a heap turns into.
pub const Totals = struct {
    bytes: u64,
    packets: u64,
};

pub const Packetiser = struct {
    items: []const ItemRecord,
    flavour: Flavour,
    cnt: u64,
    packet_size_max: u64,
    pointers_per_packet_max: u64,
    /// HEAP_LENGTH: real payload plus any padding.
    payload_size: u64,
    null_item: bool,
    repeat_pointers: bool,

    payload_offset: u64 = 0,
    /// Next pointer to emit; `items.len` means the NULL pointer.
    next_pointer: u64 = 0,
    next_address: u64 = 0,
    /// Next item whose bytes go into the payload, and how far into it.
    next_item: usize = 0,
    next_item_offset: u64 = 0,

    /// Validates the table and prepares to packetise it. `items` must stay
    /// valid (and unchanged) for the life of the packetiser.
    pub fn init(
        items: []const ItemRecord,
        flavour: Flavour,
        cnt: u64,
        packet_size_max_unrounded: u64,
        repeat_pointers: bool,
    ) Error!Packetiser {
        flavour.assertValid();
        if (cnt > flavour.addressMask()) return error.InvalidCnt;
        const packet_size_max = packet_size_max_unrounded & ~@as(u64, 7);
        if (packet_size_max < packet_size_min) return error.PacketTooSmall;
        const pointers_per_packet_max = (packet_size_max - prefix_size - protocol.pointer_size) / protocol.pointer_size;
        assert(pointers_per_packet_max >= 1);

        var payload_size = try validateItems(items, flavour);
        const items_count: u64 = items.len;
        // Packets needed for the pointers, counting a possible extra NULL pointer.
        const item_packets = items_count / pointers_per_packet_max + 1;
        if (repeat_pointers and item_packets > 1) return error.PacketTooSmall;
        // Every packet carries at least one payload byte (8 for all but the
        // last), so that packets have distinct offsets and losses show.
        const payload_min = (item_packets - 1) * protocol.pointer_size + 1;
        var null_item = false;
        if (payload_size < payload_min) {
            payload_size = payload_min;
            null_item = true;
        }
        if (payload_size > flavour.addressMask()) return error.InvalidArgument;
        return .{
            .items = items,
            .flavour = flavour,
            .cnt = cnt,
            .packet_size_max = packet_size_max,
            .pointers_per_packet_max = pointers_per_packet_max,
            .payload_size = payload_size,
            .null_item = null_item,
            .repeat_pointers = repeat_pointers,
        };
    }

    pub fn hasNext(self: *const Packetiser) bool {
        return self.payload_offset < self.payload_size;
    }

    fn pointersTotal(self: *const Packetiser) u64 {
        return @as(u64, self.items.len) + @intFromBool(self.null_item);
    }

    const Plan = struct {
        pointers: u64,
        payload_length: u64,

        fn size(self: Plan) u64 {
            return prefix_size + self.pointers * protocol.pointer_size + self.payload_length;
        }
    };

    fn plan(self: *const Packetiser) Plan {
        assert(self.hasNext());
        const first = if (self.repeat_pointers) 0 else self.next_pointer;
        assert(first <= self.pointersTotal());
        const pointers = @min(self.pointers_per_packet_max, self.pointersTotal() - first);
        const room = self.packet_size_max - prefix_size - pointers * protocol.pointer_size;
        const payload_length = @min(self.payload_size - self.payload_offset, room);
        assert(payload_length > 0);
        return .{ .pointers = pointers, .payload_length = payload_length };
    }

    /// Size of the next packet without producing it.
    pub fn nextSize(self: *const Packetiser) u64 {
        return self.plan().size();
    }

    /// Bytes and packets of the whole heap, computed without touching the
    /// items: one step per packet that carries pointers, then arithmetic.
    pub fn totals(self: *const Packetiser) Totals {
        assert(self.payload_offset == 0);
        var offset: u64 = 0;
        var next_pointer: u64 = 0;
        var result = Totals{ .bytes = 0, .packets = 0 };
        const pointers_total = self.pointersTotal();
        // Packets that still carry (non-repeated) pointers: bounded by the table.
        var step: u64 = 0;
        while (offset < self.payload_size and next_pointer < pointers_total and !self.repeat_pointers) : (step += 1) {
            assert(step <= pointers_total);
            const pointers = @min(self.pointers_per_packet_max, pointers_total - next_pointer);
            const room = self.packet_size_max - prefix_size - pointers * protocol.pointer_size;
            const length = @min(self.payload_size - offset, room);
            offset += length;
            next_pointer += pointers;
            result.bytes += prefix_size + pointers * protocol.pointer_size + length;
            result.packets += 1;
        }
        if (offset < self.payload_size) {
            // The rest have a constant number of pointers: none, or all of them.
            const pointers: u64 = if (self.repeat_pointers) pointers_total else 0;
            const room = self.packet_size_max - prefix_size - pointers * protocol.pointer_size;
            assert(room > 0);
            const remaining = self.payload_size - offset;
            const packets = (remaining + room - 1) / room;
            result.packets += packets;
            result.bytes += remaining + packets * (prefix_size + pointers * protocol.pointer_size);
        }
        return result;
    }

    fn pointerWord(self: *Packetiser) u64 {
        const f = self.flavour;
        if (self.next_pointer == self.items.len) {
            assert(self.null_item);
            return f.encodeAddress(protocol.id_null, self.next_address);
        }
        const item = self.items[@intCast(self.next_pointer)];
        if (item.isImmediate()) return f.encodeImmediate(item.id, item.value);
        const word = f.encodeAddress(item.id, self.next_address);
        self.next_address += item.length;
        return word;
    }

    /// Produces the next packet. The header and pointers are written to the
    /// start of `scratch` and become segment 0. Payload bytes are referenced
    /// in place as further segments while `segments` has room (one slot is
    /// kept for the tail); the rest, and any zero padding, is copied into
    /// `scratch` right after the header and becomes the last segment. With
    /// `segments.len == 2` the whole packet is therefore contiguous in
    /// `scratch`. `scratch` must hold the packet (`nextSize()` bytes;
    /// `packet_size_max` always suffices).
    pub fn next(self: *Packetiser, scratch: []u8, segments: []iovec_const) Packet {
        assert(segments.len >= 2);
        const p = self.plan();
        assert(scratch.len >= p.size());
        if (self.repeat_pointers) {
            self.next_pointer = 0;
            self.next_address = 0;
        }
        const f = self.flavour;
        const header: u64 = (protocol.magic_version << 48) |
            (@as(u64, f.idBytes()) << 40) |
            (@as(u64, f.addressBytes()) << 32) |
            (p.pointers + 4);
        writeWord(scratch[0..], header);
        writeWord(scratch[8..], f.encodeImmediate(protocol.id_heap_cnt, self.cnt));
        writeWord(scratch[16..], f.encodeImmediate(protocol.id_heap_length, self.payload_size));
        writeWord(scratch[24..], f.encodeImmediate(protocol.id_payload_offset, self.payload_offset));
        writeWord(scratch[32..], f.encodeImmediate(protocol.id_payload_length, p.payload_length));
        self.payload_offset += p.payload_length;
        var i: u64 = 0;
        while (i < p.pointers) : (i += 1) {
            const offset: usize = @intCast(prefix_size + i * protocol.pointer_size);
            writeWord(scratch[offset..], self.pointerWord());
            self.next_pointer += 1;
        }
        const header_len: usize = @intCast(prefix_size + p.pointers * protocol.pointer_size);
        segments[0] = .{ .base = scratch.ptr, .len = header_len };
        const used = self.fillPayload(scratch, header_len, p.payload_length, segments);
        return .{ .size = p.size(), .segments_used = used };
    }

    fn fillPayload(self: *Packetiser, scratch: []u8, header_len: usize, length: u64, segments: []iovec_const) u32 {
        const references_max = segments.len - 2;
        var used: usize = 1;
        var tail: usize = 0;
        var remaining = length;
        // Each step finishes an item, or ends the packet.
        var steps: usize = 0;
        const steps_max = self.items.len - self.next_item + 2;
        while (remaining > 0) : (steps += 1) {
            assert(steps < steps_max);
            if (self.next_item == self.items.len) {
                // Padding after the real data; only a heap with a NULL pointer has any.
                assert(self.null_item);
                assert(remaining <= protocol.pointer_size);
                const n: usize = @intCast(remaining);
                @memset(scratch[header_len + tail ..][0..n], 0);
                tail += n;
                remaining = 0;
                break;
            }
            const item = self.items[self.next_item];
            if (item.isImmediate() or item.length == 0) {
                self.next_item += 1;
                self.next_item_offset = 0;
                continue;
            }
            const take = @min(item.length - self.next_item_offset, remaining);
            const part = item.bytes()[@intCast(self.next_item_offset)..][0..@intCast(take)];
            if (tail == 0 and used - 1 < references_max) {
                segments[used] = .{ .base = part.ptr, .len = part.len };
                used += 1;
            } else {
                fast_copy.copy(scratch[header_len + tail ..][0..part.len], part);
                tail += part.len;
            }
            self.next_item_offset += take;
            remaining -= take;
            if (self.next_item_offset == item.length) {
                self.next_item += 1;
                self.next_item_offset = 0;
            }
        }
        if (tail > 0) {
            segments[used] = .{ .base = scratch.ptr + header_len, .len = tail };
            used += 1;
        }
        assert(used <= segments.len);
        return @intCast(used);
    }

    /// Produces the next packet as contiguous bytes in `out`; returns its size.
    pub fn nextInto(self: *Packetiser, out: []u8) Error!usize {
        const size = self.nextSize();
        if (out.len < size) return error.BufferTooSmall;
        var segments: [2]iovec_const = undefined;
        const packet = self.next(out[0..@intCast(size)], &segments);
        assert(packet.size == size);
        assert(packet.segments_used == 1 or segments[1].base == out.ptr + segments[0].len);
        return @intCast(size);
    }
};

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;

fn testFlavour(hab: u32) Flavour {
    return Flavour.init(4, 64, hab, 0) catch unreachable;
}

/// Test helper (also for zig/recv/recv_fuzz.zig): an immediate item record.
pub fn immediate(id: u64, value: u64) ItemRecord {
    return .{ .id = id, .value = value, .length = 0, .flags = item_flag_immediate };
}

/// Test helper: an item record addressing `data`.
pub fn addressed(id: u64, data: []const u8) ItemRecord {
    return .{ .id = id, .value = if (data.len == 0) 0 else @intFromPtr(data.ptr), .length = data.len, .flags = 0 };
}

/// All packets of a heap, concatenated (spead2 BytesStream bytes).
fn encodeAll(
    allocator: std.mem.Allocator,
    items: []const ItemRecord,
    hab: u32,
    cnt: u64,
    packet_size_max: u64,
    repeat: bool,
) ![]u8 {
    var gen = try Packetiser.init(items, testFlavour(hab), cnt, packet_size_max, repeat);
    const totals_expected = gen.totals();
    const out = try allocator.alloc(u8, @intCast(totals_expected.bytes));
    errdefer allocator.free(out);
    var at: usize = 0;
    var packets: u64 = 0;
    while (gen.hasNext()) : (packets += 1) {
        at += try gen.nextInto(out[at..]);
    }
    try testing.expectEqual(out.len, at);
    try testing.expectEqual(totals_expected.packets, packets);
    return out;
}

fn hex(comptime text: []const u8) [hexLen(text)]u8 {
    @setEvalBranchQuota(100_000);
    var out: [hexLen(text)]u8 = undefined;
    var n: usize = 0;
    var i: usize = 0;
    while (i < text.len) : (i += 1) {
        if (!std.ascii.isHex(text[i])) continue;
        out[n] = std.fmt.parseInt(u8, text[i .. i + 2], 16) catch unreachable;
        n += 1;
        i += 1;
    }
    return out;
}

fn hexLen(comptime text: []const u8) usize {
    @setEvalBranchQuota(100_000);
    var n: usize = 0;
    for (text) |c| {
        if (std.ascii.isHex(c)) n += 1;
    }
    return n / 2;
}

test "V1 empty heap: one 49-byte packet with NULL pointer and padding" {
    const expected = hex(
        \\53 04 02 06 00 00 00 05
        \\80 01 00 00 00 12 34 56
        \\80 02 00 00 00 00 00 01
        \\80 03 00 00 00 00 00 00
        \\80 04 00 00 00 00 00 01
        \\00 00 00 00 00 00 00 00
        \\00
    );
    const bytes = try encodeAll(testing.allocator, &.{}, 48, 0x123456, 1500, false);
    defer testing.allocator.free(bytes);
    try testing.expectEqualSlices(u8, &expected, bytes);
}

test "V2 end and start of stream heaps" {
    var expected = hex(
        \\53 04 02 06 00 00 00 06
        \\80 01 00 00 00 12 34 56
        \\80 02 00 00 00 00 00 01
        \\80 03 00 00 00 00 00 00
        \\80 04 00 00 00 00 00 01
        \\80 06 00 00 00 00 00 02
        \\00 00 00 00 00 00 00 00
        \\00
    );
    for ([_]u64{ 2, 0 }) |ctrl| {
        expected[47] = @intCast(ctrl);
        const items = [_]ItemRecord{immediate(protocol.id_stream_ctrl, ctrl)};
        const bytes = try encodeAll(testing.allocator, &items, 48, 0x123456, 1500, false);
        defer testing.allocator.free(bytes);
        try testing.expectEqual(@as(usize, 57), bytes.len);
        try testing.expectEqualSlices(u8, &expected, bytes);
    }
}

test "V3 small fixed item as an immediate" {
    const expected = hex(
        \\53 04 02 06 00 00 00 06
        \\80 01 00 00 00 12 34 56
        \\80 02 00 00 00 00 00 01
        \\80 03 00 00 00 00 00 00
        \\80 04 00 00 00 00 00 01
        \\a3 45 00 00 00 00 76 54
        \\00 00 00 00 00 00 00 00
        \\00
    );
    const items = [_]ItemRecord{immediate(0x2345, 0x7654)};
    const bytes = try encodeAll(testing.allocator, &items, 48, 0x123456, 1500, false);
    defer testing.allocator.free(bytes);
    try testing.expectEqualSlices(u8, &expected, bytes);
}

test "V4 repeat_pointers at 72 bytes" {
    var data: [32]u8 = undefined;
    for (&data, 0..) |*b, i| b.* = @intCast(i);
    const items = [_]ItemRecord{ addressed(0x2345, &data), immediate(0x2346, 0xdeadbeef) };
    const expected = hex(
        \\53 04 02 06 00 00 00 06
        \\80 01 00 00 00 12 34 56
        \\80 02 00 00 00 00 00 20
        \\80 03 00 00 00 00 00 00
        \\80 04 00 00 00 00 00 10
        \\23 45 00 00 00 00 00 00
        \\a3 46 00 00 de ad be ef
        \\00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
        \\53 04 02 06 00 00 00 06
        \\80 01 00 00 00 12 34 56
        \\80 02 00 00 00 00 00 20
        \\80 03 00 00 00 00 00 10
        \\80 04 00 00 00 00 00 10
        \\23 45 00 00 00 00 00 00
        \\a3 46 00 00 de ad be ef
        \\10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f
    );
    const bytes = try encodeAll(testing.allocator, &items, 48, 0x123456, 72, true);
    defer testing.allocator.free(bytes);
    try testing.expectEqualSlices(u8, &expected, bytes);
    // Without repeat_pointers the second packet has no pointers and more room.
    const plain = try encodeAll(testing.allocator, &items, 48, 0x123456, 72, false);
    defer testing.allocator.free(plain);
    try testing.expectEqual(@as(usize, 72 + 56), plain.len);
}

fn packetSizes(items: []const ItemRecord, hab: u32, packet_size_max: u64, out: []u64) !usize {
    var gen = try Packetiser.init(items, testFlavour(hab), 1, packet_size_max, false);
    var n: usize = 0;
    while (gen.hasNext()) : (n += 1) {
        var scratch: [65536]u8 = undefined;
        var segments: [8]iovec_const = undefined;
        out[n] = gen.next(&scratch, &segments).size;
    }
    return n;
}

test "V6 packet sizes at packet_size_max 88" {
    const a = [_]u8{1} ** 8;
    const b = [_]u8{2} ** 72;
    const c = [_]u8{3} ** 136;
    var sizes: [8]u64 = undefined;
    try testing.expectEqual(@as(usize, 1), try packetSizes(&.{addressed(0x1000, &a)}, 48, 88, &sizes));
    try testing.expectEqual(@as(u64, 56), sizes[0]);
    try testing.expectEqual(@as(usize, 2), try packetSizes(&.{addressed(0x1000, &b)}, 48, 88, &sizes));
    try testing.expectEqualSlices(u64, &.{ 88, 72 }, sizes[0..2]);
    try testing.expectEqual(@as(usize, 3), try packetSizes(&.{addressed(0x1000, &c)}, 48, 88, &sizes));
    try testing.expectEqualSlices(u64, &.{ 88, 88, 88 }, sizes[0..3]);
}

test "tutorial packet counts (tut 2 and tut 11)" {
    const mib = try testing.allocator.alloc(u8, 1 << 20);
    defer testing.allocator.free(mib);
    @memset(mib, 0x5a);
    const heap = [_]ItemRecord{ immediate(0x1600, 12345), addressed(0x1601, mib) };
    const g = try Packetiser.init(&heap, testFlavour(40), 1, 1472, false);
    const t = g.totals();
    try testing.expectEqual(@as(u64, 733), t.packets);
    const end = [_]ItemRecord{immediate(protocol.id_stream_ctrl, 2)};
    const e = (try Packetiser.init(&end, testFlavour(40), 11, 1472, false)).totals();
    try testing.expectEqual(@as(u64, 1), e.packets);
    try testing.expectEqual(@as(u64, 7331), 10 * t.packets + e.packets);
    // Iterating agrees with the arithmetic.
    var gen = g;
    var packets: u64 = 0;
    var bytes: u64 = 0;
    var scratch: [1472]u8 = undefined;
    var segments: [4]iovec_const = undefined;
    while (gen.hasNext()) : (packets += 1) {
        const p = gen.next(&scratch, &segments);
        try testing.expect(p.size == 1472 or !gen.hasNext());
        bytes += p.size;
    }
    try testing.expectEqual(t.packets, packets);
    try testing.expectEqual(t.bytes, bytes);

    var sizes: [4]u64 = undefined;
    const h16 = [_]ItemRecord{ immediate(0x1600, 0), addressed(0x3300, mib[0..16384]) };
    try testing.expectEqual(@as(usize, 2), try packetSizes(&h16, 40, 9000, &sizes));
    try testing.expectEqualSlices(u64, &.{ 9000, 7480 }, sizes[0..2]);
    const h8 = [_]ItemRecord{ immediate(0x1600, 0), addressed(0x3300, mib[0..8192]) };
    try testing.expectEqual(@as(usize, 1), try packetSizes(&h8, 40, 9000, &sizes));
    try testing.expectEqual(@as(u64, 8248), sizes[0]);
}

test "packet_size_max rounds down to a multiple of 8" {
    const data = [_]u8{7} ** 100;
    var sizes: [4]u64 = undefined;
    // 8972 -> 8968, so a 100-byte item still fits in one packet.
    try testing.expectEqual(@as(usize, 1), try packetSizes(&.{addressed(0x1000, &data)}, 48, 8972, &sizes));
    const g = try Packetiser.init(&.{}, testFlavour(48), 0, 8972, false);
    try testing.expectEqual(@as(u64, 8968), g.packet_size_max);
    // 63 -> 56, the minimum.
    const g56 = try Packetiser.init(&.{}, testFlavour(48), 0, 63, false);
    try testing.expectEqual(@as(u64, 56), g56.packet_size_max);
}

test "bad input is an error, never a crash" {
    const f48 = testFlavour(48);
    const data = [_]u8{1} ** 16;
    // ID does not fit the 15 id bits of 64-48.
    try testing.expectError(error.InvalidArgument, Packetiser.init(&.{immediate(0x8000, 1)}, f48, 1, 1472, false));
    try testing.expectError(error.InvalidArgument, Packetiser.init(&.{addressed(0x8000, &data)}, f48, 1, 1472, false));
    // Immediate value does not fit 48 bits.
    try testing.expectError(error.InvalidArgument, Packetiser.init(&.{immediate(0x1000, 1 << 48)}, f48, 1, 1472, false));
    // An immediate NULL item, unknown flags, a null address with bytes.
    try testing.expectError(error.InvalidArgument, Packetiser.init(&.{immediate(0, 1)}, f48, 1, 1472, false));
    try testing.expectError(error.InvalidArgument, Packetiser.init(&.{.{ .id = 0x1000, .value = 1, .length = 0, .flags = 2 }}, f48, 1, 1472, false));
    try testing.expectError(error.InvalidArgument, Packetiser.init(&.{.{ .id = 0x1000, .value = 0, .length = 4, .flags = 0 }}, f48, 1, 1472, false));
    // Address range that wraps.
    try testing.expectError(error.InvalidArgument, Packetiser.init(&.{.{ .id = 0x1000, .value = std.math.maxInt(u64) - 2, .length = 4, .flags = 0 }}, f48, 1, 1472, false));
    // Packet size below spead2's minimum.
    try testing.expectError(error.PacketTooSmall, Packetiser.init(&.{}, f48, 1, 55, false));
    try testing.expectError(error.PacketTooSmall, Packetiser.init(&.{}, f48, 1, 0, false));
    _ = try Packetiser.init(&.{}, f48, 1, 56, false);
    // repeat_pointers that do not fit: 56-byte packets hold one pointer.
    const two = [_]ItemRecord{ immediate(0x1000, 1), immediate(0x1001, 2) };
    try testing.expectError(error.PacketTooSmall, Packetiser.init(&two, f48, 1, 56, true));
    _ = try Packetiser.init(&two, f48, 1, 56, false);
    // spead2 keeps room for a NULL pointer: 2 items need 3 slots (72 bytes).
    try testing.expectError(error.PacketTooSmall, Packetiser.init(&two, f48, 1, 64, true));
    _ = try Packetiser.init(&two, f48, 1, 72, true);
    // cnt >= 2^HAB.
    try testing.expectError(error.InvalidCnt, Packetiser.init(&.{}, f48, 1 << 48, 1472, false));
    _ = try Packetiser.init(&.{}, f48, (1 << 48) - 1, 1472, false);
    try testing.expectError(error.InvalidCnt, Packetiser.init(&.{}, testFlavour(8), 256, 1472, false));
    // A heap longer than the flavour's address bits can describe.
    const big = [_]u8{0} ** 256;
    try testing.expectError(error.InvalidArgument, Packetiser.init(&.{addressed(0x10, &big)}, testFlavour(8), 1, 1472, false));
    _ = try Packetiser.init(&.{addressed(0x10, big[0..255])}, testFlavour(8), 1, 1472, false);
    // A too-small output buffer.
    var gen = try Packetiser.init(&.{}, f48, 1, 1472, false);
    var small: [48]u8 = undefined;
    try testing.expectError(error.BufferTooSmall, gen.nextInto(&small));
    var enough: [49]u8 = undefined;
    try testing.expectEqual(@as(usize, 49), try gen.nextInto(&enough));
    try testing.expect(!gen.hasNext());
}

/// Parses our own output back: checks headers and that the payload, put
/// together by offset, is the items' bytes followed by zero padding.
fn checkHeap(items: []const ItemRecord, hab: u32, bytes: []const u8, heap_payload: []u8) !void {
    const f = testFlavour(hab);
    var at: usize = 0;
    var received: u64 = 0;
    var steps: usize = 0;
    while (at < bytes.len) : (steps += 1) {
        try testing.expect(steps < bytes.len);
        const header = std.mem.readInt(u64, bytes[at..][0..8], .big);
        try testing.expectEqual(protocol.magic_version, header >> 48);
        const n: usize = @intCast(header & 0xffff);
        var offset: ?u64 = null;
        var length: ?u64 = null;
        var heap_length: ?u64 = null;
        for (0..n) |i| {
            const word = std.mem.readInt(u64, bytes[at + 8 + 8 * i ..][0..8], .big);
            if (!Flavour.pointerIsImmediate(word)) continue;
            switch (f.pointerId(word)) {
                protocol.id_payload_offset => offset = f.pointerValue(word),
                protocol.id_payload_length => length = f.pointerValue(word),
                protocol.id_heap_length => heap_length = f.pointerValue(word),
                else => {},
            }
        }
        try testing.expectEqual(@as(u64, heap_payload.len), heap_length.?);
        try testing.expectEqual(received, offset.?);
        const start = at + 8 + 8 * n;
        const len: usize = @intCast(length.?);
        fast_copy.copy(heap_payload[@intCast(offset.?)..][0..len], bytes[start..][0..len]);
        received += len;
        at = start + len;
    }
    try testing.expectEqual(@as(u64, heap_payload.len), received);
    var pos: usize = 0;
    for (items) |item| {
        if (item.isImmediate()) continue;
        try testing.expectEqualSlices(u8, item.bytes(), heap_payload[pos..][0..item.bytes().len]);
        pos += item.bytes().len;
    }
    for (heap_payload[pos..]) |b| try testing.expectEqual(@as(u8, 0), b);
}

test "random heaps: zero-copy segments, copies and totals agree" {
    var prng = std.Random.DefaultPrng.init(0x5bead2);
    const random = prng.random();
    const pool = try testing.allocator.alloc(u8, 20000);
    defer testing.allocator.free(pool);
    random.bytes(pool);
    var items: [40]ItemRecord = undefined;
    var round: usize = 0;
    while (round < 300) : (round += 1) {
        const hab: u32 = if (random.boolean()) 40 else 48;
        const item_count = random.uintAtMost(usize, items.len);
        for (items[0..item_count]) |*item| {
            if (random.uintLessThan(u8, 3) == 0) {
                item.* = immediate(0x1000 + random.uintLessThan(u64, 100), random.uintLessThan(u64, 1 << 40));
            } else {
                const len = if (random.uintLessThan(u8, 4) == 0) random.uintAtMost(usize, 3) else random.uintAtMost(usize, 1200);
                const start = random.uintAtMost(usize, pool.len - len);
                item.* = addressed(0x1000 + random.uintLessThan(u64, 100), pool[start..][0..len]);
            }
        }
        const packet_size_max = 56 + random.uintAtMost(u64, 1500);
        const repeat = random.uintLessThan(u8, 4) == 0;
        const table = items[0..item_count];
        var gen = Packetiser.init(table, testFlavour(hab), round, packet_size_max, repeat) catch |err| {
            try testing.expect(repeat);
            try testing.expectEqual(error.PacketTooSmall, err);
            continue;
        };
        const totals_expected = gen.totals();
        const copy = try encodeAll(testing.allocator, table, hab, round, packet_size_max, repeat);
        defer testing.allocator.free(copy);
        try testing.expectEqual(totals_expected.bytes, copy.len);
        const heap_payload = try testing.allocator.alloc(u8, @intCast(gen.payload_size));
        defer testing.allocator.free(heap_payload);
        try checkHeap(table, hab, copy, heap_payload);

        // The same packets gathered from segments, with few or many to spare.
        const segment_count = 2 + random.uintAtMost(usize, 6);
        var segments: [8]iovec_const = undefined;
        const scratch = try testing.allocator.alloc(u8, @intCast(gen.packet_size_max));
        defer testing.allocator.free(scratch);
        var at: usize = 0;
        while (gen.hasNext()) {
            const p = gen.next(scratch, segments[0..segment_count]);
            var size: usize = 0;
            for (segments[0..p.segments_used]) |seg| {
                try testing.expectEqualSlices(u8, copy[at + size ..][0..seg.len], seg.base[0..seg.len]);
                size += seg.len;
            }
            try testing.expectEqual(p.size, size);
            at += size;
        }
        try testing.expectEqual(copy.len, at);
    }
}

test "padding after real data keeps the data first" {
    // 64-byte packets hold 2 pointers; 3 items need 2 packets, so the payload
    // must be at least 9 bytes, but only 3 are real.
    const data = [_]u8{ 0xaa, 0xbb, 0xcc };
    const items = [_]ItemRecord{ immediate(0x1000, 1), immediate(0x1001, 2), addressed(0x1002, &data) };
    const bytes = try encodeAll(testing.allocator, &items, 48, 1, 64, false);
    defer testing.allocator.free(bytes);
    var heap_payload: [9]u8 = undefined;
    try checkHeap(&items, 48, bytes, &heap_payload);
    try testing.expectEqualSlices(u8, &.{ 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0, 0 }, &heap_payload);
}
