//! `scripts/zig build gen`: writes ffi/abi.gen.ts and include/spead.h from the
//! export table (zig/abi/gen.zig does the work). Runs in the repository root.
const std = @import("std");
const gen = @import("abi/gen.zig");

pub fn main() !void {
    var arena = std.heap.ArenaAllocator.init(std.heap.page_allocator);
    defer arena.deinit();
    try gen.writeAll(arena.allocator(), std.fs.cwd());
}
