//! C exports of the send codec: flavour check, heap encoding, the packet
//! generator and descriptors (docs/ABI.md, "Send side" and "Descriptors").
//! Every export validates its pointers and numbers and returns a status; none
//! of them keeps a JS pointer after returning, except the packet generator,
//! which keeps the item bytes (not the table) until it is destroyed.
const std = @import("std");
const assert = std.debug.assert;
const status = @import("../core/status.zig");
const Error = status.Error;
const handles = @import("../core/handles.zig");
const Flavour = @import("../core/flavour.zig").Flavour;
const send_heap = @import("../send/packetiser.zig");
const descriptor = @import("../send/descriptor.zig");
const records = @import("records.zig");
const DescriptorFields = records.DescriptorFields;
const HeapEncoding = records.HeapEncoding;

const allocator = std.heap.c_allocator;

/// Upper bound on the records of one item table (32 MiB of table).
pub const items_max: u32 = 1 << 20;
/// Upper bound on format fields and shape dimensions of one descriptor.
pub const descriptor_fields_max: u32 = 1 << 16;
/// Live packet generators at once.
pub const packet_gens_max: u32 = 1024;

// ---------------------------------------------------------------------------
// Argument checks shared by the export files.

/// A JS array of `n` u64 words: 8-byte aligned, non-null unless empty.
pub fn wordsIn(ptr: ?*const anyopaque, n: usize) Error![]const u64 {
    if (n == 0) return &[_]u64{};
    const p = ptr orelse return error.InvalidArgument;
    if (@intFromPtr(p) % @alignOf(u64) != 0) return error.InvalidArgument;
    const words: [*]const u64 = @ptrCast(@alignCast(p));
    return words[0..n];
}

pub fn wordsOut(ptr: ?*anyopaque, n: usize) Error![]u64 {
    if (n == 0) return &[_]u64{};
    const p = ptr orelse return error.InvalidArgument;
    if (@intFromPtr(p) % @alignOf(u64) != 0) return error.InvalidArgument;
    const words: [*]u64 = @ptrCast(@alignCast(p));
    return words[0..n];
}

pub fn bytesIn(ptr: ?[*]const u8, n: usize) Error![]const u8 {
    if (n == 0) return &[_]u8{};
    const p = ptr orelse return error.InvalidArgument;
    return p[0..n];
}

pub fn bytesOut(ptr: ?[*]u8, n: usize) Error![]u8 {
    if (n == 0) return &[_]u8{};
    const p = ptr orelse return error.InvalidArgument;
    return p[0..n];
}

pub fn u32Out(ptr: ?*anyopaque) Error!*u32 {
    const p = ptr orelse return error.InvalidArgument;
    if (@intFromPtr(p) % @alignOf(u32) != 0) return error.InvalidArgument;
    return @ptrCast(@alignCast(p));
}

pub fn u64In(ptr: ?*const anyopaque) Error!u64 {
    const words = try wordsIn(ptr, 1);
    return words[0];
}

pub fn flag(value: u32) Error!bool {
    return switch (value) {
        0 => false,
        1 => true,
        else => error.InvalidArgument,
    };
}

fn heapFlavour(heap_address_bits: u32, bug_compat: u32) Error!Flavour {
    return Flavour.init(4, 64, heap_address_bits, bug_compat);
}

pub fn itemTable(items: ?[*]const u64, item_count: u32) Error![]const send_heap.ItemRecord {
    if (item_count > items_max) return error.CapacityExceeded;
    const words = try wordsIn(items, @as(usize, item_count) * send_heap.item_words);
    return send_heap.recordsFromWords(words);
}

/// What every heap encoder takes, checked in this order: flavour, item table, cnt, repeat_pointers.
const HeapArgs = struct {
    flavour: Flavour,
    table: []const send_heap.ItemRecord,
    cnt: u64,
    repeat: bool,

    fn read(items: ?[*]const u64, item_count: u32, heap_address_bits: u32, bug_compat: u32, cnt_in: ?*const u64, repeat_pointers: u32) Error!HeapArgs {
        return .{
            .flavour = try heapFlavour(heap_address_bits, bug_compat),
            .table = try itemTable(items, item_count),
            .cnt = try u64In(cnt_in),
            .repeat = try flag(repeat_pointers),
        };
    }

    fn packetiser(self: HeapArgs, table: []const send_heap.ItemRecord, packet_size_max: u32) Error!send_heap.Packetiser {
        return send_heap.Packetiser.init(table, self.flavour, self.cnt, packet_size_max, self.repeat);
    }
};

fn clampU32(value: u64) u32 {
    return @intCast(@min(value, std.math.maxInt(u32)));
}

// ---------------------------------------------------------------------------
// Common

pub fn flavourCheck(version: u32, item_pointer_bits: u32, heap_address_bits: u32, bug_compat: u32) Error!void {
    _ = try Flavour.init(version, item_pointer_bits, heap_address_bits, bug_compat);
}

// ---------------------------------------------------------------------------
// Heaps

pub fn heapEncodedSize(
    items: ?[*]const u64,
    item_count: u32,
    heap_address_bits: u32,
    packet_size_max: u32,
    repeat_pointers: u32,
    out: ?*HeapEncoding,
) Error!void {
    const heap = try HeapArgs.read(items, item_count, heap_address_bits, 0, &@as(u64, 0), repeat_pointers);
    const result = out orelse return error.InvalidArgument;
    const gen = try heap.packetiser(heap.table, packet_size_max);
    const totals = gen.totals();
    result.* = .{ .encoded_size = totals.bytes, .packet_count = totals.packets };
}

pub fn heapEncode(
    items: ?[*]const u64,
    item_count: u32,
    heap_address_bits: u32,
    bug_compat: u32,
    cnt_in: ?*const u64,
    packet_size_max: u32,
    repeat_pointers: u32,
    out: ?[*]u8,
    cap: u32,
    out_len: ?*u32,
) Error!void {
    const heap = try HeapArgs.read(items, item_count, heap_address_bits, bug_compat, cnt_in, repeat_pointers);
    const len = try u32Out(out_len);
    var gen = try heap.packetiser(heap.table, packet_size_max);
    const totals = gen.totals();
    if (totals.bytes > cap) {
        len.* = clampU32(totals.bytes);
        return error.BufferTooSmall;
    }
    const dest = try bytesOut(out, cap);
    var at: usize = 0;
    var packets: u64 = 0;
    while (gen.hasNext()) : (packets += 1) {
        assert(packets < totals.packets);
        at += gen.nextInto(dest[at..]) catch unreachable;
    }
    assert(at == totals.bytes);
    len.* = @intCast(at);
}

// ---------------------------------------------------------------------------
// Packet generator

const PacketGen = struct {
    /// Our copy of the table; the item bytes stay in JS memory.
    items: []send_heap.ItemRecord,
    packetiser: send_heap.Packetiser,
};

var packet_gens: handles.Table(PacketGen, packet_gens_max) = .{};

pub fn packetGenCreate(
    items: ?[*]const u64,
    item_count: u32,
    heap_address_bits: u32,
    bug_compat: u32,
    cnt_in: ?*const u64,
    packet_size_max: u32,
    repeat_pointers: u32,
    out_handle: ?*u32,
) Error!void {
    const heap = try HeapArgs.read(items, item_count, heap_address_bits, bug_compat, cnt_in, repeat_pointers);
    const handle_out = try u32Out(out_handle);
    // Validate against the JS table before copying anything.
    _ = try heap.packetiser(heap.table, packet_size_max);

    const gen = allocator.create(PacketGen) catch return error.OutOfMemory;
    errdefer allocator.destroy(gen);
    const copy = allocator.dupe(send_heap.ItemRecord, heap.table) catch return error.OutOfMemory;
    errdefer allocator.free(copy);
    gen.* = .{
        .items = copy,
        .packetiser = heap.packetiser(copy, packet_size_max) catch unreachable,
    };
    handle_out.* = try packet_gens.insert(gen);
}

pub fn packetGenNext(handle: u32, out: ?[*]u8, cap: u32, out_len: ?*u32) Error!void {
    const gen = try packet_gens.get(handle);
    const len = try u32Out(out_len);
    if (!gen.packetiser.hasNext()) {
        len.* = 0;
        return;
    }
    const size = gen.packetiser.nextSize();
    if (size > cap) {
        len.* = clampU32(size);
        return error.BufferTooSmall;
    }
    const dest = try bytesOut(out, cap);
    len.* = @intCast(gen.packetiser.nextInto(dest) catch unreachable);
}

pub fn packetGenDestroy(handle: u32) Error!void {
    const gen = try packet_gens.remove(handle);
    allocator.free(gen.items);
    allocator.destroy(gen);
}

// ---------------------------------------------------------------------------
// Descriptors

/// `n` items of `T` at `address` (a record's field): 0 only when empty, aligned.
fn addressed(comptime T: type, address: u64, n: u32) Error![]const T {
    if (n == 0) return &[_]T{};
    if (address == 0 or address % @alignOf(T) != 0) return error.InvalidArgument;
    const p: [*]const T = @ptrFromInt(std.math.cast(usize, address) orelse return error.InvalidArgument);
    return p[0..n];
}

fn pairs(address: u64, n: u32) Error![]const [2]u64 {
    if (n > descriptor_fields_max) return error.CapacityExceeded;
    return addressed([2]u64, address, n);
}

pub fn descriptorEncode(fields_in: ?*const DescriptorFields, out: ?[*]u8, cap: u32, out_len: ?*u32) Error!void {
    const d = fields_in orelse return error.InvalidArgument;
    if (d.reserved != 0) return error.InvalidArgument;
    const f = try heapFlavour(d.heap_address_bits, d.bug_compat);
    const fields = descriptor.Fields{
        .id = d.id,
        .name = try addressed(u8, d.name_address, d.name_len),
        .description = try addressed(u8, d.description_address, d.description_len),
        .format = try pairs(d.format_address, d.format_count),
        .shape = try pairs(d.shape_address, d.shape_count),
        .dtype = try addressed(u8, d.dtype_address, d.dtype_len),
    };
    const len = try u32Out(out_len);
    try descriptor.validate(f, fields);
    const size = descriptor.encodedSize(f, fields);
    if (size > cap) {
        len.* = clampU32(size);
        return error.BufferTooSmall;
    }
    len.* = @intCast(try descriptor.encode(f, fields, try bytesOut(out, cap)));
}

pub fn descriptorDecode(bug_compat: u32, bytes: ?[*]const u8, len: u32, out: ?[*]u64, cap_words: u32, out_words: ?*u32) Error!void {
    const input = try bytesIn(bytes, len);
    const words = try u32Out(out_words);
    const dest = try wordsOut(out, cap_words);
    var needed: usize = 0;
    const used = descriptor.decode(allocator, bug_compat, input, dest, &needed) catch |err| {
        if (err == error.BufferTooSmall) words.* = clampU32(needed);
        return err;
    };
    words.* = @intCast(used);
}

// ---------------------------------------------------------------------------
// Tests: the exports as JS sees them, with bad arguments.

const testing = std.testing;
const abi = @import("table.zig");
const capi = abi.fns;

const expectStatus = abi.expectStatus;

test "flavour check" {
    try expectStatus(.ok, capi.spead_flavour_check(4, 64, 40, 0));
    try expectStatus(.ok, capi.spead_flavour_check(4, 64, 48, 7));
    try expectStatus(.invalid_flavour, capi.spead_flavour_check(4, 64, 44, 0));
    try expectStatus(.invalid_flavour, capi.spead_flavour_check(3, 64, 40, 0));
    try expectStatus(.invalid_flavour, capi.spead_flavour_check(4, 64, 40, 8));
}

test "heap encode: V1 through the exports, sizes and bad arguments" {
    var table = [_]u64{ 0x06, 2, 0, 1 }; // STREAM_CTRL = 2, immediate
    var sizes: HeapEncoding = undefined;
    try expectStatus(.ok, capi.spead_heap_encoded_size(&table, 1, 48, 1500, 0, &sizes));
    try testing.expectEqual(@as(u64, 57), sizes.encoded_size);
    try testing.expectEqual(@as(u64, 1), sizes.packet_count);
    const cnt: u64 = 0x123456;
    var out: [64]u8 = undefined;
    var len: u32 = 0;
    try expectStatus(.ok, capi.spead_heap_encode(&table, 1, 48, 0, &cnt, 1500, 0, &out, out.len, &len));
    try testing.expectEqual(@as(u32, 57), len);
    try testing.expectEqual(@as(u8, 0x02), out[47]);
    // Empty tables may come with a null pointer.
    try expectStatus(.ok, capi.spead_heap_encoded_size(null, 0, 48, 1500, 0, &sizes));
    try testing.expectEqual(@as(u64, 49), sizes.encoded_size);
    // Short output: the needed size comes back.
    len = 0;
    try expectStatus(.buffer_too_small, capi.spead_heap_encode(&table, 1, 48, 0, &cnt, 1500, 0, &out, 56, &len));
    try testing.expectEqual(@as(u32, 57), len);
    try expectStatus(.buffer_too_small, capi.spead_heap_encode(&table, 1, 48, 0, &cnt, 1500, 0, null, 0, &len));
    // Null or misaligned pointers, bad numbers.
    try expectStatus(.invalid_argument, capi.spead_heap_encoded_size(null, 1, 48, 1500, 0, &sizes));
    try expectStatus(.invalid_argument, capi.spead_heap_encoded_size(&table, 1, 48, 1500, 0, null));
    const misaligned: [*]align(1) const u64 = @ptrFromInt(@intFromPtr(&table) + 4);
    try expectStatus(.invalid_argument, capi.spead_heap_encoded_size(misaligned, 1, 48, 1500, 0, &sizes));
    try expectStatus(.invalid_argument, capi.spead_heap_encoded_size(&table, 1, 48, 1500, 2, &sizes));
    try expectStatus(.invalid_argument, capi.spead_heap_encode(&table, 1, 48, 0, null, 1500, 0, &out, out.len, &len));
    try expectStatus(.invalid_argument, capi.spead_heap_encode(&table, 1, 48, 0, &cnt, 1500, 0, &out, out.len, null));
    try expectStatus(.invalid_argument, capi.spead_heap_encode(&table, 1, 48, 0, &cnt, 1500, 0, null, 64, &len));
    try expectStatus(.invalid_flavour, capi.spead_heap_encoded_size(&table, 1, 47, 1500, 0, &sizes));
    try expectStatus(.invalid_flavour, capi.spead_heap_encode(&table, 1, 48, 9, &cnt, 1500, 0, &out, out.len, &len));
    try expectStatus(.packet_too_small, capi.spead_heap_encoded_size(&table, 1, 48, 55, 0, &sizes));
    try expectStatus(.capacity_exceeded, capi.spead_heap_encoded_size(&table, items_max + 1, 48, 1500, 0, &sizes));
    const big_cnt: u64 = 1 << 48;
    try expectStatus(.invalid_cnt, capi.spead_heap_encode(&table, 1, 48, 0, &big_cnt, 1500, 0, &out, out.len, &len));
    table[0] = 0x8000; // id too big for 64-48
    try expectStatus(.invalid_argument, capi.spead_heap_encoded_size(&table, 1, 48, 1500, 0, &sizes));
    table[0] = 0x06;
    table[1] = 1 << 48; // immediate too big
    try expectStatus(.invalid_argument, capi.spead_heap_encoded_size(&table, 1, 48, 1500, 0, &sizes));
}

test "packet generator lifecycle" {
    var data: [100]u8 = undefined;
    for (&data, 0..) |*b, i| b.* = @intCast(i);
    const table = [_]u64{ 0x1000, @intFromPtr(&data), data.len, 0 };
    const cnt: u64 = 7;
    var handle: u32 = 0;
    try expectStatus(.ok, capi.spead_packet_gen_create(&table, 1, 40, 0, &cnt, 64, 0, &handle));
    try testing.expect(handle != 0);
    var out: [64]u8 = undefined;
    var len: u32 = 0;
    // 64-byte packets: the first carries one pointer and 16 bytes.
    try expectStatus(.buffer_too_small, capi.spead_packet_gen_next(handle, &out, 10, &len));
    try testing.expectEqual(@as(u32, 64), len);
    var total: u32 = 0;
    var packets: u32 = 0;
    while (packets < 100) : (packets += 1) {
        try expectStatus(.ok, capi.spead_packet_gen_next(handle, &out, out.len, &len));
        if (len == 0) break;
        total += len;
    }
    try testing.expectEqual(@as(u32, 5), packets);
    // 16 bytes in the first packet, then 24 per packet: 64, 64, 64, 64, 52.
    try testing.expectEqual(@as(u32, 4 * 64 + 52), total);
    try expectStatus(.ok, capi.spead_packet_gen_next(handle, &out, out.len, &len));
    try testing.expectEqual(@as(u32, 0), len);
    try expectStatus(.ok, capi.spead_packet_gen_destroy(handle));
    try expectStatus(.invalid_handle, capi.spead_packet_gen_destroy(handle));
    try expectStatus(.invalid_handle, capi.spead_packet_gen_next(handle, &out, out.len, &len));
    try expectStatus(.invalid_handle, capi.spead_packet_gen_next(0, &out, out.len, &len));
    try expectStatus(.invalid_argument, capi.spead_packet_gen_create(&table, 1, 40, 0, &cnt, 64, 0, null));
    try expectStatus(.packet_too_small, capi.spead_packet_gen_create(&table, 1, 40, 0, &cnt, 48, 0, &handle));
}

test "descriptor exports: V9 encode, decode, short buffers" {
    const name = "timestamp";
    const description = "Index of the first sample";
    const format = [_]u64{ 'u', 40 };
    const fields: DescriptorFields = .{
        .id = 0x1600,
        .name_address = @intFromPtr(name),
        .description_address = @intFromPtr(description),
        .format_address = @intFromPtr(&format),
        .shape_address = 0,
        .dtype_address = 0,
        .name_len = name.len,
        .description_len = description.len,
        .format_count = 1,
        .shape_count = 0,
        .dtype_len = 0,
        .heap_address_bits = 40,
        .bug_compat = 0,
        .reserved = 0,
    };
    var out: [200]u8 = undefined;
    var len: u32 = 0;
    try expectStatus(.ok, capi.spead_descriptor_encode(&fields, &out, out.len, &len));
    try testing.expectEqual(@as(u32, 118), len);
    try expectStatus(.buffer_too_small, capi.spead_descriptor_encode(&fields, &out, 100, &len));
    try testing.expectEqual(@as(u32, 118), len);
    var bad = fields;
    bad.name_address = 0;
    try expectStatus(.invalid_argument, capi.spead_descriptor_encode(&bad, &out, out.len, &len));
    bad = fields;
    bad.format_address = 0;
    try expectStatus(.invalid_argument, capi.spead_descriptor_encode(&bad, &out, out.len, &len));
    bad = fields;
    bad.id = 0;
    try expectStatus(.invalid_argument, capi.spead_descriptor_encode(&bad, &out, out.len, &len));
    bad = fields;
    bad.format_address += 4; // misaligned pairs
    try expectStatus(.invalid_argument, capi.spead_descriptor_encode(&bad, &out, out.len, &len));
    bad = fields;
    bad.heap_address_bits = 44;
    try expectStatus(.invalid_flavour, capi.spead_descriptor_encode(&bad, &out, out.len, &len));
    try expectStatus(.invalid_argument, capi.spead_descriptor_encode(null, &out, out.len, &len));

    var words: [32]u64 = undefined;
    var word_count: u32 = 0;
    try expectStatus(.ok, capi.spead_descriptor_decode(0, &out, 118, &words, words.len, &word_count));
    const decoded: *const descriptor.DescriptorDecoded = @ptrCast(&words);
    try testing.expectEqual(@as(u64, 0x1600), decoded.id);
    try testing.expectEqual(@as(u64, 1), decoded.format_count);
    try testing.expectEqual(@as(u64, 40), decoded.heap_address_bits);
    try testing.expectEqual(@as(u64, 'u'), words[descriptor.out_fixed_words]);
    try testing.expectEqual(@as(u64, 40), words[descriptor.out_fixed_words + 1]);
    const needed = word_count;
    try expectStatus(.buffer_too_small, capi.spead_descriptor_decode(0, &out, 118, &words, 4, &word_count));
    try testing.expectEqual(needed, word_count);
    try expectStatus(.malformed, capi.spead_descriptor_decode(0, &out, 117, &words, words.len, &word_count));
    try expectStatus(.malformed, capi.spead_descriptor_decode(0, null, 0, &words, words.len, &word_count));
    try expectStatus(.invalid_argument, capi.spead_descriptor_decode(0, null, 10, &words, words.len, &word_count));
    try expectStatus(.invalid_argument, capi.spead_descriptor_decode(0, &out, 118, null, 32, &word_count));
    try expectStatus(.invalid_argument, capi.spead_descriptor_decode(0, &out, 118, &words, words.len, null));
}
