//! libspead: the native core. This file only gathers the modules whose
//! `export fn`s form the C ABI (spead_<noun>_<verb>) and pulls in their tests.
const std = @import("std");
const status = @import("core/status.zig");

pub const abi_version: u32 = 1;

/// Returns the ABI version; also the "trivial call" of the FFI benchmark.
export fn spead_library_version() u32 {
    return abi_version;
}

comptime {
    _ = @import("core/status.zig");
    _ = @import("core/sys_error.zig");
    _ = @import("core/handles.zig");
    _ = @import("abi/send.zig");
    _ = @import("abi/recv.zig");
    _ = @import("abi/udp_recv.zig");
    _ = @import("abi/udp_send.zig");
    _ = @import("abi/buffer.zig");
    _ = @import("abi/diag.zig");
    _ = @import("abi/lifecycle.zig");
    _ = @import("abi/chunk.zig");
}

test {
    std.testing.refAllDecls(@This());
    // Fuzz tests (`zig build test --fuzz`; seed corpus and fixed-seed mutations in every test run).
    _ = @import("core/fuzz.zig");
    _ = @import("recv/recv_fuzz.zig");
    _ = @import("send/descriptor_fuzz.zig");
}
