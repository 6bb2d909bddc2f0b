//! Fuzz tests of descriptor decoding (descriptor.zig `decode`, the value of an
//! item 0x05 as it arrives from the network).
//!
//! Input: a bug_compat byte (low 4 bits, so 8..15 test the refusal) and the
//! descriptor bytes. Properties: decoding never crashes; it either returns
//! `Malformed` / `InvalidFlavour`, or reports `BufferTooSmall` with a need
//! that then suffices, or writes a layout whose offsets and lengths stay inside
//! the words it reports; and a decoded descriptor that the encoder accepts
//! encodes and decodes back to the same words. The seed corpus is spead2's V5
//! and V9 vectors, descriptors encoded over every flavour and bug_compat, and
//! a descriptor spread over several packets.
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const testing = std.testing;
const fuzz = @import("../core/fuzz.zig");
const descriptor = @import("descriptor.zig");
const packetiser = @import("packetiser.zig");
const Flavour = @import("../core/flavour.zig").Flavour;

const out_words_max = 512;

const checkDescriptor = fuzz.leakChecked(decodeAndCheck);

fn decodeAndCheck(allocator: std.mem.Allocator, input: []const u8) anyerror!void {
    const bug_compat: u32 = if (input.len > 0) input[0] & 0x0f else 0;
    const bytes = if (input.len > 0) input[1..] else input;
    var out: [out_words_max]u64 = undefined;
    var needed: usize = 0;
    // A short buffer first: the need it reports must be enough.
    var small: [descriptor.out_fixed_words + 2]u64 = undefined;
    const words = descriptor.decode(allocator, bug_compat, bytes, &small, &needed) catch |err| switch (err) {
        error.Malformed, error.InvalidFlavour => {
            if (bug_compat > 7) try testing.expectEqual(error.InvalidFlavour, err);
            return;
        },
        error.BufferTooSmall => blk: {
            try testing.expect(needed > small.len);
            if (needed > out.len) return; // needs more than this check holds
            break :blk try descriptor.decode(allocator, bug_compat, bytes, &out, &needed);
        },
        else => return err,
    };
    const layout: []const u64 = if (words <= small.len) small[0..words] else out[0..words];
    try testing.expectEqual(needed, words);
    try testing.expect(bug_compat <= 7);
    try checkLayout(layout);
    try roundTrip(allocator, @intCast(bug_compat), layout);
}

/// Offsets and lengths of the decoded layout (docs/ABI.md) stay inside it.
fn checkLayout(layout: []const u64) !void {
    try testing.expect(layout.len >= descriptor.out_fixed_words);
    try testing.expect(layout[0] != 0);
    const field_count = layout[1] + layout[2];
    const fixed = descriptor.out_fixed_words + 2 * field_count;
    try testing.expect(fixed <= layout.len);
    const bytes = layout.len * 8;
    try testing.expectEqual(fixed * 8, layout[3]);
    try testing.expectEqual(layout[3] + layout[4], layout[5]);
    try testing.expectEqual(layout[5] + layout[6], layout[7]);
    const dtype_len = if (layout[8] == descriptor.dtype_absent) 0 else layout[8];
    try testing.expect(layout[7] + dtype_len <= bytes);
    try testing.expect(bytes - (layout[7] + dtype_len) < 8);
    const hab = layout[9];
    try testing.expect(hab >= 8 and hab <= 56 and hab % 8 == 0);
    for (0..@intCast(layout[2])) |i| {
        try testing.expect(layout[descriptor.out_fixed_words + 2 * @as(usize, @intCast(layout[1])) + 2 * i] <= descriptor.shape_flag_variable);
    }
}

/// A decoded descriptor that the encoder accepts comes back unchanged.
fn roundTrip(allocator: std.mem.Allocator, bug_compat: u8, layout: []const u64) !void {
    const flavour = try Flavour.init(4, 64, @intCast(layout[9]), bug_compat);
    const format_count: usize = @intCast(layout[1]);
    const shape_count: usize = @intCast(layout[2]);
    const format = try allocator.alloc([2]u64, format_count);
    defer allocator.free(format);
    const shape = try allocator.alloc([2]u64, shape_count);
    defer allocator.free(shape);
    for (format, 0..) |*field, i| field.* = .{ layout[descriptor.out_fixed_words + 2 * i], layout[descriptor.out_fixed_words + 2 * i + 1] };
    const shape_at = descriptor.out_fixed_words + 2 * format_count;
    for (shape, 0..) |*dim, i| dim.* = .{ layout[shape_at + 2 * i], layout[shape_at + 2 * i + 1] };
    const raw = std.mem.sliceAsBytes(layout);
    const dtype: []const u8 = if (layout[8] == descriptor.dtype_absent) "" else raw[@intCast(layout[7])..][0..@intCast(layout[8])];
    const fields: descriptor.Fields = .{
        .id = layout[0],
        .name = raw[@intCast(layout[3])..][0..@intCast(layout[4])],
        .description = raw[@intCast(layout[5])..][0..@intCast(layout[6])],
        .format = format,
        .shape = shape,
        .dtype = dtype,
    };
    descriptor.validate(flavour, fields) catch return;
    const encoded = try allocator.alloc(u8, @intCast(descriptor.encodedSize(flavour, fields)));
    defer allocator.free(encoded);
    const n = try descriptor.encode(flavour, fields, encoded);
    try testing.expectEqual(encoded.len, n);
    var again: [out_words_max]u64 = undefined;
    var needed: usize = 0;
    const words = try descriptor.decode(allocator, bug_compat, encoded, &again, &needed);
    try testing.expectEqualSlices(u64, layout, again[0..words]);
}

fn addWithCompat(corpus: *fuzz.Corpus, bug_compat: u8, bytes: []const u8) !void {
    const allocator = corpus.allocator();
    const input = try allocator.alloc(u8, bytes.len + 1);
    input[0] = bug_compat;
    @memcpy(input[1..], bytes);
    try corpus.addOwned(input);
}

fn descriptorCorpus(corpus: *fuzz.Corpus) !void {
    const v5 = descriptor.fromHex(descriptor.v5_hex);
    try addWithCompat(corpus, 0, v5[56..230]);
    const v9 = descriptor.fromHex(descriptor.v9_hex);
    try addWithCompat(corpus, 0, &v9);
    try addWithCompat(corpus, 8, &v9);
    var hab: u32 = 8;
    while (hab <= 56) : (hab += 8) {
        for ([_]u8{ 0, 1, 2, 7 }) |compat| {
            const f = try Flavour.init(4, 64, hab, compat);
            var buffer: [256]u8 = undefined;
            const n = try descriptor.encode(f, .{
                .id = @min(0x1234, f.idMask(), f.addressMask()),
                .name = "x",
                .description = "d",
                .format = &.{ .{ 'u', 8 }, .{ 'f', 32 } },
                .shape = &.{ .{ descriptor.shape_flag_variable, 0 }, .{ 0, 5 } },
                .dtype = if (hab >= 16) "{'descr': '<u2', 'fortran_order': False, 'shape': (5,)}" else "",
            }, &buffer);
            try addWithCompat(corpus, compat, buffer[0..n]);
        }
    }
    // One descriptor in several packets (no payload of its own per packet is
    // bigger than 40 bytes).
    const name = "timestamp";
    const dtype = "{'descr': '>u8', 'fortran_order': True, 'shape': (7, 2)}";
    const items = [_]packetiser.ItemRecord{
        .{ .id = protocol.id_descriptor_id, .value = 0x1600, .length = 0, .flags = packetiser.item_flag_immediate },
        .{ .id = protocol.id_descriptor_name, .value = @intFromPtr(name), .length = name.len, .flags = 0 },
        .{ .id = protocol.id_descriptor_dtype, .value = @intFromPtr(dtype), .length = dtype.len, .flags = 0 },
    };
    var gen = try packetiser.Packetiser.init(&items, try Flavour.init(4, 64, 40, 0), 1, 80, false);
    var buffer: [512]u8 = undefined;
    var at: usize = 0;
    while (gen.hasNext()) at += try gen.nextInto(buffer[at..]);
    try addWithCompat(corpus, 0, buffer[0..at]);
}

test "fuzz descriptor decode" {
    try fuzz.fuzzCorpus(checkDescriptor, descriptorCorpus);
}

test "descriptor decode: fixed-seed mutations of the seed corpus" {
    try fuzz.replayCorpus(checkDescriptor, descriptorCorpus);
}

test "the descriptor seeds decode and round-trip" {
    var corpus = fuzz.Corpus.init(testing.allocator);
    defer corpus.deinit();
    try descriptorCorpus(&corpus);
    for (corpus.inputs.items) |input| {
        if (input[0] > 7) continue;
        var out: [out_words_max]u64 = undefined;
        var needed: usize = 0;
        const words = try descriptor.decode(testing.allocator, input[0], input[1..], &out, &needed);
        try checkLayout(out[0..words]);
        try roundTrip(testing.allocator, input[0], out[0..words]);
    }
}
