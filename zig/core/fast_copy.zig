//! Bulk copies through glibc's default `memcpy` (the CPU-tuned AVX/AVX-512
//! variant chosen by its ifunc).
//!
//! Why not plain @memcpy: the library carries Zig's compiler_rt, which defines a
//! weak, unversioned `memcpy`; the dynamic linker then binds the library's own
//! calls to glibc's oldest compat symbol `memcpy@GLIBC_2.2.5`, an SSE2-only
//! copy. Profiles of the receiver showed it as the payload copy (about 9% of
//! the reader's CPU). `dlvsym` asks for the current default version instead;
//! where that is unavailable (not glibc), @memcpy is used.
const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;

const CopyFn = *const fn (dest: ?*anyopaque, src: ?*const anyopaque, n: usize) callconv(.c) ?*anyopaque;

extern "c" fn dlvsym(handle: ?*anyopaque, symbol: [*:0]const u8, version: [*:0]const u8) ?*anyopaque;

const use_glibc = builtin.os.tag == .linux and builtin.abi.isGnu() and builtin.link_libc;

/// The version of glibc's current default `memcpy`: x86-64 got a new one in
/// 2.14 (memmove semantics dropped); other architectures keep their first
/// glibc version (aarch64: 2.17).
const memcpy_version = switch (builtin.cpu.arch) {
    .x86_64 => "GLIBC_2.14",
    .aarch64 => "GLIBC_2.17",
    else => "GLIBC_2.0",
};

var resolved: std.atomic.Value(?CopyFn) = .init(null);
var looked_up: std.atomic.Value(bool) = .init(false);

fn lookup() ?CopyFn {
    if (!use_glibc) return null;
    if (looked_up.load(.acquire)) return resolved.load(.acquire);
    // RTLD_DEFAULT is a null handle in glibc. Racing threads resolve the same pointer.
    const symbol = dlvsym(null, "memcpy", memcpy_version);
    const f: ?CopyFn = if (symbol) |p| @ptrCast(@alignCast(p)) else null;
    resolved.store(f, .release);
    looked_up.store(true, .release);
    return f;
}

/// Copies `src` into `dest` (same length, not overlapping).
pub fn copy(dest: []u8, src: []const u8) void {
    assert(dest.len == src.len);
    if (src.len == 0) return;
    // Non-overlapping is the caller's promise; check it where it is cheap.
    assert(@intFromPtr(dest.ptr) + dest.len <= @intFromPtr(src.ptr) or @intFromPtr(src.ptr) + src.len <= @intFromPtr(dest.ptr));
    if (lookup()) |f| {
        _ = f(dest.ptr, src.ptr, src.len);
    } else {
        @memcpy(dest, src);
    }
}

test "copy matches @memcpy for many sizes and offsets" {
    var src: [9000]u8 = undefined;
    for (&src, 0..) |*b, i| b.* = @truncate(i * 31 + 7);
    var dst: [9000]u8 = undefined;
    const sizes = [_]usize{ 0, 1, 7, 8, 63, 64, 65, 1472, 4096, 8999 };
    for (sizes) |n| {
        for ([_]usize{ 0, 1, 3 }) |off| {
            if (off + n > src.len) continue;
            @memset(&dst, 0);
            copy(dst[off..][0..n], src[0..n]);
            try std.testing.expectEqualSlices(u8, src[0..n], dst[off..][0..n]);
        }
    }
}

test "glibc's default memcpy is found on glibc" {
    if (!use_glibc) return error.SkipZigTest;
    try std.testing.expect(lookup() != null);
}
