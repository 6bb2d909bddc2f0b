//! CPU affinity of our I/O threads (spead2's `affinity` arguments of thread
//! pools). JS gives a core number when it creates a stream; it is checked
//! against the CPU count then (a bad core is `InvalidArgument`), and each
//! thread pins itself when it starts. Pinning can still fail at that point
//! (the core is offline, or outside the process's cpuset): the caller counts
//! it in an `affinity_failures` stat and the thread runs unpinned.
const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;

/// Spawns a thread that first names itself `name` (`top -H`,
/// /proc/self/task/*/comm; the leak tests count the library's threads by
/// these `spead-*` names), then runs `function` with `args`. Named from
/// inside: naming it from the spawning thread fails (ESRCH) when the thread
/// has already finished.
pub fn spawnNamed(
    config: std.Thread.SpawnConfig,
    comptime name: []const u8,
    comptime function: anytype,
    args: anytype,
) std.Thread.SpawnError!std.Thread {
    comptime assert(name.len > 0 and name.len <= 15); // the kernel keeps 15 bytes
    const Entry = struct {
        fn run(inner: @TypeOf(args)) void {
            nameCurrentThread(name);
            @call(.auto, function, inner);
        }
    };
    return std.Thread.spawn(config, Entry.run, .{args});
}

/// Names the calling thread (Linux; elsewhere nothing).
pub fn nameCurrentThread(comptime name: []const u8) void {
    if (builtin.os.tag != .linux) return;
    const z: [:0]const u8 = name ++ "";
    _ = std.os.linux.prctl(@intFromEnum(std.os.linux.PR.SET_NAME), @intFromPtr(z.ptr), 0, 0, 0);
}

/// "No affinity" in u32 config words.
pub const none_u32: u32 = std.math.maxInt(u32);

/// Cores a `cpu_set_t` can name (glibc's CPU_SETSIZE).
pub const cores_limit: u32 = if (builtin.os.tag == .linux) std.os.linux.CPU_SETSIZE * 8 else 0;

/// Number of CPUs the machine has (configured, not only those this process
/// may use): one more than the highest core in /sys/devices/system/cpu/present,
/// else one more than the highest core of our own affinity mask.
pub fn cpuCount() u32 {
    if (builtin.os.tag != .linux) return 0;
    var buffer: [256]u8 = undefined;
    if (readSmallFile("/sys/devices/system/cpu/present", &buffer)) |text| {
        if (parseCpuList(text)) |n| return n;
    }
    const set = std.posix.sched_getaffinity(0) catch return 1;
    var highest: ?u32 = null;
    for (set, 0..) |word, i| {
        if (word != 0) highest = @intCast(i * @bitSizeOf(usize) + (@bitSizeOf(usize) - 1 - @clz(word)));
    }
    return if (highest) |h| h + 1 else 1;
}

fn readSmallFile(path: []const u8, buffer: []u8) ?[]const u8 {
    const file = std.fs.openFileAbsolute(path, .{}) catch return null;
    defer file.close();
    const n = file.readAll(buffer) catch return null;
    return buffer[0..n];
}

/// One more than the highest core of a kernel CPU list ("0-3,8,10-11\n"),
/// or null if the text is not one.
pub fn parseCpuList(text: []const u8) ?u32 {
    var highest: ?u32 = null;
    var ranges = std.mem.tokenizeAny(u8, text, ", \t\r\n");
    while (ranges.next()) |range| {
        const dash = std.mem.indexOfScalar(u8, range, '-');
        const last_text = if (dash) |d| range[d + 1 ..] else range;
        const first_text = if (dash) |d| range[0..d] else range;
        const first = std.fmt.parseInt(u32, first_text, 10) catch return null;
        const last = std.fmt.parseInt(u32, last_text, 10) catch return null;
        if (last < first) return null;
        highest = if (highest) |h| @max(h, last) else last;
    }
    const h = highest orelse return null;
    if (h == std.math.maxInt(u32)) return null;
    return h + 1;
}

/// A core JS may ask for: below the CPU count (and what a cpu_set_t holds).
pub fn validateCore(core: u32) Error!void {
    if (core >= cores_limit) return error.InvalidArgument;
    if (core >= cpuCount()) return error.InvalidArgument;
}

/// Pins the calling thread to `core`. Returns false if the kernel refused
/// (the caller counts it); the thread then keeps its inherited affinity.
pub fn pinCurrentThread(core: u32) bool {
    if (builtin.os.tag != .linux) return false;
    if (core >= cores_limit) return false;
    var set: std.os.linux.cpu_set_t = [_]usize{0} ** @typeInfo(std.os.linux.cpu_set_t).array.len;
    const bits = @bitSizeOf(usize);
    set[core / bits] |= @as(usize, 1) << @intCast(core % bits);
    // pid 0: the calling thread (Linux affinity is per thread). The raw call,
    // because std's wrapper dumps a stack trace for EINVAL in debug builds.
    const linux = std.os.linux;
    const rc = linux.syscall3(.sched_setaffinity, 0, @sizeOf(linux.cpu_set_t), @intFromPtr(&set));
    return linux.E.init(rc) == .SUCCESS;
}

/// The core the calling thread is restricted to, if exactly one.
pub fn currentSingleCore() ?u32 {
    if (builtin.os.tag != .linux) return null;
    const set = std.posix.sched_getaffinity(0) catch return null;
    if (std.os.linux.CPU_COUNT(set) != 1) return null;
    for (set, 0..) |word, i| {
        if (word != 0) return @intCast(i * @bitSizeOf(usize) + @ctz(word));
    }
    return null;
}

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;

test "spawnNamed: the thread carries its name from its first instruction of work" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const Probe = struct {
        fn run(out: *[16]u8) void {
            var buf: [16]u8 = undefined;
            _ = std.os.linux.prctl(@intFromEnum(std.os.linux.PR.GET_NAME), @intFromPtr(&buf), 0, 0, 0);
            out.* = buf;
        }
    };
    var got: [16]u8 = undefined;
    const t = try spawnNamed(.{}, "spead-probe", Probe.run, .{&got});
    t.join();
    try std.testing.expectEqualStrings("spead-probe", std.mem.sliceTo(&got, 0));
}

test "cpu lists" {
    try testing.expectEqual(@as(?u32, 1), parseCpuList("0\n"));
    try testing.expectEqual(@as(?u32, 4), parseCpuList("0-3"));
    try testing.expectEqual(@as(?u32, 12), parseCpuList("0-3,8,10-11\n"));
    try testing.expectEqual(@as(?u32, null), parseCpuList(""));
    try testing.expectEqual(@as(?u32, null), parseCpuList("x"));
    try testing.expectEqual(@as(?u32, null), parseCpuList("3-1"));
}

test "core validation: core 0 exists, core 10000 does not" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    try testing.expect(cpuCount() >= 1);
    try validateCore(0);
    try testing.expectError(error.InvalidArgument, validateCore(10000));
    try testing.expectError(error.InvalidArgument, validateCore(none_u32));
    try testing.expectError(error.InvalidArgument, validateCore(cpuCount()));
}

test "a thread pins itself to core 0" {
    if (builtin.os.tag != .linux) return error.SkipZigTest;
    const allowed = try std.posix.sched_getaffinity(0);
    if (allowed[0] & 1 == 0) return error.SkipZigTest; // core 0 is outside our cpuset
    const Pinned = struct {
        fn run(result: *?u32, ok: *bool) void {
            ok.* = pinCurrentThread(0);
            result.* = currentSingleCore();
        }
    };
    var result: ?u32 = null;
    var ok = false;
    const thread = try std.Thread.spawn(.{}, Pinned.run, .{ &result, &ok });
    thread.join();
    try testing.expect(ok);
    try testing.expectEqual(@as(?u32, 0), result);
    try testing.expect(!pinCurrentThread(cores_limit));
}
