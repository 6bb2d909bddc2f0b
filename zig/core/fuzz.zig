//! Shared pieces of the fuzz tests (zig/recv/recv_fuzz.zig,
//! zig/send/descriptor_fuzz.zig): a seed corpus owned by an arena, and a
//! fixed-seed byte mutator that replays mutated corpus inputs through the same
//! check function as `std.testing.fuzz`.
//!
//! `std.testing.fuzz` (Zig 0.14.1) runs the corpus inputs and an empty input
//! once in a plain `zig build test`; only `zig build test --fuzz` mutates them.
//! So that CI also sees mutated inputs, each fuzz target additionally runs
//! `replayMutations`: `SPEAD_FUZZ_MUTATIONS` inputs per corpus entry (default
//! `mutations_default`), derived from a fixed seed (`SPEAD_FUZZ_SEED` to change
//! it). A failing input is printed as hex so it can become a regression test.
const std = @import("std");

pub const mutations_default: usize = 200;
pub const seed_default: u64 = 0x5bead_f022;
/// Mutated inputs never grow beyond this (packets are at most 64 KiB).
pub const input_max: usize = 1 << 17;

/// Seed inputs; every byte slice is owned by the corpus.
pub const Corpus = struct {
    arena: std.heap.ArenaAllocator,
    inputs: std.ArrayListUnmanaged([]const u8) = .{},

    pub fn init(backing: std.mem.Allocator) Corpus {
        return .{ .arena = std.heap.ArenaAllocator.init(backing) };
    }

    pub fn deinit(self: *Corpus) void {
        self.arena.deinit();
        self.* = undefined;
    }

    pub fn allocator(self: *Corpus) std.mem.Allocator {
        return self.arena.allocator();
    }

    /// Adds a copy of `bytes`.
    pub fn add(self: *Corpus, bytes: []const u8) !void {
        const a = self.arena.allocator();
        try self.inputs.append(a, try a.dupe(u8, bytes));
    }

    /// Adds bytes the corpus allocator already owns.
    pub fn addOwned(self: *Corpus, bytes: []const u8) !void {
        try self.inputs.append(self.arena.allocator(), bytes);
    }

    pub fn options(self: *const Corpus) std.testing.FuzzInputOptions {
        return .{ .corpus = self.inputs.items };
    }
};

/// A leak-checking allocator for one fuzz input. `std.testing.allocator`
/// records a stack trace per allocation, which made it 90% of the run time.
pub const InputAllocator = std.heap.DebugAllocator(.{ .stack_trace_frames = 0 });

fn envUnsigned(name: []const u8, default: u64) u64 {
    const text = std.process.getEnvVarOwned(std.heap.page_allocator, name) catch return default;
    defer std.heap.page_allocator.free(text);
    return std.fmt.parseInt(u64, text, 0) catch default;
}

const interesting_bytes = [_]u8{ 0x00, 0x01, 0x7f, 0x80, 0xff, 0x53, 0x04, 0x08 };
const interesting_words = [_]u64{
    0,                     1,                     7,                     8,
    0xffff,                0x1_0000,              1 << 32,               (1 << 40) - 1,
    1 << 40,               (1 << 48) - 1,         (1 << 56) - 1,         1 << 63,
    0x8000_0000_0000_0000, 0xffff_ffff_ffff_ffff, 0x7fff_ffff_ffff_ffff, 0x5304_0206_0000_0005,
};

/// Writes a mutation of `input` into `out` (at least `input_max` bytes) and
/// returns it: 1 to 4 of bit flips, interesting bytes, big-endian words set
/// to edge values or nudged (offsets, lengths, counts), truncation, erased
/// ranges and duplicated ranges.
pub fn mutate(random: std.Random, input: []const u8, out: []u8) []u8 {
    std.debug.assert(out.len >= input_max);
    var len: usize = @min(input.len, input_max);
    @memcpy(out[0..len], input[0..len]);
    var steps = 1 + random.uintLessThan(usize, 4);
    while (steps > 0) : (steps -= 1) {
        switch (random.uintLessThan(u8, 8)) {
            0 => if (len > 0) {
                out[random.uintLessThan(usize, len)] ^= @as(u8, 1) << random.int(u3);
            },
            1 => if (len > 0) {
                out[random.uintLessThan(usize, len)] = interesting_bytes[random.uintLessThan(usize, interesting_bytes.len)];
            },
            2, 3 => if (len >= 8) {
                // Aligned words hit pointer fields of the first packet most often.
                const at = if (random.boolean()) random.uintLessThan(usize, len / 8) * 8 else random.uintLessThan(usize, len - 7);
                const word = out[at..][0..8];
                const old = std.mem.readInt(u64, word, .big);
                const new = if (random.boolean())
                    (old & 0xffff_0000_0000_0000) | (interesting_words[random.uintLessThan(usize, interesting_words.len)] & 0x0000_ffff_ffff_ffff)
                else
                    old +% (random.intRangeAtMost(u64, 0, 16) -% 8);
                std.mem.writeInt(u64, word, new, .big);
            },
            4 => if (len > 0) {
                len = random.uintLessThan(usize, len);
            },
            5 => if (len > 1) {
                const start = random.uintLessThan(usize, len);
                const n = random.uintLessThan(usize, len - start) + 1;
                std.mem.copyForwards(u8, out[start .. len - n], out[start + n .. len]);
                len -= n;
            },
            6, 7 => if (len > 0 and len < input_max) {
                // Duplicate a range (up to a whole packet) somewhere else.
                var range: [2048]u8 = undefined;
                const start = random.uintLessThan(usize, len);
                const n = @min(random.uintLessThan(usize, len - start) + 1, range.len, input_max - len);
                @memcpy(range[0..n], out[start..][0..n]);
                const at = random.uintLessThan(usize, len + 1);
                std.mem.copyBackwards(u8, out[at + n .. len + n], out[at..len]);
                @memcpy(out[at..][0..n], range[0..n]);
                len += n;
            },
            else => unreachable,
        }
    }
    return out[0..len];
}

/// Mutations per corpus input in `replayMutations`.
pub fn mutationRounds() u64 {
    return envUnsigned("SPEAD_FUZZ_MUTATIONS", mutations_default);
}

/// Runs `testOne` on `SPEAD_FUZZ_MUTATIONS` fixed-seed mutations of every
/// corpus input. Returns the number of inputs run.
pub fn replayMutations(
    context: anytype,
    comptime testOne: fn (context: @TypeOf(context), input: []const u8) anyerror!void,
    corpus: []const []const u8,
) !u64 {
    const rounds = mutationRounds();
    const seed = envUnsigned("SPEAD_FUZZ_SEED", seed_default);
    var prng = std.Random.DefaultPrng.init(seed);
    const random = prng.random();
    const buffer = try std.testing.allocator.alloc(u8, input_max);
    defer std.testing.allocator.free(buffer);
    var runs: u64 = 0;
    for (corpus) |input| {
        var round: u64 = 0;
        while (round < rounds) : (round += 1) {
            // Mutations of mutations reach further from the seed.
            var current = mutate(random, input, buffer);
            if (random.uintLessThan(u8, 4) == 0) {
                const copy = try std.testing.allocator.dupe(u8, current);
                defer std.testing.allocator.free(copy);
                current = mutate(random, copy, buffer);
            }
            testOne(context, current) catch |err| {
                std.debug.print("fuzz: input {d} of seed {x} failed ({s}): {x}\n", .{ runs, seed, @errorName(err), current });
                return err;
            };
            runs += 1;
        }
    }
    return runs;
}

/// A check function for `std.testing.fuzz` that gives `check` a fresh
/// leak-checking allocator and fails the input if anything leaked.
pub fn leakChecked(
    comptime check: fn (allocator: std.mem.Allocator, input: []const u8) anyerror!void,
) fn (void, []const u8) anyerror!void {
    return struct {
        fn one(_: void, input: []const u8) anyerror!void {
            var input_allocator: InputAllocator = .init;
            const result = check(input_allocator.allocator(), input);
            if (input_allocator.deinit() == .leak) return error.MemoryLeakDetected;
            return result;
        }
    }.one;
}

fn seeded(comptime build: fn (*Corpus) anyerror!void) !Corpus {
    var corpus = Corpus.init(std.testing.allocator);
    errdefer corpus.deinit();
    try build(&corpus);
    return corpus;
}

/// The body of a fuzz test: `std.testing.fuzz` over the seed corpus that
/// `build` makes (coverage-guided with `zig build test --fuzz`).
pub fn fuzzCorpus(
    comptime testOne: fn (void, []const u8) anyerror!void,
    comptime build: fn (*Corpus) anyerror!void,
) !void {
    var corpus = try seeded(build);
    defer corpus.deinit();
    try std.testing.fuzz({}, testOne, corpus.options());
}

/// The body of a fuzz target's CI test: fixed-seed mutations of its corpus.
pub fn replayCorpus(
    comptime testOne: fn (void, []const u8) anyerror!void,
    comptime build: fn (*Corpus) anyerror!void,
) !void {
    var corpus = try seeded(build);
    defer corpus.deinit();
    const runs = try replayMutations({}, testOne, corpus.inputs.items);
    try std.testing.expectEqual(mutationRounds() * corpus.inputs.items.len, runs);
}

test "mutate stays within bounds and changes inputs" {
    var prng = std.Random.DefaultPrng.init(1);
    const random = prng.random();
    const buffer = try std.testing.allocator.alloc(u8, input_max);
    defer std.testing.allocator.free(buffer);
    const input = "0123456789abcdefghijklmnopqrstuvwxyz";
    var changed: usize = 0;
    for (0..2000) |_| {
        const out = mutate(random, input, buffer);
        try std.testing.expect(out.len <= input_max);
        changed += @intFromBool(!std.mem.eql(u8, out, input));
    }
    try std.testing.expect(changed > 1800);
    try std.testing.expectEqual(@as(usize, 0), mutate(random, "", buffer).len);
}
