//! Fuzz tests of the receive path: packet decoding (packet.zig) and
//! reassembly of packet sequences into heaps (reassembly.zig).
//!
//! `zig build test --fuzz` mutates the seed corpus under coverage guidance;
//! a plain `zig build test` runs the seed corpus and fixed-seed mutations of
//! it (zig/core/fuzz.zig). The seed corpus is every packet of heaps made by the
//! send packetiser (zig/send/packetiser.zig) over several flavours, unsized
//! and stop heaps, and edge cases. Properties: decoding and reassembly never
//! crash (a safety check or assertion failure is a crash), every packet is
//! either accepted or counted under one reject reason, every heap handed out
//! is accounted for, a completed heap holds exactly its declared length, item
//! ranges lie inside the payload, and nothing leaks (a leak-checking allocator per input).
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const testing = std.testing;
const fuzz = @import("../core/fuzz.zig");
const packet_mod = @import("packet.zig");
const reassembly = @import("reassembly.zig");
const packetiser = @import("../send/packetiser.zig");
const descriptor = @import("../send/descriptor.zig");
const Flavour = @import("../core/flavour.zig").Flavour;

// ---------------------------------------------------------------------------
// Seed heaps

const ItemRecord = packetiser.ItemRecord;

const immediate = packetiser.immediate;
const addressed = packetiser.addressed;

/// The packets of one heap, each a separate slice owned by `allocator`.
fn encodeHeap(
    allocator: std.mem.Allocator,
    items: []const ItemRecord,
    hab: u32,
    cnt: u64,
    packet_size_max: u64,
    repeat: bool,
) ![]const []const u8 {
    const flavour = try Flavour.init(4, 64, hab, 0);
    var gen = try packetiser.Packetiser.init(items, flavour, cnt, packet_size_max, repeat);
    var packets: std.ArrayListUnmanaged([]const u8) = .{};
    while (gen.hasNext()) {
        const buffer = try allocator.alloc(u8, @intCast(gen.nextSize()));
        _ = try gen.nextInto(buffer);
        try packets.append(allocator, buffer);
    }
    return packets.toOwnedSlice(allocator);
}

const data_200 = blk: {
    var bytes: [200]u8 = undefined;
    for (&bytes, 0..) |*b, i| b.* = @truncate(i *% 37 +% 11);
    break :blk bytes;
};

/// Heaps the seed corpus is built from: several flavours and packet sizes,
/// immediates, multi-packet payloads, stream control, repeat_pointers and a
/// descriptor item.
fn seedHeaps(allocator: std.mem.Allocator) ![]const []const []const u8 {
    var heaps: std.ArrayListUnmanaged([]const []const u8) = .{};
    // spead2's V1: an empty heap (one NULL pointer and a padding byte).
    try heaps.append(allocator, try encodeHeap(allocator, &.{}, 48, 0x123456, 1500, false));
    try heaps.append(allocator, try encodeHeap(allocator, &.{
        immediate(0x1000, 5), immediate(0x1001, 0x12345), addressed(0x1002, &data_200), addressed(0x1003, "xyz"),
    }, 40, 2, 88, false));
    try heaps.append(allocator, try encodeHeap(allocator, &.{immediate(protocol.id_stream_ctrl, protocol.ctrl_stream_stop)}, 48, 3, 1500, false));
    try heaps.append(allocator, try encodeHeap(allocator, &.{
        immediate(protocol.id_stream_ctrl, protocol.ctrl_stream_start), addressed(0x2000, data_200[0..10]),
    }, 48, 4, 1500, false));
    try heaps.append(allocator, try encodeHeap(allocator, &.{
        immediate(0x1000, 1), addressed(0x1001, data_200[0..100]),
    }, 40, 5, 72, true));
    try heaps.append(allocator, try encodeHeap(allocator, &.{addressed(0x20, data_200[0..20])}, 16, 6, 56, false));
    try heaps.append(allocator, try encodeHeap(allocator, &.{addressed(0x20, data_200[0..64])}, 56, 7, 64, false));
    var desc_buffer: [256]u8 = undefined;
    const desc_len = try descriptor.encode(try Flavour.init(4, 64, 40, 0), .{
        .id = 0x1600,
        .name = "timestamp",
        .description = "sample index",
        .format = &.{},
        .shape = &.{.{ 0, 3 }},
        .dtype = "{'descr': '>u8', 'fortran_order': False, 'shape': (3,)}",
    }, &desc_buffer);
    const desc = try allocator.dupe(u8, desc_buffer[0..desc_len]);
    try heaps.append(allocator, try encodeHeap(allocator, &.{addressed(protocol.id_descriptor, desc)}, 40, 8, 1500, false));
    // An unsized heap (no HEAP_LENGTH) in three packets, the second one also
    // carrying an item pointer.
    var unsized: std.ArrayListUnmanaged([]const u8) = .{};
    for (0..3) |i| {
        var buffer: [256]u8 = undefined;
        const offset: u64 = i * 30;
        const bytes = packet_mod.buildTestPacket(&buffer, 40, if (i == 1)
            &.{ packet_mod.imm(1, 9), packet_mod.imm(3, offset), packet_mod.imm(4, 30), packet_mod.addr(0x1000, 0) }
        else
            &.{ packet_mod.imm(1, 9), packet_mod.imm(3, offset), packet_mod.imm(4, 30) }, data_200[offset..][0..30]);
        try unsized.append(allocator, try allocator.dupe(u8, bytes));
    }
    try heaps.append(allocator, try unsized.toOwnedSlice(allocator));
    return heaps.toOwnedSlice(allocator);
}

// ---------------------------------------------------------------------------
// Packet decoding

fn withinInput(input: []const u8, part: []const u8) bool {
    if (part.len == 0) return true;
    const start = @intFromPtr(input.ptr);
    const p = @intFromPtr(part.ptr);
    return p >= start and p + part.len <= start + input.len;
}

fn checkPacket(_: void, input: []const u8) anyerror!void {
    switch (packet_mod.decode(input)) {
        .ok => |p| {
            try testing.expect(p.heap_address_bits >= 8 and p.heap_address_bits <= 56 and p.heap_address_bits % 8 == 0);
            const item_count = std.mem.readInt(u16, input[6..8], .big);
            try testing.expectEqual(protocol.header_size + @as(usize, item_count) * protocol.pointer_size + p.payload.len, p.size);
            try testing.expect(p.size <= input.len);
            try testing.expectEqual(p.payload_length, p.payload.len);
            try testing.expect(p.pointers.len % protocol.pointer_size == 0);
            try testing.expect(withinInput(input, p.pointers) and withinInput(input, p.payload));
            if (p.heap_length) |length| try testing.expect(p.payload_offset + p.payload_length <= length);
            for (0..p.pointerCount()) |i| {
                const word = p.pointer(i);
                try testing.expect(packet_mod.pointerValue(p.heap_address_bits, word) >> @intCast(p.heap_address_bits) == 0);
            }
            // Framing agrees with decoding; bytes after the packet do not matter.
            try testing.expectEqual(packet_mod.PacketSize{ .size = p.size }, packet_mod.getPacketSize(input));
            const again = packet_mod.decode(input[0..p.size]).ok;
            try testing.expectEqual(p.heap_cnt, again.heap_cnt);
            try testing.expectEqual(p.payload_offset, again.payload_offset);
            // Any shorter prefix is truncated.
            try testing.expectEqual(packet_mod.Reject.truncated, packet_mod.decode(input[0 .. p.size - 1]).rejected);
        },
        .rejected => |reason| switch (reason) {
            .bad_magic, .bad_flavour => try testing.expectEqual(packet_mod.PacketSize.invalid, packet_mod.getPacketSize(input)),
            .truncated => if (input.len >= protocol.header_size) switch (packet_mod.getPacketSize(input)) {
                .size => |size| try testing.expect(size > input.len),
                .incomplete => {},
                // PAYLOAD_LENGTH absent, pointer table complete: not a truncation.
                .invalid => return error.TestUnexpectedResult,
            },
            .missing_items, .heap_length_overflow => try testing.expect(input.len >= protocol.header_size),
        },
    }
}

fn packetCorpus(corpus: *fuzz.Corpus) !void {
    const allocator = corpus.allocator();
    for (try seedHeaps(allocator)) |heap| {
        for (heap) |p| try corpus.addOwned(p);
    }
    var buffer: [256]u8 = undefined;
    // Edge cases: a header alone, the most pointers a header can announce, a
    // payload length beyond any buffer, specials out of order, every flavour.
    try corpus.add(packet_mod.buildTestPacket(&buffer, 40, &.{}, ""));
    var many = buffer;
    std.mem.writeInt(u64, many[0..8], 0x5304_0305_0000_ffff, .big);
    try corpus.add(many[0..64]);
    try corpus.add(packet_mod.buildTestPacket(&buffer, 56, &.{
        packet_mod.imm(1, 1), packet_mod.imm(3, 0), packet_mod.imm(4, (1 << 56) - 1),
    }, ""));
    try corpus.add(packet_mod.buildTestPacket(&buffer, 40, &.{
        packet_mod.imm(4, 3), packet_mod.addr(0x1000, 0), packet_mod.imm(1, 7), packet_mod.imm(3, 0), packet_mod.imm(2, 3),
    }, "abc"));
    var hab: u8 = 8;
    while (hab <= 56) : (hab += 8) {
        try corpus.add(packet_mod.buildTestPacket(&buffer, hab, &.{
            packet_mod.imm(1, 5), packet_mod.imm(2, 2), packet_mod.imm(3, 0), packet_mod.imm(4, 2),
        }, "hi"));
    }
}

test "fuzz packet decode" {
    try fuzz.fuzzCorpus(checkPacket, packetCorpus);
}

test "packet decode: fixed-seed mutations of the seed corpus" {
    try fuzz.replayCorpus(checkPacket, packetCorpus);
}

// ---------------------------------------------------------------------------
// Reassembly

/// Input layout: a config byte, an allocation-failure byte, then records of a
/// little-endian u16 length and that many packet bytes (the last record may
/// be cut short).
const ReassemblyInput = struct {
    config: reassembly.Config,
    /// Non-zero: allocations (bookkeeping and payload) fail from this one on.
    fail_index: u8,
    records: []const u8,

    fn parse(input: []const u8) ReassemblyInput {
        const c: u8 = if (input.len > 0) input[0] else 0;
        return .{
            .config = .{
                .heaps_max = 1 + @as(u32, c & 3),
                .allow_out_of_order = c & 4 != 0,
                .allow_unsized_heaps = c & 8 == 0,
                .stop_on_stop_item = c & 16 == 0,
                .substreams = 1 + @as(u32, (c >> 5) & 3),
                .bug_compat = c >> 7,
                // Bounded so a forged length cannot make the fuzzer allocate much.
                .heap_length_max = 1 << 14,
                .pointers_max = 512,
            },
            .fail_index = if (input.len > 1) input[1] else 0,
            .records = if (input.len > 2) input[2..] else &.{},
        };
    }
};

const Checker = struct {
    /// For frozen heaps (never failing).
    allocator: std.mem.Allocator,
    payload_allocator: reassembly.PayloadAllocator,
    delivered: u64 = 0,
    failure: ?anyerror = null,

    fn sink(self: *Checker) reassembly.Sink {
        return .{ .ctx = self, .ready = ready };
    }

    fn ready(ctx: *anyopaque, heap: *reassembly.LiveHeap) void {
        const self: *Checker = @ptrCast(@alignCast(ctx));
        self.delivered += 1;
        self.check(heap) catch |err| {
            if (self.failure == null) self.failure = err;
        };
    }

    fn check(self: *Checker, heap: *reassembly.LiveHeap) !void {
        try testing.expect(heap.received_length <= heap.length_min);
        try testing.expect(heap.received_length <= heap.payload_reserved);
        if (heap.heap_length) |length| try testing.expect(heap.received_length <= length);
        // Freezing takes the payload; bookkeeping memory never fails here.
        const frozen = try reassembly.freeze(self.allocator, heap, self.payload_allocator);
        defer frozen.deinit();
        try testing.expect(frozen.payload_size <= frozen.payload.len);
        if (frozen.complete) {
            try testing.expect(frozen.contiguous);
            try testing.expectEqual(frozen.heap_length.?, frozen.payload_size);
            try testing.expectEqual(frozen.heap_length.?, frozen.received_length);
        }
        if (!frozen.contiguous) try testing.expectEqual(@as(u64, 0), frozen.payload_size);
        for (frozen.items) |item| {
            if (item.is_immediate) {
                try testing.expectEqual(@as(u64, frozen.heap_address_bits / 8), item.length);
                continue;
            }
            try testing.expect(frozen.contiguous);
            try testing.expect(item.length > 0);
            try testing.expect(item.value + item.length <= frozen.payload_size);
            _ = frozen.itemBytes(item);
        }
        var words: [9 + 4 * 64]u64 = undefined;
        if (frozen.describeWords() <= words.len) frozen.describe(&words);
    }
};

const checkReassembly = fuzz.leakChecked(reassemble);

fn reassemble(backing: std.mem.Allocator, input: []const u8) anyerror!void {
    const parsed = ReassemblyInput.parse(input);
    var failing = testing.FailingAllocator.init(backing, .{
        .fail_index = if (parsed.fail_index == 0) std.math.maxInt(usize) else parsed.fail_index,
    });
    const allocator = failing.allocator();
    var payload_backing: reassembly.DefaultPayloadAllocator = .{ .backing = allocator };
    const payload_allocator = payload_backing.payloadAllocator();
    var table = reassembly.Table.init(allocator, payload_allocator, parsed.config) catch |err| {
        try testing.expectEqual(error.OutOfMemory, err);
        try testing.expect(parsed.fail_index != 0);
        return;
    };
    defer table.deinit();
    var checker: Checker = .{ .allocator = backing, .payload_allocator = payload_allocator };
    var batch: reassembly.Batch = .{};
    var accepted: u64 = 0;
    var undecodable: u64 = 0;
    var records = parsed.records;
    while (records.len >= 2 and !batch.stop) {
        const len = @min(std.mem.readInt(u16, records[0..2], .little), records.len - 2);
        const bytes = records[2..][0..len];
        records = records[2 + len ..];
        switch (packet_mod.decode(bytes)) {
            .ok => |p| accepted += @intFromBool(table.addPacket(p, &batch, checker.sink())),
            .rejected => undecodable += 1,
        }
        try testing.expect(table.liveCount() <= parsed.config.heaps_max * parsed.config.substreams);
        if (checker.failure) |err| return err;
    }
    const flushed = table.flush(checker.sink());
    if (checker.failure) |err| return err;
    try testing.expectEqual(@as(usize, 0), table.liveCount());
    var rejected: u64 = 0;
    for (batch.rejected) |n| rejected += n;
    try testing.expectEqual(batch.packets, accepted + rejected);
    try testing.expectEqual(checker.delivered, batch.complete_heaps + batch.incomplete_heaps_evicted + flushed);
    if (parsed.fail_index == 0) {
        try testing.expectEqual(@as(u64, 0), batch.rejected[@intFromEnum(reassembly.Reject.out_of_memory)]);
    }
}

/// Appends a reassembly input: config, fail index, then the packets as records.
fn addSequence(corpus: *fuzz.Corpus, config: u8, fail_index: u8, packets: []const []const u8) !void {
    const allocator = corpus.allocator();
    var bytes: std.ArrayListUnmanaged(u8) = .{};
    try bytes.appendSlice(allocator, &.{ config, fail_index });
    for (packets) |p| {
        var len: [2]u8 = undefined;
        std.mem.writeInt(u16, &len, @intCast(p.len), .little);
        try bytes.appendSlice(allocator, &len);
        try bytes.appendSlice(allocator, p);
    }
    try corpus.addOwned(try bytes.toOwnedSlice(allocator));
}

const config_out_of_order: u8 = 4;
const config_sized_only: u8 = 8;
const config_deliver_stop: u8 = 16;

fn reassemblyCorpus(corpus: *fuzz.Corpus) !void {
    const allocator = corpus.allocator();
    const heaps = try seedHeaps(allocator);
    for (heaps) |heap| {
        try addSequence(corpus, 0, 0, heap);
        try addSequence(corpus, config_out_of_order | config_deliver_stop, 0, heap);
    }
    const big = heaps[1]; // 64-40, several packets
    try testing.expect(big.len >= 4);
    const reversed = try allocator.dupe([]const u8, big);
    std.mem.reverse([]const u8, reversed);
    try addSequence(corpus, config_out_of_order, 0, reversed);
    try addSequence(corpus, 0, 0, reversed);
    // A duplicated packet, and two heaps interleaved.
    try addSequence(corpus, config_out_of_order, 0, &.{ big[0], big[1], big[1], big[2], big[0], big[3] });
    var interleaved: std.ArrayListUnmanaged([]const u8) = .{};
    for (big, 0..) |p, i| {
        try interleaved.append(allocator, p);
        if (i < heaps[3].len) try interleaved.append(allocator, heaps[3][i]);
        if (i < heaps[5].len) try interleaved.append(allocator, heaps[5][i]);
    }
    try addSequence(corpus, 0, 0, interleaved.items);
    // One slot per substream, three substreams.
    try addSequence(corpus, (2 << 5) | 0, 0, interleaved.items);
    // A stop heap in the middle of another heap.
    try addSequence(corpus, 0, 0, &.{ big[0], big[1], heaps[2][0], big[2] });
    // Unsized heaps refused.
    try addSequence(corpus, config_sized_only, 0, heaps[heaps.len - 1]);
    // Allocation failures at the first few allocations.
    for (1..6) |fail| try addSequence(corpus, config_out_of_order, @intCast(fail), big);
}

test "fuzz reassembly" {
    try fuzz.fuzzCorpus(checkReassembly, reassemblyCorpus);
}

test "reassembly: fixed-seed mutations of the seed corpus" {
    try fuzz.replayCorpus(checkReassembly, reassemblyCorpus);
}

test "the seed heaps reassemble into complete heaps" {
    // The corpus is only useful if its unmutated sequences exercise the
    // success path: every sized seed heap completes with its declared length.
    var arena = std.heap.ArenaAllocator.init(testing.allocator);
    defer arena.deinit();
    const heaps = try seedHeaps(arena.allocator());
    var payload_backing: reassembly.DefaultPayloadAllocator = .{ .backing = testing.allocator };
    for (heaps[0 .. heaps.len - 1]) |heap| {
        var table = try reassembly.Table.init(testing.allocator, payload_backing.payloadAllocator(), .{ .stop_on_stop_item = false });
        defer table.deinit();
        var checker: Checker = .{ .allocator = testing.allocator, .payload_allocator = payload_backing.payloadAllocator() };
        var batch: reassembly.Batch = .{};
        for (heap) |p| try testing.expect(table.addPacket(packet_mod.decode(p).ok, &batch, checker.sink()));
        if (checker.failure) |err| return err;
        try testing.expectEqual(@as(u64, 1), batch.complete_heaps);
        try testing.expectEqual(@as(u64, 1), checker.delivered);
    }
}
