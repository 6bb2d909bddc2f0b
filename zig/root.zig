//! libspead: the native core. This file only gathers the modules whose
//! `export fn`s form the C ABI (spead_<noun>_<verb>) and pulls in their tests.
const std = @import("std");
const status = @import("status.zig");

pub const abi_version: u32 = 1;

/// Returns the ABI version; also the "trivial call" of the FFI benchmark.
export fn spead_library_version() u32 {
    return abi_version;
}

comptime {
    _ = @import("status.zig");
    _ = @import("handles.zig");
    _ = @import("exports_send.zig");
    _ = @import("exports_recv.zig");
    _ = @import("exports_udp_recv.zig");
    _ = @import("exports_udp_send.zig");
    _ = @import("exports_buffer.zig");
    _ = @import("exports_diag.zig");
}

test {
    std.testing.refAllDecls(@This());
}
