//! Reading a file mapping without dying when the file shrinks.
//!
//! A mapped file that is truncated while it is read (another process rewrote
//! it, a capture tool rotated it in place) makes the next access past its new
//! end raise SIGBUS, which would kill the whole JS process. A reader that maps
//! a file (zig/recv/file_reader.zig, read by zig/recv/stream.zig's
//! BufferReader) registers the mapping here while it reads it. The SIGBUS
//! handler installed by the first registration checks the faulting address:
//! inside a registered mapping, it maps zero pages over the rest of that
//! mapping and marks it `cut`, so the access is retried, reads zeros, and the
//! reader, which checks the mark after each batch, stops and counts it. A
//! fault anywhere else goes to the handler that was there before (the
//! runtime's, or the default action).
//!
//! The handler touches only a fixed table of atomics and makes one system
//! call (mmap), which is safe in a signal handler on Linux; registration and
//! the handler never allocate.
const std = @import("std");
const builtin = @import("builtin");
const linux = std.os.linux;
const posix = std.posix;
const assert = std.debug.assert;

/// Mappings guarded at once; a reader that finds the table full reads unguarded.
pub const slots_max = 64;

const Slot = struct {
    /// Start of the mapping; 0 while the slot is free.
    start: std.atomic.Value(usize) = .init(0),
    len: std.atomic.Value(usize) = .init(0),
    /// Set by the handler once the file was found shorter than its mapping.
    cut: std.atomic.Value(bool) = .init(false),
};

var slots: [slots_max]Slot = [_]Slot{.{}} ** slots_max;
var install_lock: std.Thread.Mutex = .{};
var installed: bool = false;
var previous: posix.Sigaction = undefined;

/// A registered mapping; `release` it before unmapping.
pub const Guard = struct {
    slot: *Slot,

    /// True once a read found the file shorter than the mapping (the rest
    /// of the mapping now reads as zeros).
    pub fn cut(self: Guard) bool {
        return self.slot.cut.load(.acquire);
    }

    pub fn release(self: Guard) void {
        self.slot.len.store(0, .release);
        self.slot.cut.store(false, .release);
        self.slot.start.store(0, .release);
    }
};

/// Guards `bytes` (a page-aligned, read-only file mapping) until the guard
/// is released. Null off Linux, for an empty mapping, or when the table is
/// full: the mapping is then read unguarded.
pub fn register(bytes: []const u8) ?Guard {
    if (builtin.os.tag != .linux or bytes.len == 0) return null;
    assert(std.mem.isAligned(@intFromPtr(bytes.ptr), std.heap.pageSize()));
    install();
    for (&slots) |*slot| {
        if (slot.start.cmpxchgStrong(0, @intFromPtr(bytes.ptr), .acq_rel, .acquire) == null) {
            slot.cut.store(false, .release);
            slot.len.store(bytes.len, .release);
            return .{ .slot = slot };
        }
    }
    return null;
}

/// Installs the handler once per process (it stays: a guard may be registered again any time).
fn install() void {
    install_lock.lock();
    defer install_lock.unlock();
    if (installed) return;
    var action: posix.Sigaction = .{
        .handler = .{ .sigaction = handle },
        .mask = posix.empty_sigset,
        .flags = posix.SA.SIGINFO | posix.SA.ONSTACK | posix.SA.RESTART,
    };
    _ = &action;
    posix.sigaction(posix.SIG.BUS, &action, &previous);
    installed = true;
}

fn handle(sig: i32, info: *const posix.siginfo_t, context: ?*anyopaque) callconv(.c) void {
    const address = @intFromPtr(info.fields.sigfault.addr);
    for (&slots) |*slot| {
        const start = slot.start.load(.acquire);
        const len = slot.len.load(.acquire);
        if (start == 0 or len == 0 or address < start or address - start >= len) continue;
        const page = std.heap.pageSize();
        const from = std.mem.alignBackward(usize, address, page);
        const end = std.mem.alignForward(usize, start + len, page);
        const rc = linux.mmap(@ptrFromInt(from), end - from, linux.PROT.READ, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .FIXED = true }, -1, 0);
        if (linux.E.init(rc) != .SUCCESS) break; // cannot repair: behave as if unguarded
        slot.cut.store(true, .release);
        return;
    }
    forward(sig, info, context);
}

/// Hands a fault that is not ours to the handler installed before.
fn forward(sig: i32, info: *const posix.siginfo_t, context: ?*anyopaque) void {
    if (previous.flags & posix.SA.SIGINFO != 0) {
        if (previous.handler.sigaction) |f| return f(sig, info, context);
    } else if (previous.handler.handler) |f| {
        if (f != posix.SIG.DFL and f != posix.SIG.IGN) return f(sig);
    }
    // Default action: restore it and return; the faulting access runs again
    // and the kernel applies it (a core dump, as without this handler).
    var default: posix.Sigaction = .{ .handler = .{ .handler = posix.SIG.DFL }, .mask = posix.empty_sigset, .flags = 0 };
    _ = &default;
    posix.sigaction(posix.SIG.BUS, &default, null);
}

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;

test "a mapped file cut while guarded reads zeros past its new end and is marked; unguarded slots are freed" {
    var tmp = testing.tmpDir(.{});
    defer tmp.cleanup();
    const page = std.heap.pageSize();
    const size = 8 * page;
    const content = try testing.allocator.alloc(u8, size);
    defer testing.allocator.free(content);
    @memset(content, 0xab);
    try tmp.dir.writeFile(.{ .sub_path = "f", .data = content });
    const file = try tmp.dir.openFile("f", .{ .mode = .read_write });
    defer file.close();
    const mapped = try posix.mmap(null, size, posix.PROT.READ, .{ .TYPE = .PRIVATE }, file.handle, 0);
    defer posix.munmap(mapped);

    const guard = register(mapped).?;
    defer guard.release();
    try testing.expect(!guard.cut());
    try testing.expectEqual(@as(u8, 0xab), mapped[size - 1]);
    try file.setEndPos(3 * page + 10);
    // Before the new end: the file's bytes; the rest of the last page is zeros (as for any mapping).
    try testing.expectEqual(@as(u8, 0xab), mapped[3 * page + 9]);
    try testing.expect(!guard.cut());
    // Past it: SIGBUS without the guard; zeros with it, and the mark.
    const far: *volatile u8 = @constCast(&mapped[6 * page]);
    try testing.expectEqual(@as(u8, 0), far.*);
    try testing.expect(guard.cut());
    try testing.expectEqual(@as(u8, 0), mapped[size - 1]);
    try testing.expectEqual(@as(u8, 0xab), mapped[0]);
}

test "the table fills, refuses, and takes registrations again once guards are released" {
    const page = std.heap.pageSize();
    const base = try posix.mmap(null, page, posix.PROT.READ, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    defer posix.munmap(base);
    var guards: [slots_max]Guard = undefined;
    var n: usize = 0;
    // Other tests may hold slots; take what is left.
    while (n < slots_max) : (n += 1) guards[n] = register(base) orelse break;
    try testing.expect(n > 0);
    try testing.expect(register(base) == null);
    for (guards[0..n]) |g| g.release();
    const again = register(base).?;
    again.release();
}
