//! C ABI of the TCP transport (docs/ABI.md "TCP"): the TCP reader of a
//! receive stream (zig/recv/tcp.zig).
const std = @import("std");
const Error = @import("../core/status.zig").Error;
const tcp_recv = @import("../recv/tcp.zig");
const exports_recv = @import("recv.zig");
const records = @import("records.zig");
const Endpoint = records.Endpoint;
const TcpReaderInfo = records.TcpReaderInfo;

/// spead2's add_tcp_reader: listens on `endpoint` (family 0: all IPv4
/// addresses), accepts one connection and feeds its packets to the stream,
/// which stops when the peer closes. `max_size` 0 takes spead2's default;
/// `buffer_size` 0 leaves the kernel's socket buffer size (as spead2).
pub fn addTcpReader(handle: u32, endpoint: ?*const Endpoint, max_size: u32, buffer_size: u32, out_info: ?*TcpReaderInfo) Error!void {
    var bind = (endpoint orelse return error.InvalidArgument).*;
    if (bind.family == Endpoint.family_none) bind.family = Endpoint.family_ip4;
    const options: tcp_recv.Options = .{
        .address = try bind.toAddress(),
        .max_size = if (max_size == 0) tcp_recv.max_size_default else max_size,
        .buffer_size = buffer_size,
    };
    const acquired = try exports_recv.acquire(handle);
    defer acquired.release();
    const info = try tcp_recv.TcpReader.add(acquired.stream, options);
    if (out_info) |out| out.* = .{ .port = info.port, .buffer_size = info.buffer_size };
}

// ---------------------------------------------------------------------------
// Tests (through the exports)

const testing = std.testing;
const abi = @import("table.zig");
const capi = abi.fns;
const expectStatus = abi.expectStatus;

test "exports: a TCP reader on port 0 reports its port; bad arguments are refused" {
    var config = [_]u32{ 4, 1, 0, 0, 1, 1, 8, 1, 0, 0, 0, 0xFFFF_FFFF, 0 };
    var h: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_stream_create(@ptrCast(&config), &h));
    defer _ = capi.spead_recv_stream_destroy(h);
    var info: TcpReaderInfo = undefined;
    var endpoint = try Endpoint.parse("127.0.0.1", 0);
    try expectStatus(.invalid_argument, capi.spead_recv_stream_add_tcp_reader(h, null, 0, 0, &info));
    try expectStatus(.invalid_argument, capi.spead_recv_stream_add_tcp_reader(h, &endpoint, 4, 0, &info));
    try expectStatus(.invalid_handle, capi.spead_recv_stream_add_tcp_reader(h + 1, &endpoint, 0, 0, &info));
    try expectStatus(.ok, capi.spead_recv_stream_add_tcp_reader(h, &endpoint, 0, 0, &info));
    try testing.expect(info.port != 0);
    try testing.expect(info.buffer_size > 0);
    // The port is taken now.
    endpoint.port = info.port;
    try expectStatus(.system_error, capi.spead_recv_stream_add_tcp_reader(h, &endpoint, 0, 0, &info));
}
