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

/// Whether `copyNonTemporal` streams its stores past the caches on this build
/// (x86-64: SSE2's movntdq, AVX's vmovntdq when the target has AVX); elsewhere
/// it is `copy`.
pub const non_temporal_stores = builtin.cpu.arch == .x86_64;
const has_avx = builtin.cpu.arch == .x86_64 and std.Target.x86.featureSetHas(builtin.cpu.features, .avx);
const vector_len = if (has_avx) 32 else 16;
const Vector = @Vector(vector_len, u8);
/// Bytes per iteration of the streaming loop (four vectors).
const step = 4 * vector_len;
/// Below this a copy goes through `copy`: aligning the destination and the
/// fence cost more than the cache pollution they avoid.
const non_temporal_min = 512;

/// The streaming store of one vector, and the loop's four as one asm block.
const nt_store = if (has_avx) "vmovntdq" else "movntdq";
const nt_block = std.fmt.comptimePrint(
    \\{s} %[a], (%[d])
    \\{s} %[b], {d}(%[d])
    \\{s} %[c], {d}(%[d])
    \\{s} %[e], {d}(%[d])
, .{ nt_store, nt_store, vector_len, nt_store, 2 * vector_len, nt_store, 3 * vector_len });

/// Copies `src` into `dest` (same length, not overlapping) with non-temporal
/// stores, as spead2's `memcpy_nontemporal` (its MEMCPY_NONTEMPORAL stream
/// option): the destination's cache lines go to memory without first being
/// read into the caches (no read-for-ownership) and without evicting other
/// data. It pays off when the destination is cold (heap buffers rotating
/// through more memory than the caches hold) and the data is read later, if
/// at all; a destination still in the cache is better served by `copy`.
///
/// The stores are weakly ordered: call `storeFence` before anything that lets
/// another thread see the bytes (a lock release, a ring push, a buffer going
/// back to a shared pool). Not fenced per call: a fence costs more than a
/// 1472-byte copy.
pub fn copyNonTemporal(dest: []u8, src: []const u8) void {
    assert(dest.len == src.len);
    if (!non_temporal_stores or src.len < non_temporal_min) return copy(dest, src);
    assert(@intFromPtr(dest.ptr) + dest.len <= @intFromPtr(src.ptr) or @intFromPtr(src.ptr) + src.len <= @intFromPtr(dest.ptr));
    // Ordinary stores up to the first vector-aligned destination byte.
    const head = (vector_len - @intFromPtr(dest.ptr) % vector_len) % vector_len;
    if (head > 0) copy(dest[0..head], src[0..head]);
    var d: [*]u8 = dest.ptr + head;
    var s: [*]const u8 = src.ptr + head;
    var left = src.len - head;
    while (left >= step) : ({
        d += step;
        s += step;
        left -= step;
    }) {
        const a: Vector = @as(*align(1) const Vector, @ptrCast(s)).*;
        const b: Vector = @as(*align(1) const Vector, @ptrCast(s + vector_len)).*;
        const c: Vector = @as(*align(1) const Vector, @ptrCast(s + 2 * vector_len)).*;
        const e: Vector = @as(*align(1) const Vector, @ptrCast(s + 3 * vector_len)).*;
        asm volatile (nt_block
            :
            : [a] "x" (a),
              [b] "x" (b),
              [c] "x" (c),
              [e] "x" (e),
              [d] "r" (d),
            : "memory"
        );
    }
    if (left > 0) copy(d[0..left], s[0..left]);
}

/// Orders every earlier `copyNonTemporal` store before later stores (x86
/// sfence; nothing elsewhere, where `copyNonTemporal` is `copy`).
pub fn storeFence() void {
    if (non_temporal_stores) asm volatile ("sfence" ::: "memory");
}

test "copyNonTemporal matches @memcpy for many sizes and alignments" {
    const src = try std.testing.allocator.alloc(u8, 20000);
    defer std.testing.allocator.free(src);
    for (src, 0..) |*b, i| b.* = @truncate(i * 131 + 17);
    const dst = try std.testing.allocator.alloc(u8, 20100);
    defer std.testing.allocator.free(dst);
    const sizes = [_]usize{ 0, 1, 63, 511, 512, 513, step - 1, step, step + 1, 1000, 1472, 4096, 8936, 8999, 19999 };
    for (sizes) |n| {
        for ([_]usize{ 0, 1, 15, 16, 31, 33, 64 }) |dst_off| {
            for ([_]usize{ 0, 1, 7 }) |src_off| {
                if (src_off + n > src.len) continue;
                @memset(dst, 0xee);
                copyNonTemporal(dst[dst_off..][0..n], src[src_off..][0..n]);
                storeFence();
                try std.testing.expectEqualSlices(u8, src[src_off..][0..n], dst[dst_off..][0..n]);
                // Nothing outside the destination is touched.
                for (dst[0..dst_off]) |b| try std.testing.expectEqual(@as(u8, 0xee), b);
                for (dst[dst_off + n ..]) |b| try std.testing.expectEqual(@as(u8, 0xee), b);
            }
        }
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
