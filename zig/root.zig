//! libspead: the native core. The C ABI (spead_<noun>_<verb>) is the table in
//! zig/abi/table.zig; this file exports it and pulls in the tests.
const std = @import("std");
const table = @import("abi/table.zig");

comptime {
    table.exportAll();
    // Not an export of the table: the .init_array entry that pins the library.
    _ = @import("abi/lifecycle.zig");
}

test {
    std.testing.refAllDecls(@This());
    _ = @import("core/status.zig");
    _ = @import("core/sys_error.zig");
    _ = @import("core/handles.zig");
    _ = @import("core/map_guard.zig");
    _ = @import("core/doorbell.zig");
    _ = @import("abi/export.zig");
    _ = @import("abi/stats.zig");
    _ = @import("abi/records.zig");
    _ = @import("abi/send.zig");
    _ = @import("abi/recv.zig");
    _ = @import("abi/udp_recv.zig");
    _ = @import("abi/udp_send.zig");
    _ = @import("abi/tcp.zig");
    _ = @import("abi/buffer.zig");
    _ = @import("abi/diag.zig");
    _ = @import("abi/lifecycle.zig");
    _ = @import("abi/chunk.zig");
    _ = @import("abi/gen.zig");
    _ = @import("recv/file_reader.zig");
    _ = @import("recv/pcap.zig");
    _ = @import("recv/tcp.zig");
    // Fuzz tests (`zig build test --fuzz`; seed corpus and fixed-seed mutations in every test run).
    _ = @import("core/fuzz.zig");
    _ = @import("recv/recv_fuzz.zig");
    _ = @import("send/descriptor_fuzz.zig");
}
