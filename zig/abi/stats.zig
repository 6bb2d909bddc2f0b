//! The two stats exports every counting noun has (docs/ABI.md): the values
//! of one object by handle, in a fixed order, and the name of each index, so
//! that callers never hard-code the order. `Stats(names, read)` writes both
//! from the noun's list of names and a function that reads one object's values.
const std = @import("std");
const assert = std.debug.assert;
const Error = @import("../core/status.zig").Error;

/// `values` and `name` exports over `names` (an array of strings, e.g.
/// `std.meta.fieldNames` of a `Stat` enum) and `read` (which looks up the
/// object of `handle`, or fails with its status, and writes every value).
pub fn Stats(comptime names: anytype, comptime read: fn (handle: u32, values: *[names.len]u64) Error!void) type {
    comptime assert(names.len > 0);
    return struct {
        pub const count: u32 = names.len;

        /// Writes the values; `out_count` = the count always (once the handle
        /// is found), `buffer_too_small` when `capacity` is less.
        pub fn values(handle: u32, out: ?[*]u64, capacity: u32, out_count: ?*u32) Error!void {
            const count_out = out_count orelse return error.InvalidArgument;
            var read_values: [names.len]u64 = undefined;
            try read(handle, &read_values);
            count_out.* = count;
            if (capacity < count) return error.BufferTooSmall;
            const dest = out orelse return error.InvalidArgument;
            @memcpy(dest[0..count], &read_values);
        }

        /// The name of stat `index`; `buffer_too_small` writes its length.
        pub fn name(index: u32, out: ?[*]u8, capacity: u32, out_len: ?*u32) Error!void {
            const len_out = out_len orelse return error.InvalidArgument;
            if (index >= count) return error.InvalidArgument;
            const text = names[index];
            len_out.* = @intCast(text.len);
            if (capacity < text.len) return error.BufferTooSmall;
            const dest = out orelse return error.InvalidArgument;
            @memcpy(dest[0..text.len], text);
        }
    };
}

test "values and names: counts, short buffers, bad handles" {
    const Counter = struct {
        fn read(handle: u32, values: *[2]u64) Error!void {
            if (handle != 7) return error.InvalidHandle;
            values.* = .{ 11, 22 };
        }
    };
    const S = Stats(std.meta.fieldNames(enum { heaps, packets }), Counter.read);
    var out: [2]u64 = undefined;
    var n: u32 = 0;
    try std.testing.expectError(error.InvalidHandle, S.values(1, &out, 2, &n));
    try std.testing.expectError(error.BufferTooSmall, S.values(7, &out, 1, &n));
    try std.testing.expectEqual(@as(u32, 2), n);
    try std.testing.expectError(error.InvalidArgument, S.values(7, null, 2, &n));
    try S.values(7, &out, 2, &n);
    try std.testing.expectEqualSlices(u64, &.{ 11, 22 }, &out);
    var text: [8]u8 = undefined;
    var len: u32 = 0;
    try S.name(1, &text, text.len, &len);
    try std.testing.expectEqualStrings("packets", text[0..len]);
    try std.testing.expectError(error.BufferTooSmall, S.name(1, &text, 3, &len));
    try std.testing.expectEqual(@as(u32, 7), len);
    try std.testing.expectError(error.InvalidArgument, S.name(2, &text, text.len, &len));
}
