//! Process diagnostics for tests and benchmarks: page faults (getrusage), open
//! file descriptors and threads. Read natively so that Deno needs no access to
//! /proc (it asks for --allow-all there).
const std = @import("std");
const status = @import("../core/status.zig");
const ProcessCounters = @import("records.zig").ProcessCounters;

/// Counts the entries of a /proc directory; null if it cannot be read.
fn countDir(path: []const u8) ?u64 {
    var dir = std.fs.openDirAbsolute(path, .{ .iterate = true }) catch return null;
    defer dir.close();
    var it = dir.iterate();
    var n: u64 = 0;
    while (it.next() catch return null) |_| {
        n += 1;
        if (n > 1 << 24) break; // bounded: no process has this many
    }
    return n;
}

/// Writes the minor and major faults, open fds and threads (2^64-1 where unknown).
pub fn processStats(out: ?*ProcessCounters) status.Error!void {
    const dst = out orelse return error.InvalidArgument;
    const usage = std.posix.getrusage(std.posix.rusage.SELF);
    dst.* = .{
        .minor_fault_count = @intCast(@max(usage.minflt, 0)),
        .major_fault_count = @intCast(@max(usage.majflt, 0)),
        // The directory handle used for counting is itself one of the fds; do not count it.
        .fd_count = if (countDir("/proc/self/fd")) |n| n -| 1 else std.math.maxInt(u64),
        .thread_count = countDir("/proc/self/task") orelse std.math.maxInt(u64),
    };
}

const abi = @import("table.zig");
const capi = abi.fns;

test "process stats are plausible" {
    var out: ProcessCounters = undefined;
    try std.testing.expectEqual(@as(i32, 0), capi.spead_process_stats(&out));
    try std.testing.expect(out.thread_count >= 1);
    try std.testing.expect(out.fd_count >= 3); // stdin, stdout, stderr
    try std.testing.expectEqual(@intFromEnum(status.Status.invalid_argument), capi.spead_process_stats(null));
}

const sys_error = @import("../core/sys_error.zig");

fn writeText(text: []const u8, out: ?[*]u8, cap: u32, out_len: ?*u32) status.Error!void {
    const len = out_len orelse return error.InvalidArgument;
    len.* = @intCast(text.len);
    if (cap < text.len) return error.BufferTooSmall;
    if (text.len == 0) return;
    const dest = out orelse return error.InvalidArgument;
    @memcpy(dest[0..text.len], text);
}

/// The calling thread's last failed system call: its errno into `out_errno`
/// (0 if none) and its operation text ("bind 127.0.0.1:8888") into `out`.
pub fn lastError(out_errno: ?*u32, out: ?[*]u8, cap: u32, out_len: ?*u32) status.Error!void {
    const errno_out = out_errno orelse return error.InvalidArgument;
    const rec = sys_error.get();
    errno_out.* = rec.errno;
    return writeText(rec.text, out, cap, out_len);
}

/// The symbolic name of a Linux errno ("EADDRINUSE"); `invalid_argument` for an unknown number.
pub fn errnoName(errno: u32, out: ?[*]u8, cap: u32, out_len: ?*u32) status.Error!void {
    const name = sys_error.errnoName(errno) orelse return error.InvalidArgument;
    return writeText(name, out, cap, out_len);
}

test "last error and errno name exports" {
    var errno: u32 = 99;
    var buf: [128]u8 = undefined;
    var len: u32 = 0;
    try std.testing.expectEqual(error.SystemError, sys_error.fail(.ADDRINUSE, "bind", try std.net.Address.parseIp("127.0.0.1", 8888)));
    try std.testing.expectEqual(@as(i32, 0), capi.spead_last_error(&errno, &buf, buf.len, &len));
    try std.testing.expectEqual(@as(u32, 98), errno);
    try std.testing.expectEqualStrings("bind 127.0.0.1:8888", buf[0..len]);
    try std.testing.expectEqual(@intFromEnum(status.Status.buffer_too_small), capi.spead_last_error(&errno, &buf, 3, &len));
    try std.testing.expectEqual(@as(i32, 0), capi.spead_errno_name(90, &buf, buf.len, &len));
    try std.testing.expectEqualStrings("EMSGSIZE", buf[0..len]);
    try std.testing.expectEqual(@intFromEnum(status.Status.invalid_argument), capi.spead_errno_name(0, &buf, buf.len, &len));
}
