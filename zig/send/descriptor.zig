//! Item descriptors (docs/PROTOCOL.md §8): the value of an item with ID 0x05 is a
//! complete SPEAD packet describing another item. Encoding follows spead2's
//! `encode_descriptor` byte for byte; decoding follows what spead2's receiver
//! does with such a value (a throwaway stream, then `to_descriptor`), limited
//! to exactly one heap.
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const assert = std.debug.assert;
const Error = @import("../core/status.zig").Error;
const flavour_mod = @import("../core/flavour.zig");
const Flavour = flavour_mod.Flavour;
const send_heap = @import("packetiser.zig");

/// Bytes of one format field: a code byte plus the bit count.
pub fn formatFieldSize(flavour: Flavour) u64 {
    if (flavour.bug_compat & flavour_mod.bug_compat_descriptor_widths != 0) return 4;
    return 9 - @as(u64, flavour.addressBytes());
}

/// Bytes of one shape field: a flag byte plus the size.
pub fn shapeFieldSize(flavour: Flavour) u64 {
    if (flavour.bug_compat & flavour_mod.bug_compat_descriptor_widths != 0) return 8;
    return 1 + @as(u64, flavour.addressBytes());
}

fn variableTag(flavour: Flavour) u8 {
    return if (flavour.bug_compat & flavour_mod.bug_compat_shape_bit_1 != 0) 2 else 1;
}

pub const shape_flag_variable: u64 = 1;

/// What a descriptor holds. Format and shape are (code, bits) and
/// (flags, size) pairs as in docs/ABI.md.
pub const Fields = struct {
    id: u64,
    name: []const u8,
    description: []const u8,
    format: []const [2]u64,
    shape: []const [2]u64,
    /// Empty: no numpy header (no DTYPE pointer).
    dtype: []const u8,
};

fn payloadSize(flavour: Flavour, d: Fields) u64 {
    return @as(u64, d.name.len) + d.description.len +
        @as(u64, d.format.len) * formatFieldSize(flavour) +
        @as(u64, d.shape.len) * shapeFieldSize(flavour) + d.dtype.len;
}

fn pointerCount(d: Fields) u64 {
    return if (d.dtype.len > 0) 10 else 9;
}

/// Bytes of the encoded descriptor packet.
pub fn encodedSize(flavour: Flavour, d: Fields) u64 {
    return protocol.header_size + pointerCount(d) * protocol.pointer_size + payloadSize(flavour, d);
}

fn fitsBytes(value: u64, byte_count: u64) bool {
    assert(byte_count <= 8);
    if (byte_count == 8) return true;
    return value >> @intCast(8 * byte_count) == 0;
}

/// Checks everything that spead2 would assert on, so that bad JS input is an
/// error here instead.
pub fn validate(flavour: Flavour, d: Fields) Error!void {
    flavour.assertValid();
    if (d.id == 0 or d.id > flavour.idMask()) return error.InvalidArgument;
    // The ID travels as an immediate value too (DESCRIPTOR_ID_ID).
    if (d.id > flavour.addressMask()) return error.InvalidArgument;
    const format_bytes = formatFieldSize(flavour) - 1;
    for (d.format) |field| {
        if (field[0] > 0xff) return error.InvalidArgument;
        if (!fitsBytes(field[1], format_bytes)) return error.InvalidArgument;
    }
    const shape_bytes = shapeFieldSize(flavour) - 1;
    for (d.shape) |dim| {
        if (dim[0] & ~shape_flag_variable != 0) return error.InvalidArgument;
        if (dim[0] & shape_flag_variable == 0 and !fitsBytes(dim[1], shape_bytes)) return error.InvalidArgument;
    }
    if (payloadSize(flavour, d) > flavour.addressMask()) return error.InvalidArgument;
}

fn putBe(dest: []u8, value: u64) void {
    assert(dest.len <= 8);
    var v = value;
    var i = dest.len;
    while (i > 0) {
        i -= 1;
        dest[i] = @truncate(v);
        v >>= 8;
    }
    assert(v == 0);
}

/// Writes the descriptor packet into `out`; returns its size.
pub fn encode(flavour: Flavour, d: Fields, out: []u8) Error!usize {
    try validate(flavour, d);
    const size = encodedSize(flavour, d);
    if (out.len < size) return error.BufferTooSmall;
    const payload = payloadSize(flavour, d);
    const pointer_count = pointerCount(d);
    const header = (protocol.magic_version << 48) |
        (@as(u64, flavour.idBytes()) << 40) |
        (@as(u64, flavour.addressBytes()) << 32) | pointer_count;
    var words: [10]u64 = undefined;
    words[0] = flavour.encodeImmediate(protocol.id_heap_cnt, 1);
    words[1] = flavour.encodeImmediate(protocol.id_heap_length, payload);
    words[2] = flavour.encodeImmediate(protocol.id_payload_offset, 0);
    words[3] = flavour.encodeImmediate(protocol.id_payload_length, payload);
    words[4] = flavour.encodeImmediate(protocol.id_descriptor_id, d.id);
    var offset: u64 = 0;
    words[5] = flavour.encodeAddress(protocol.id_descriptor_name, offset);
    offset += d.name.len;
    words[6] = flavour.encodeAddress(protocol.id_descriptor_description, offset);
    offset += d.description.len;
    words[7] = flavour.encodeAddress(protocol.id_descriptor_format, offset);
    offset += @as(u64, d.format.len) * formatFieldSize(flavour);
    words[8] = flavour.encodeAddress(protocol.id_descriptor_shape, offset);
    offset += @as(u64, d.shape.len) * shapeFieldSize(flavour);
    if (d.dtype.len > 0) {
        words[9] = flavour.encodeAddress(protocol.id_descriptor_dtype, offset);
        offset += d.dtype.len;
    }
    assert(offset == payload);

    std.mem.writeInt(u64, out[0..8], header, .big);
    var at: usize = 8;
    for (words[0..@intCast(pointer_count)]) |word| {
        std.mem.writeInt(u64, out[at..][0..8], word, .big);
        at += 8;
    }
    @memcpy(out[at..][0..d.name.len], d.name);
    at += d.name.len;
    @memcpy(out[at..][0..d.description.len], d.description);
    at += d.description.len;
    const format_size: usize = @intCast(formatFieldSize(flavour));
    for (d.format) |field| {
        out[at] = @intCast(field[0]);
        putBe(out[at + 1 .. at + format_size], field[1]);
        at += format_size;
    }
    const shape_size: usize = @intCast(shapeFieldSize(flavour));
    for (d.shape) |dim| {
        const variable = dim[0] & shape_flag_variable != 0;
        out[at] = if (variable) variableTag(flavour) else 0;
        putBe(out[at + 1 .. at + shape_size], if (variable) 0 else dim[1]);
        at += shape_size;
    }
    @memcpy(out[at..][0..d.dtype.len], d.dtype);
    at += d.dtype.len;
    assert(at == size);
    return at;
}

// ---------------------------------------------------------------------------
// Decoding

/// Distinct item pointers a descriptor heap may carry (spead2 sends 6).
pub const pointers_max = 256;

/// The head of `decode`'s output (zig/abi/records.zig publishes it): then
/// `format_count` (code, bits) pairs and `shape_count` (flags, size) pairs of
/// u64 words, then the strings, at byte offsets from the start of the output.
pub const DescriptorDecoded = extern struct {
    pub const doc = "A decoded descriptor: then format_count (code, bits) and shape_count (flags, size) u64 pairs, then the strings at byte offsets from this record";
    id: u64,
    format_count: u64,
    shape_count: u64,
    name_offset: u64,
    name_len: u64,
    description_offset: u64,
    description_len: u64,
    dtype_offset: u64,
    /// 2^64-1 when the numpy header (ID 0x15) is absent.
    dtype_len: u64,
    /// heap_address_bits of the descriptor's own packets.
    heap_address_bits: u64,
};

pub const out_fixed_words = @sizeOf(DescriptorDecoded) / 8;
pub const dtype_absent: u64 = std.math.maxInt(u64);

const Scan = struct {
    flavour: Flavour,
    cnt: u64,
    /// Payload bytes of the heap (all received in order).
    length: u64,
    packets: u64,
    /// The only packet's payload when there is one packet.
    first_payload: []const u8,
    pointers: [pointers_max]u64,
    pointer_count: usize,
};

const PacketInfo = struct {
    flavour: Flavour,
    cnt: u64,
    heap_length: ?u64,
    offset: u64,
    length: u64,
    pointers: []const u8,
    payload: []const u8,
    size: usize,
};

/// Decodes one packet at the start of `bytes` (docs/PROTOCOL.md §5).
fn decodePacket(bytes: []const u8, bug_compat: u8) Error!PacketInfo {
    if (bytes.len < 8) return error.Malformed;
    const header = std.mem.readInt(u64, bytes[0..8], .big);
    if (header >> 48 != protocol.magic_version) return error.Malformed;
    const id_bytes: u32 = @intCast((header >> 40) & 0xff);
    const address_bytes: u32 = @intCast((header >> 32) & 0xff);
    if (id_bytes == 0 or address_bytes == 0 or id_bytes + address_bytes != 8) return error.Malformed;
    const flavour = Flavour.init(4, 64, address_bytes * 8, bug_compat) catch return error.Malformed;
    const item_count: usize = @intCast(header & 0xffff);
    if (8 + 8 * item_count > bytes.len) return error.Malformed;
    var cnt: ?u64 = null;
    var heap_length: ?u64 = null;
    var offset: ?u64 = null;
    var length: ?u64 = null;
    for (0..item_count) |i| {
        const word = std.mem.readInt(u64, bytes[8 + 8 * i ..][0..8], .big);
        if (!Flavour.pointerIsImmediate(word)) continue;
        const value = flavour.pointerValue(word);
        switch (flavour.pointerId(word)) {
            protocol.id_heap_cnt => cnt = value,
            protocol.id_heap_length => heap_length = value,
            protocol.id_payload_offset => offset = value,
            protocol.id_payload_length => length = value,
            else => {},
        }
    }
    if (cnt == null or offset == null or length == null) return error.Malformed;
    const available = bytes.len - 8 - 8 * item_count;
    if (length.? > available) return error.Malformed;
    if (heap_length) |total| {
        if (offset.? > total or length.? > total - offset.?) return error.Malformed;
    }
    const payload_start = 8 + 8 * item_count;
    const payload_len: usize = @intCast(length.?);
    return .{
        .flavour = flavour,
        .cnt = cnt.?,
        .heap_length = heap_length,
        .offset = offset.?,
        .length = length.?,
        .pointers = bytes[8..payload_start],
        .payload = bytes[payload_start..][0..payload_len],
        .size = payload_start + payload_len,
    };
}

/// Walks the packets of `bytes`, which must all belong to one heap, arrive in
/// order and cover it completely.
fn scan(bytes: []const u8, bug_compat: u8, result: *Scan) Error!void {
    if (bytes.len == 0) return error.Malformed;
    var at: usize = 0;
    var heap_length: ?u64 = null;
    var address_max: u64 = 0;
    result.length = 0;
    result.packets = 0;
    result.pointer_count = 0;
    // Every packet is at least 8 bytes, which bounds the loop.
    while (at < bytes.len) {
        assert(result.packets < bytes.len / 8 + 1);
        const p = try decodePacket(bytes[at..], bug_compat);
        if (result.packets == 0) {
            result.flavour = p.flavour;
            result.cnt = p.cnt;
            result.first_payload = p.payload;
            heap_length = p.heap_length;
        } else {
            if (p.flavour.heap_address_bits != result.flavour.heap_address_bits) return error.Malformed;
            if (p.cnt != result.cnt) return error.Malformed;
            if (p.heap_length != null and heap_length != null and p.heap_length.? != heap_length.?) return error.Malformed;
            if (heap_length == null) heap_length = p.heap_length;
        }
        if (p.offset != result.length) return error.Malformed;
        result.length += p.length;
        const f = result.flavour;
        var i: usize = 0;
        while (i < p.pointers.len) : (i += 8) {
            const word = std.mem.readInt(u64, p.pointers[i..][0..8], .big);
            if (!Flavour.pointerIsImmediate(word)) address_max = @max(address_max, f.pointerValue(word));
            const id = f.pointerId(word);
            if (id != protocol.id_null and id <= protocol.id_payload_length) continue;
            if (std.mem.indexOfScalar(u64, result.pointers[0..result.pointer_count], word) != null) continue;
            if (result.pointer_count == pointers_max) return error.Malformed;
            result.pointers[result.pointer_count] = word;
            result.pointer_count += 1;
        }
        result.packets += 1;
        at += p.size;
    }
    assert(at == bytes.len);
    if (heap_length) |total| {
        if (result.length != total) return error.Malformed;
    }
    if (address_max > result.length) return error.Malformed;
}

/// Puts the heap payload together from its packets (they are in order).
fn assemble(bytes: []const u8, bug_compat: u8, dest: []u8) void {
    var at: usize = 0;
    var filled: usize = 0;
    while (at < bytes.len) {
        const p = decodePacket(bytes[at..], bug_compat) catch unreachable;
        @memcpy(dest[filled..][0..p.payload.len], p.payload);
        filled += p.payload.len;
        at += p.size;
    }
    assert(filled == dest.len);
}

const Decoded = struct {
    id: u64 = 0,
    name: []const u8 = &.{},
    description: []const u8 = &.{},
    format: []const u8 = &.{},
    shape: []const u8 = &.{},
    dtype: ?[]const u8 = null,
};

fn loadBe(bytes: []const u8) u64 {
    assert(bytes.len <= 8);
    var v: u64 = 0;
    for (bytes) |b| v = (v << 8) | b;
    return v;
}

/// Assigns the heap's items to descriptor fields, as spead2's
/// `heap::to_descriptor` does (in `get_items()` order, later items win).
fn interpret(s: *Scan, payload: []const u8, immediates: *[pointers_max][8]u8) Decoded {
    const f = s.flavour;
    const pointers = s.pointers[0..s.pointer_count];
    // spead2 stable-sorts on the mode bit and the address/value bits, so
    // addressed items come first, by address, and equal keys keep their order.
    std.sort.insertion(u64, pointers, f, struct {
        fn less(flavour: Flavour, a: u64, b: u64) bool {
            const mask = flavour_mod.immediate_mask | flavour.addressMask();
            return a & mask < b & mask;
        }
    }.less);

    var d = Decoded{};
    const address_bytes: usize = f.addressBytes();
    for (pointers, 0..) |word, i| {
        const id = f.pointerId(word);
        var value: []const u8 = undefined;
        if (Flavour.pointerIsImmediate(word)) {
            std.mem.writeInt(u64, &immediates[i], word, .big);
            value = immediates[i][8 - address_bytes ..];
        } else {
            const start = f.pointerValue(word);
            const end = if (i + 1 < pointers.len and !Flavour.pointerIsImmediate(pointers[i + 1]))
                f.pointerValue(pointers[i + 1])
            else
                s.length;
            assert(start <= end);
            assert(end <= payload.len);
            if (start == end) continue;
            value = payload[@intCast(start)..@intCast(end)];
        }
        switch (id) {
            protocol.id_descriptor_id => {
                if (Flavour.pointerIsImmediate(word)) d.id = loadBe(value);
            },
            protocol.id_descriptor_name => d.name = value,
            protocol.id_descriptor_description => d.description = value,
            protocol.id_descriptor_format => d.format = value,
            protocol.id_descriptor_shape => d.shape = value,
            protocol.id_descriptor_dtype => d.dtype = value,
            else => {},
        }
    }
    return d;
}

/// Parses a descriptor item value and writes the ABI layout to `out`.
/// Returns the words used; on `BufferTooSmall`, `needed_words` holds the need.
pub fn decode(
    allocator: std.mem.Allocator,
    bug_compat: u32,
    bytes: []const u8,
    out: []u64,
    needed_words: *usize,
) Error!usize {
    if (bug_compat & ~@as(u32, flavour_mod.bug_compat_pyspead_0_5_2) != 0) return error.InvalidFlavour;
    const compat: u8 = @intCast(bug_compat);
    var s: Scan = undefined;
    try scan(bytes, compat, &s);
    const length: usize = @intCast(s.length);
    var assembled: ?[]u8 = null;
    defer if (assembled) |buffer| allocator.free(buffer);
    const payload: []const u8 = if (s.packets == 1) s.first_payload else blk: {
        const buffer = allocator.alloc(u8, length) catch return error.OutOfMemory;
        assembled = buffer;
        assemble(bytes, compat, buffer);
        break :blk buffer;
    };
    assert(payload.len == length);
    var immediates: [pointers_max][8]u8 = undefined;
    const d = interpret(&s, payload, &immediates);
    if (d.id == 0) return error.Malformed;
    return write(s.flavour, d, out, needed_words);
}

fn write(f: Flavour, d: Decoded, out: []u64, needed_words: *usize) Error!usize {
    const format_size: usize = @intCast(formatFieldSize(f));
    const shape_size: usize = @intCast(shapeFieldSize(f));
    const format_count = d.format.len / format_size;
    const shape_count = d.shape.len / shape_size;
    const dtype = d.dtype orelse &[_]u8{};
    const fixed = out_fixed_words + 2 * format_count + 2 * shape_count;
    const string_bytes = d.name.len + d.description.len + dtype.len;
    const total = fixed + (string_bytes + 7) / 8;
    needed_words.* = total;
    if (out.len < total) return error.BufferTooSmall;

    const name_offset = fixed * 8;
    const description_offset = name_offset + d.name.len;
    const dtype_offset = description_offset + d.description.len;
    const head: *DescriptorDecoded = @ptrCast(out.ptr);
    head.* = .{
        .id = d.id,
        .format_count = format_count,
        .shape_count = shape_count,
        .name_offset = name_offset,
        .name_len = d.name.len,
        .description_offset = description_offset,
        .description_len = d.description.len,
        .dtype_offset = dtype_offset,
        .dtype_len = if (d.dtype == null) dtype_absent else dtype.len,
        .heap_address_bits = f.heap_address_bits,
    };
    var w: usize = out_fixed_words;
    for (0..format_count) |i| {
        const field = d.format[i * format_size ..][0..format_size];
        out[w] = field[0];
        out[w + 1] = loadBe(field[1..]);
        w += 2;
    }
    const mask = variableTag(f);
    for (0..shape_count) |i| {
        const field = d.shape[i * shape_size ..][0..shape_size];
        const variable = field[0] & mask != 0;
        out[w] = if (variable) shape_flag_variable else 0;
        out[w + 1] = if (variable) 0 else loadBe(field[1..]);
        w += 2;
    }
    assert(w == fixed);
    const out_bytes = std.mem.sliceAsBytes(out[0..total]);
    @memset(out_bytes[fixed * 8 ..], 0);
    @memcpy(out_bytes[name_offset..][0..d.name.len], d.name);
    @memcpy(out_bytes[description_offset..][0..d.description.len], d.description);
    @memcpy(out_bytes[dtype_offset..][0..dtype.len], dtype);
    return total;
}

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;
const ItemRecord = send_heap.ItemRecord;

pub fn fromHex(comptime text: []const u8) [text.len / 2]u8 {
    var out: [text.len / 2]u8 = undefined;
    _ = std.fmt.hexToBytes(&out, text) catch unreachable;
    return out;
}

/// spead2 test vectors V5 and V9 (also seeds of zig/send/descriptor_fuzz.zig).
pub const v5_hex = "5304020600000006800100000012345680020000000000ba800300000000000080040000000000ba" ++
    "000500000000000023450000000000ae530402060000000a80010000000000018002000000000056" ++
    "80030000000000008004000000000056801400000000234500100000000000000011000000000004" ++
    "001300000000000f001200000000000f001500000000001d6e616d656465736372697074696f6e00" ++
    "000000000002000000000000037b276465736372273a20273c7532272c2027666f727472616e5f6f" ++
    "72646572273a2046616c73652c20277368617065273a2028322c2033297d0600070008000a000b00e02e";

pub const v9_hex = "530403050000000980000100000000018000020000000026800003000000000080000400000000268000" ++
    "140000001600000010000000000000001100000000090000130000000022000012000000002674696d65" ++
    "7374616d70496e646578206f66207468652066697273742073616d706c6575000028";

const v5_dtype = "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3)}";

fn flavourOf(hab: u32, bug_compat: u32) Flavour {
    return Flavour.init(4, 64, hab, bug_compat) catch unreachable;
}

test "V5 numpy item with descriptor: all 242 bytes" {
    const expected = fromHex(v5_hex);
    const f = flavourOf(48, 0);
    const fields = Fields{
        .id = 0x2345,
        .name = "name",
        .description = "description",
        .format = &.{},
        .shape = &.{ .{ 0, 2 }, .{ 0, 3 } },
        .dtype = v5_dtype,
    };
    var desc: [256]u8 = undefined;
    const desc_len = try encode(f, fields, &desc);
    try testing.expectEqual(@as(usize, 174), desc_len);
    try testing.expectEqual(@as(u64, 174), encodedSize(f, fields));
    const data = [_]u8{ 0x06, 0x00, 0x07, 0x00, 0x08, 0x00, 0x0a, 0x00, 0x0b, 0x00, 0xe0, 0x2e };
    const items = [_]ItemRecord{
        .{ .id = protocol.id_descriptor, .value = @intFromPtr(&desc), .length = desc_len, .flags = 0 },
        .{ .id = 0x2345, .value = @intFromPtr(&data), .length = data.len, .flags = 0 },
    };
    var gen = try send_heap.Packetiser.init(&items, f, 0x123456, 1500, false);
    var out: [1500]u8 = undefined;
    const n = try gen.nextInto(&out);
    try testing.expect(!gen.hasNext());
    try testing.expectEqualSlices(u8, &expected, out[0..n]);
}

test "V9 64-40 descriptor: 118 bytes" {
    const expected = fromHex(v9_hex);
    const fields = Fields{
        .id = 0x1600,
        .name = "timestamp",
        .description = "Index of the first sample",
        .format = &.{.{ 'u', 40 }},
        .shape = &.{},
        .dtype = "",
    };
    var out: [118]u8 = undefined;
    try testing.expectEqual(@as(usize, 118), try encode(flavourOf(40, 0), fields, &out));
    try testing.expectEqualSlices(u8, &expected, &out);
    var short: [117]u8 = undefined;
    try testing.expectError(error.BufferTooSmall, encode(flavourOf(40, 0), fields, &short));
}

fn expectDecoded(bug_compat: u32, bytes: []const u8, expected: Fields, hab: u64) !void {
    var out: [128]u64 = undefined;
    var needed: usize = 0;
    const words = try decode(testing.allocator, bug_compat, bytes, &out, &needed);
    try testing.expectEqual(needed, words);
    try testing.expectEqual(expected.id, out[0]);
    try testing.expectEqual(@as(u64, expected.format.len), out[1]);
    try testing.expectEqual(@as(u64, expected.shape.len), out[2]);
    const raw = std.mem.sliceAsBytes(out[0..words]);
    try testing.expectEqualStrings(expected.name, raw[@intCast(out[3])..][0..@intCast(out[4])]);
    try testing.expectEqualStrings(expected.description, raw[@intCast(out[5])..][0..@intCast(out[6])]);
    if (expected.dtype.len == 0) {
        try testing.expectEqual(dtype_absent, out[8]);
    } else {
        try testing.expectEqualStrings(expected.dtype, raw[@intCast(out[7])..][0..@intCast(out[8])]);
    }
    try testing.expectEqual(hab, out[9]);
    var w: usize = out_fixed_words;
    for (expected.format) |field| {
        try testing.expectEqual(field[0], out[w]);
        try testing.expectEqual(field[1], out[w + 1]);
        w += 2;
    }
    for (expected.shape) |dim| {
        try testing.expectEqual(dim[0], out[w]);
        try testing.expectEqual(if (dim[0] & shape_flag_variable != 0) 0 else dim[1], out[w + 1]);
        w += 2;
    }
    // Too small an output reports the need.
    var small: [out_fixed_words]u64 = undefined;
    var need_small: usize = 0;
    const result = decode(testing.allocator, bug_compat, bytes, &small, &need_small);
    if (words > small.len) {
        try testing.expectError(error.BufferTooSmall, result);
        try testing.expectEqual(words, need_small);
    }
}

test "decode V5 and V9 descriptors" {
    const v5 = fromHex(v5_hex);
    // The descriptor packet is the first item of the outer heap: bytes 56..230.
    try expectDecoded(0, v5[56..230], .{
        .id = 0x2345,
        .name = "name",
        .description = "description",
        .format = &.{},
        .shape = &.{ .{ 0, 2 }, .{ 0, 3 } },
        .dtype = v5_dtype,
    }, 48);
    const v9 = fromHex(v9_hex);
    try expectDecoded(0, &v9, .{
        .id = 0x1600,
        .name = "timestamp",
        .description = "Index of the first sample",
        .format = &.{.{ 'u', 40 }},
        .shape = &.{},
        .dtype = "",
    }, 40);
}

test "encode/decode round trips over flavours and bug_compat" {
    var hab: u32 = 8;
    while (hab <= 56) : (hab += 8) {
        for ([_]u32{ 0, 1, 2, 3, 7 }) |compat| {
            const f = flavourOf(hab, compat);
            const format_max = if (formatFieldSize(f) - 1 >= 8) std.math.maxInt(u64) else (@as(u64, 1) << @intCast(8 * (formatFieldSize(f) - 1))) - 1;
            const fields = Fields{
                .id = @min(0x1234, f.idMask(), f.addressMask()),
                .name = "x",
                .description = "",
                .format = &.{ .{ 'u', @min(40, format_max) }, .{ 'f', @min(64, format_max) } },
                .shape = &.{ .{ shape_flag_variable, 0 }, .{ 0, 5 } },
                .dtype = if (hab >= 16) "{'shape': (5,)}" else "",
            };
            var buffer: [256]u8 = undefined;
            const n = try encode(f, fields, &buffer);
            try expectDecoded(compat, buffer[0..n], fields, hab);
        }
    }
}

test "bug_compat widths: 4-byte format, 8-byte shape, variable tag 2" {
    const f = flavourOf(48, 7);
    const fields = Fields{
        .id = 0x1000,
        .name = "",
        .description = "",
        .format = &.{.{ 'i', 12 }},
        .shape = &.{ .{ shape_flag_variable, 0 }, .{ 0, 0x0102 } },
        .dtype = "",
    };
    var out: [128]u8 = undefined;
    const n = try encode(f, fields, &out);
    try testing.expectEqual(@as(usize, 8 + 9 * 8 + 4 + 16), n);
    const payload = out[80..n];
    try testing.expectEqualSlices(u8, &.{ 'i', 0, 0, 12 }, payload[0..4]);
    try testing.expectEqualSlices(u8, &.{ 2, 0, 0, 0, 0, 0, 0, 0 }, payload[4..12]);
    try testing.expectEqualSlices(u8, &.{ 0, 0, 0, 0, 0, 0, 0x01, 0x02 }, payload[12..20]);
    // Without the flags the same flavour uses 3-byte formats and 7-byte shapes.
    const plain = try encode(flavourOf(48, 0), fields, &out);
    try testing.expectEqual(@as(usize, 8 + 9 * 8 + 3 + 14), plain);
    try testing.expectEqualSlices(u8, &.{ 1, 0, 0, 0, 0, 0, 0 }, out[83..90]);
    // The receiver masks the flag byte: 1 is not "variable" under SHAPE_BIT_1.
    var words: [64]u64 = undefined;
    var needed: usize = 0;
    _ = try decode(testing.allocator, 2, out[0..plain], &words, &needed);
    try testing.expectEqual(@as(u64, 0), words[out_fixed_words + 2]);
}

test "decode accepts a descriptor heap spread over several packets" {
    const f = flavourOf(40, 0);
    const name = "timestamp";
    const description = "Index of the first sample, in a rather long description";
    const format = [_]u8{ 'u', 0, 0, 40 };
    const shape = [_]u8{ 0, 0, 0, 0, 0, 7 };
    const dtype = "{'descr': '>u8', 'fortran_order': False, 'shape': (7,)}";
    const items = [_]ItemRecord{
        .{ .id = protocol.id_descriptor_id, .value = 0x1600, .length = 0, .flags = send_heap.item_flag_immediate },
        .{ .id = protocol.id_descriptor_name, .value = @intFromPtr(name), .length = name.len, .flags = 0 },
        .{ .id = protocol.id_descriptor_description, .value = @intFromPtr(description), .length = description.len, .flags = 0 },
        .{ .id = protocol.id_descriptor_format, .value = @intFromPtr(&format), .length = format.len, .flags = 0 },
        .{ .id = protocol.id_descriptor_shape, .value = @intFromPtr(&shape), .length = shape.len, .flags = 0 },
        .{ .id = protocol.id_descriptor_dtype, .value = @intFromPtr(dtype), .length = dtype.len, .flags = 0 },
    };
    for ([_]u64{ 56, 64, 96, 200, 1500 }) |packet_size_max| {
        var gen = try send_heap.Packetiser.init(&items, f, 1, packet_size_max, false);
        const t = gen.totals();
        const bytes = try testing.allocator.alloc(u8, @intCast(t.bytes));
        defer testing.allocator.free(bytes);
        var at: usize = 0;
        while (gen.hasNext()) at += try gen.nextInto(bytes[at..]);
        try expectDecoded(0, bytes, .{
            .id = 0x1600,
            .name = name,
            .description = description,
            .format = &.{.{ 'u', 40 }},
            .shape = &.{.{ 0, 7 }},
            .dtype = dtype,
        }, 40);
        // Dropping the last packet leaves the heap incomplete.
        if (t.packets > 1) {
            var out: [64]u64 = undefined;
            var needed: usize = 0;
            const g2 = try send_heap.Packetiser.init(&items, f, 1, packet_size_max, false);
            const first_len: usize = @intCast(g2.nextSize());
            try testing.expectError(error.Malformed, decode(testing.allocator, 0, bytes[0..first_len], &out, &needed));
        }
    }
}

test "decode accepts specials in any order and 64-48 pointers between them" {
    // A hand-built packet: PAYLOAD_LENGTH last, a user pointer between specials,
    // no HEAP_LENGTH.
    const f = flavourOf(48, 0);
    var buf: [8 + 7 * 8 + 5]u8 = undefined;
    std.mem.writeInt(u64, buf[0..8], (protocol.magic_version << 48) | (2 << 40) | (6 << 32) | 7, .big);
    const words = [_]u64{
        f.encodeImmediate(protocol.id_payload_offset, 0),
        f.encodeAddress(protocol.id_descriptor_name, 0),
        f.encodeImmediate(protocol.id_heap_cnt, 77),
        f.encodeImmediate(protocol.id_descriptor_id, 0x4321),
        f.encodeAddress(protocol.id_descriptor_format, 3),
        f.encodeAddress(protocol.id_null, 5),
        f.encodeImmediate(protocol.id_payload_length, 5),
    };
    for (words, 0..) |word, i| std.mem.writeInt(u64, buf[8 + 8 * i ..][0..8], word, .big);
    @memcpy(buf[64..69], "abcXY");
    var out: [64]u64 = undefined;
    var needed: usize = 0;
    const n = try decode(testing.allocator, 0, &buf, &out, &needed);
    try testing.expect(n > out_fixed_words);
    try testing.expectEqual(@as(u64, 0x4321), out[0]);
    try testing.expectEqual(@as(u64, 0), out[1]); // 2 bytes < one 3-byte format field
    const raw = std.mem.sliceAsBytes(out[0..n]);
    try testing.expectEqualStrings("abc", raw[@intCast(out[3])..][0..@intCast(out[4])]);
}

test "decode rejects garbage, truncation, several heaps and a missing ID" {
    var out: [64]u64 = undefined;
    var needed: usize = 0;
    const v9 = fromHex(v9_hex);
    // Every truncation of the packet.
    for (0..v9.len) |len| {
        try testing.expectError(error.Malformed, decode(testing.allocator, 0, v9[0..len], &out, &needed));
    }
    // Garbage: wrong magic, wrong version, bad widths.
    var bad = v9;
    bad[0] = 0x54;
    try testing.expectError(error.Malformed, decode(testing.allocator, 0, &bad, &out, &needed));
    bad = v9;
    bad[1] = 3;
    try testing.expectError(error.Malformed, decode(testing.allocator, 0, &bad, &out, &needed));
    bad = v9;
    bad[2] = 4;
    try testing.expectError(error.Malformed, decode(testing.allocator, 0, &bad, &out, &needed));
    // Trailing bytes after the heap.
    var trailing: [v9.len + 8]u8 = undefined;
    @memcpy(trailing[0..v9.len], &v9);
    @memset(trailing[v9.len..], 0);
    try testing.expectError(error.Malformed, decode(testing.allocator, 0, &trailing, &out, &needed));
    // The same heap twice, and a second heap with another cnt.
    var twice: [2 * v9.len]u8 = undefined;
    @memcpy(twice[0..v9.len], &v9);
    @memcpy(twice[v9.len..], &v9);
    try testing.expectError(error.Malformed, decode(testing.allocator, 0, &twice, &out, &needed));
    twice[v9.len + 15] = 2;
    try testing.expectError(error.Malformed, decode(testing.allocator, 0, &twice, &out, &needed));
    // No DESCRIPTOR_ID item: turn it into an unknown immediate (0x17).
    bad = v9;
    bad[8 + 4 * 8 + 2] = 0x17;
    try testing.expectError(error.Malformed, decode(testing.allocator, 0, &bad, &out, &needed));
    // An address beyond the heap length.
    bad = v9;
    bad[8 + 8 * 8 + 7] = 0x40;
    try testing.expectError(error.Malformed, decode(testing.allocator, 0, &bad, &out, &needed));
    // bug_compat outside 0..7.
    try testing.expectError(error.InvalidFlavour, decode(testing.allocator, 8, &v9, &out, &needed));
}

test "encode rejects what spead2 would assert on" {
    var out: [256]u8 = undefined;
    const base = Fields{ .id = 0x50, .name = "n", .description = "d", .format = &.{}, .shape = &.{}, .dtype = "" };
    var d = base;
    d.id = 0;
    try testing.expectError(error.InvalidArgument, encode(flavourOf(48, 0), d, &out));
    d.id = 0x8000;
    try testing.expectError(error.InvalidArgument, encode(flavourOf(48, 0), d, &out));
    d = base;
    d.format = &.{.{ 0x100, 8 }};
    try testing.expectError(error.InvalidArgument, encode(flavourOf(48, 0), d, &out));
    // 64-56 has a 1-byte bit count.
    d.format = &.{.{ 'u', 256 }};
    try testing.expectError(error.InvalidArgument, encode(flavourOf(56, 0), d, &out));
    d.format = &.{.{ 'u', 255 }};
    _ = try encode(flavourOf(56, 0), d, &out);
    d = base;
    d.shape = &.{.{ 2, 1 }};
    try testing.expectError(error.InvalidArgument, encode(flavourOf(48, 0), d, &out));
    // 64-8 has a 1-byte size.
    d.shape = &.{.{ 0, 256 }};
    try testing.expectError(error.InvalidArgument, encode(flavourOf(8, 0), d, &out));
    // A payload that 8 address bits cannot address.
    d = base;
    d.name = &([_]u8{'a'} ** 255);
    try testing.expectError(error.InvalidArgument, encode(flavourOf(8, 0), d, &out));
}
