//! The last failed system call of the calling thread: its errno and what it
//! was doing ("bind 127.0.0.1:8888"). Code that turns a failed call into
//! `error.SystemError` records it here first; the export `spead_last_error`
//! (zig/abi/diag.zig) lets TS name the errno and the operation in its
//! SpeadError, as Node and Bun errors do (`EADDRINUSE: bind 127.0.0.1:8888`).
//!
//! Thread-local: the FFI call that failed and the read of the record run on
//! the same JS thread, and native I/O threads never overwrite that thread's
//! record.
const std = @import("std");
const posix = std.posix;
const linux = std.os.linux;
const status = @import("status.zig");

/// Longest operation text kept (an IPv6 literal with scope and port fits).
pub const text_len_max = 96;

const Record = struct {
    errno: u16 = 0,
    len: u8 = 0,
    text: [text_len_max]u8 = undefined,
};

threadlocal var last: Record = .{};

/// Records a failed call and returns `error.SystemError`. `op` is the call
/// ("bind"), `address` the endpoint it concerned, if any.
pub fn fail(errno: linux.E, op: []const u8, address: ?std.net.Address) status.Error {
    var record: Record = .{ .errno = @intFromEnum(errno) };
    var stream = std.io.fixedBufferStream(&record.text);
    const w = stream.writer();
    w.writeAll(op) catch {};
    if (address) |a| w.print(" {}", .{a}) catch {};
    record.len = @intCast(stream.pos);
    last = record;
    return error.SystemError;
}

/// Checks the raw result of a system call; records and fails on error.
pub fn check(rc: usize, op: []const u8, address: ?std.net.Address) status.Error!void {
    const e = linux.E.init(rc);
    if (e != .SUCCESS) return fail(e, op, address);
}

/// Clears the record (before an operation whose failure should not report a stale one).
pub fn clear() void {
    last = .{};
}

/// The errno of the last recorded failure (0 if none) and its text.
pub fn get() struct { errno: u16, text: []const u8 } {
    return .{ .errno = last.errno, .text = last.text[0..last.len] };
}

/// The symbolic name of an errno ("EADDRINUSE"), or null for an unknown number.
pub fn errnoName(errno: u32) ?[]const u8 {
    if (errno == 0) return null;
    inline for (errno_names) |entry| {
        if (entry.value == errno) return entry.name;
    }
    return null;
}

const NameEntry = struct { value: u32, name: []const u8 };
const errno_names = blk: {
    const fields = @typeInfo(linux.E).@"enum".fields;
    var out: [fields.len]NameEntry = undefined;
    for (fields, 0..) |f, i| out[i] = .{ .value = f.value, .name = "E" ++ f.name };
    break :blk out;
};

// Socket calls with errno kept (std.posix maps errno to error names and loses it).

pub fn socket(family: u32, kind: u32, protocol: u32) status.Error!posix.socket_t {
    const rc = linux.socket(family, kind, protocol);
    try check(rc, "socket", null);
    return @intCast(rc);
}

pub fn bind(fd: posix.socket_t, address: std.net.Address) status.Error!void {
    try check(linux.bind(fd, &address.any, address.getOsSockLen()), "bind", address);
}

pub fn setsockopt(fd: posix.socket_t, level: i32, name: u32, value: []const u8, what: []const u8) status.Error!void {
    try check(linux.setsockopt(fd, level, name, value.ptr, @intCast(value.len)), what, null);
}

const testing = std.testing;

test "a failed bind records EADDRINUSE with the address" {
    clear();
    const a = try socket(posix.AF.INET, posix.SOCK.DGRAM | posix.SOCK.CLOEXEC, posix.IPPROTO.UDP);
    defer posix.close(a);
    try bind(a, try std.net.Address.parseIp("127.0.0.1", 0));
    var bound: std.net.Address = undefined;
    var len: posix.socklen_t = @sizeOf(std.net.Address);
    try posix.getsockname(a, &bound.any, &len);
    const b = try socket(posix.AF.INET, posix.SOCK.DGRAM | posix.SOCK.CLOEXEC, posix.IPPROTO.UDP);
    defer posix.close(b);
    try testing.expectError(error.SystemError, bind(b, bound));
    const rec = get();
    try testing.expectEqual(@as(u16, @intFromEnum(linux.E.ADDRINUSE)), rec.errno);
    var expect_buf: [64]u8 = undefined;
    const expect = try std.fmt.bufPrint(&expect_buf, "bind 127.0.0.1:{d}", .{bound.getPort()});
    try testing.expectEqualStrings(expect, rec.text);
    try testing.expectEqualStrings("EADDRINUSE", errnoName(rec.errno).?);
}

test "errno names" {
    try testing.expectEqualStrings("EMSGSIZE", errnoName(@intFromEnum(linux.E.MSGSIZE)).?);
    try testing.expectEqualStrings("EADDRNOTAVAIL", errnoName(@intFromEnum(linux.E.ADDRNOTAVAIL)).?);
    try testing.expect(errnoName(0) == null);
    try testing.expect(errnoName(60000) == null);
    try testing.expect(errnoName(1 << 20) == null);
}

test "long texts are cut, not overflowed" {
    clear();
    const long = "x" ** 200;
    try testing.expectEqual(error.SystemError, fail(.PERM, long, null));
    try testing.expectEqual(@as(usize, text_len_max), get().text.len);
}
