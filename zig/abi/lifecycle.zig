//! Process lifetime of the library (issue #8).
//!
//! * Pinned when loaded: Deno `dlclose`s every FFI library while it tears the
//!   runtime down, and a native thread still inside libspead (a UDP reader, a
//!   send I/O thread, a pool refill) then runs unmapped code (SIGSEGV at
//!   exit). An `.init_array` entry re-opens the library with RTLD_NODELETE, so
//!   its code and data stay mapped until the process ends.
//! * `spead_shutdown` stops and joins every native thread the library runs
//!   (readers, send I/O threads, refill threads) without freeing anything;
//!   ffi/mod.ts calls it from the runtime's exit hook, so a script that never
//!   closed its streams still exits with no thread of ours running.
const std = @import("std");
const builtin = @import("builtin");
const status = @import("../core/status.zig");
const recv = @import("recv.zig");
const udp_send = @import("udp_send.zig");
const udp_recv = @import("udp_recv.zig");

const DlInfo = extern struct {
    fname: ?[*:0]const u8,
    fbase: ?*anyopaque,
    sname: ?[*:0]const u8,
    saddr: ?*anyopaque,
};
extern "c" fn dladdr(addr: *const anyopaque, info: *DlInfo) c_int;

/// Whether the pin succeeded (read by spead_shutdown's caller through its status).
var pinned = std.atomic.Value(bool).init(false);

fn pin() callconv(.c) void {
    var info: DlInfo = undefined;
    if (dladdr(@ptrCast(&pin), &info) == 0) return;
    const path = info.fname orelse return;
    // NOLOAD: only take a reference on the copy already loaded; NODELETE: never unmap it.
    if (std.c.dlopen(path, .{ .NOW = true, .NOLOAD = true, .NODELETE = true }) != null) pinned.store(true, .release);
}

comptime {
    if (builtin.output_mode == .Lib and builtin.os.tag == .linux) {
        const entry: [1]*const fn () callconv(.c) void = .{&pin};
        @export(&entry, .{ .name = "spead_pin_init", .section = ".init_array", .visibility = .hidden });
    }
}

/// Stops every stream and pool thread and joins them (see the file comment).
/// Handles stay valid; closing them afterwards is still allowed. Returns ok,
/// or `invalid_state` if the library could not pin itself in memory.
pub fn shutdown() status.Error!void {
    recv.stopAll();
    udp_send.stopAll();
    udp_recv.stopAllRefills();
    if (builtin.output_mode == .Lib and builtin.os.tag == .linux and !pinned.load(.acquire)) {
        return error.InvalidState;
    }
}

const capi = @import("table.zig").fns;

test "shutdown with nothing live is ok and idempotent" {
    try std.testing.expectEqual(@as(i32, 0), capi.spead_shutdown());
    try std.testing.expectEqual(@as(i32, 0), capi.spead_shutdown());
}
