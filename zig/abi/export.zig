//! The export mechanism: one `Export` per C function, wrapped generically.
//!
//! An implementation is an ordinary Zig function (`fn stop(handle: u32) Error!void`).
//! `Export` turns it into the C function that `zig/abi/table.zig` exports:
//! - an `Error!void` result becomes the i32 status of `zig/core/status.zig`
//!   (any other result type is returned as is: pure getters);
//! - every pointer parameter is received with alignment 1 and checked: a
//!   misaligned pointer from JS or C is `invalid_argument`, never undefined
//!   behaviour (null stays for the implementation to judge: many accept it
//!   with a zero length).
//! The same description (names, parameter names, blocking, doc) feeds the
//! generator (`zig/abi/gen.zig`) that writes `ffi/abi.gen.ts` and `include/spead.h`.
const std = @import("std");
const status = @import("../core/status.zig");
const Error = status.Error;

/// One C export: its name, implementation, parameter names and a one-line doc.
pub const Export = struct {
    name: [:0]const u8,
    /// `Impl.f` is the implementation (a type, so that the table is comptime-known).
    Impl: type,
    /// Parameter names, in order, separated by spaces.
    params: []const u8,
    doc: []const u8,
    /// Blocks the calling thread (Deno also binds it `nonblocking`).
    blocking: bool = false,

    pub fn func(comptime self: Export) @TypeOf(self.Impl.f) {
        return self.Impl.f;
    }

    /// The parameter names, split.
    pub fn paramNames(comptime self: Export) []const []const u8 {
        comptime {
            @setEvalBranchQuota(10_000);
            var names: []const []const u8 = &.{};
            var it = std.mem.tokenizeScalar(u8, self.params, ' ');
            while (it.next()) |name| names = names ++ .{name};
            return names;
        }
    }

    /// The C function: wire parameter types, status result.
    pub fn c(comptime self: Export) *const CFn(@TypeOf(self.Impl.f)) {
        const arity = @typeInfo(@TypeOf(self.Impl.f)).@"fn".params.len;
        if (comptime self.paramNames().len != arity) {
            @compileError(std.fmt.comptimePrint("{s}: {d} parameter names for {d} parameters", .{ self.name, self.paramNames().len, arity }));
        }
        return &Wrapper(self.Impl.f).call;
    }
};

/// Declares an export (see `Export`).
pub fn entry(comptime name: [:0]const u8, comptime implementation: anytype, comptime params: []const u8, comptime doc: []const u8) Export {
    return .{ .name = name, .Impl = struct {
        pub const f = implementation;
    }, .params = params, .doc = doc };
}

/// Declares an export that blocks (bound `nonblocking` by Deno as well).
pub fn blocking(comptime name: [:0]const u8, comptime f: anytype, comptime params: []const u8, comptime doc: []const u8) Export {
    var e = entry(name, f, params, doc);
    e.blocking = true;
    return e;
}

/// The type a parameter has at the C boundary: pointers with alignment 1.
pub fn Wire(comptime T: type) type {
    switch (@typeInfo(T)) {
        .optional => |o| {
            if (@typeInfo(o.child) == .pointer and @typeInfo(o.child).pointer.size != .c) {
                const P = @typeInfo(o.child).pointer;
                if (@typeInfo(P.child) == .@"fn") return T;
                var q = P;
                q.alignment = 1;
                return ?@Type(.{ .pointer = q });
            }
            return T;
        },
        .pointer => @compileError("ABI pointers are optional (JS may pass null): " ++ @typeName(T)),
        else => return T,
    }
}

/// The result at the C boundary: i32 status for `Error!void`, else the result itself.
pub fn WireResult(comptime R: type) type {
    return switch (@typeInfo(R)) {
        .error_union => |u| blk: {
            if (u.payload != void) @compileError("exports return Error!void or a plain value");
            break :blk i32;
        },
        else => R,
    };
}

fn CFn(comptime F: type) type {
    @setEvalBranchQuota(10_000);
    const info = @typeInfo(F).@"fn";
    var params: [info.params.len]std.builtin.Type.Fn.Param = undefined;
    for (info.params, 0..) |p, i| params[i] = .{ .is_generic = false, .is_noalias = false, .type = Wire(p.type.?) };
    return @Type(.{ .@"fn" = .{
        .calling_convention = .c,
        .is_generic = false,
        .is_var_args = false,
        .return_type = WireResult(info.return_type.?),
        .params = &params,
    } });
}

/// A wire argument as the implementation's type; misaligned pointers are refused.
fn fromWire(comptime T: type, value: Wire(T)) Error!T {
    if (Wire(T) == T) return value;
    const p = value orelse return null;
    const alignment = @typeInfo(@typeInfo(T).optional.child).pointer.alignment;
    if (@intFromPtr(p) % alignment != 0) return error.InvalidArgument;
    return @alignCast(p);
}

fn invoke(comptime f: anytype, wire: anytype) WireResult(@typeInfo(@TypeOf(f)).@"fn".return_type.?) {
    const info = @typeInfo(@TypeOf(f)).@"fn";
    const R = info.return_type.?;
    var args: std.meta.ArgsTuple(@TypeOf(f)) = undefined;
    inline for (info.params, 0..) |p, i| {
        args[i] = fromWire(p.type.?, wire[i]) catch |err| {
            if (@typeInfo(R) != .error_union) unreachable; // getters take no pointers
            return status.code(err);
        };
    }
    if (@typeInfo(R) == .error_union) return status.code(@call(.auto, f, args));
    return @call(.auto, f, args);
}

/// A C function with the parameters of `f` (as wire types). One case per
/// arity: Zig cannot build a function's parameter list from a type.
fn Wrapper(comptime f: anytype) type {
    const info = @typeInfo(@TypeOf(f)).@"fn";
    const R = WireResult(info.return_type.?);
    const P = struct {
        fn t(comptime i: usize) type {
            return Wire(info.params[i].type.?);
        }
    }.t;
    return switch (info.params.len) {
        0 => struct {
            fn call() callconv(.c) R {
                return invoke(f, .{});
            }
        },
        1 => struct {
            fn call(a0: P(0)) callconv(.c) R {
                return invoke(f, .{a0});
            }
        },
        2 => struct {
            fn call(a0: P(0), a1: P(1)) callconv(.c) R {
                return invoke(f, .{ a0, a1 });
            }
        },
        3 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2 });
            }
        },
        4 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3 });
            }
        },
        5 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4 });
            }
        },
        6 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5 });
            }
        },
        7 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6 });
            }
        },
        8 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7 });
            }
        },
        9 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7), a8: P(8)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7, a8 });
            }
        },
        10 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7), a8: P(8), a9: P(9)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 });
            }
        },
        11 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7), a8: P(8), a9: P(9), a10: P(10)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10 });
            }
        },
        12 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7), a8: P(8), a9: P(9), a10: P(10), a11: P(11)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11 });
            }
        },
        13 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7), a8: P(8), a9: P(9), a10: P(10), a11: P(11), a12: P(12)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12 });
            }
        },
        14 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7), a8: P(8), a9: P(9), a10: P(10), a11: P(11), a12: P(12), a13: P(13)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13 });
            }
        },
        15 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7), a8: P(8), a9: P(9), a10: P(10), a11: P(11), a12: P(12), a13: P(13), a14: P(14)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14 });
            }
        },
        16 => struct {
            fn call(a0: P(0), a1: P(1), a2: P(2), a3: P(3), a4: P(4), a5: P(5), a6: P(6), a7: P(7), a8: P(8), a9: P(9), a10: P(10), a11: P(11), a12: P(12), a13: P(13), a14: P(14), a15: P(15)) callconv(.c) R {
                return invoke(f, .{ a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15 });
            }
        },
        else => @compileError("exports take at most 16 parameters; pass a record (extern struct) instead"),
    };
}

test "wrapper: status mapping, misaligned pointers refused, getters passed through" {
    const Impl = struct {
        fn sum(words: ?[*]const u64, n: u32, out: ?*u64) Error!void {
            const w = words orelse return error.InvalidArgument;
            const o = out orelse return error.InvalidArgument;
            var total: u64 = 0;
            for (w[0..n]) |x| total += x;
            o.* = total;
        }
        fn answer() u32 {
            return 42;
        }
    };
    const sum = comptime entry("test_sum", Impl.sum, "words n out", "").c();
    const answer = comptime entry("test_answer", Impl.answer, "", "").c();
    var words = [_]u64{ 1, 2, 3, 0 };
    var out: u64 = 0;
    try std.testing.expectEqual(@as(i32, 0), sum(&words, 3, &out));
    try std.testing.expectEqual(@as(u64, 6), out);
    const bytes: [*]const u8 = @ptrCast(&words);
    const misaligned: [*]align(1) const u64 = @ptrCast(bytes + 4);
    try std.testing.expectEqual(@intFromEnum(status.Status.invalid_argument), sum(misaligned, 1, &out));
    try std.testing.expectEqual(@intFromEnum(status.Status.invalid_argument), sum(null, 1, &out));
    try std.testing.expectEqual(@as(u32, 42), answer());
}
