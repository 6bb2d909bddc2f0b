//! C exports of the UDP send stream (docs/ABI.md, "UDP send stream").
//!
//! A stream lives behind a generational handle. Blocking calls (`wait`,
//! `flush`) may run on another thread (Deno's nonblocking FFI) while JS calls
//! `destroy`, so every export leases the stream (zig/core/handles.zig
//! `LeaseTable`), and `destroy` unlinks the handle, stops the stream (which
//! wakes every waiter) and frees it only when no call is inside any more.
const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;
const status = @import("../core/status.zig");
const Error = status.Error;
const handles = @import("../core/handles.zig");
const Flavour = @import("../core/flavour.zig").Flavour;
const send_heap = @import("../send/packetiser.zig");
const args = @import("send.zig");
const records = @import("records.zig");
const SendStreamConfig = records.SendStreamConfig;
const HeapRecord = records.HeapRecord;
const Endpoint = records.Endpoint;
const CntSequence = records.CntSequence;

/// The sender needs sendmmsg and Linux socket options; elsewhere every
/// export answers `system_error` and the module is never compiled.
const supported = builtin.os.tag == .linux;
const udp_send = if (supported) @import("../send/udp.zig") else struct {};

const allocator = std.heap.c_allocator;

pub const streams_capacity: u32 = 256;
/// Heaps in one group (one `send` call).
pub const group_heaps_max: u32 = 4096;
pub const cnt_auto: u64 = std.math.maxInt(u64);
const config_flag_no_gso: u64 = 1;
/// How long `destroy` waits for calls still inside the stream.
const destroy_wait_ms = 10_000;

const Stream = if (supported) udp_send.Stream else void;

const StreamLeases = handles.LeaseTable(if (supported) udp_send.Stream else u8, streams_capacity);
var streams: StreamLeases = .{};

// ---------------------------------------------------------------------------
// Parsing of JS arguments

/// The endpoints' addresses: 1 .. `out.len` records, ports 1..65535.
fn endpointAddresses(endpoints: ?[*]const Endpoint, endpoint_count: u32, out: []std.net.Address) Error![]std.net.Address {
    if (endpoint_count == 0 or endpoint_count > out.len) return error.InvalidArgument;
    const records_in = (endpoints orelse return error.InvalidArgument)[0..endpoint_count];
    for (records_in, out[0..endpoint_count]) |*endpoint, *address| {
        if (endpoint.port == 0) return error.InvalidArgument;
        address.* = try endpoint.toAddress();
    }
    return out[0..endpoint_count];
}

fn wholeNumber(value: f64, min: f64, max: f64) Error!u64 {
    if (!std.math.isFinite(value)) return error.InvalidArgument;
    if (value != @floor(value) or value < min or value > max) return error.InvalidArgument;
    assert(min >= 0);
    return @intFromFloat(value);
}

fn parseConfig(c: *const SendStreamConfig, interface_address: ?*const Endpoint) Error!udp_send.Config {
    var config = udp_send.Config{};
    config.packet_size_max = @intCast(try wholeNumber(c.packet_size_max, 0, std.math.maxInt(u32)));
    config.rate = c.rate;
    config.burst_size = try wholeNumber(c.burst_size, 0, 1 << 53);
    config.heaps_max = @intCast(try wholeNumber(c.heaps_max, 0, std.math.maxInt(u32)));
    config.burst_rate_ratio = c.burst_rate_ratio;
    config.buffer_size = @intCast(try wholeNumber(c.buffer_size, 0, std.math.maxInt(i32)));
    config.ttl = if (c.ttl == -1) null else @intCast(try wholeNumber(c.ttl, 0, 255));
    config.interface_index = @intCast(try wholeNumber(c.interface_index, 0, std.math.maxInt(u32)));
    const flags = try wholeNumber(c.flags, 0, 1 << 53);
    if (flags & ~config_flag_no_gso != 0) return error.InvalidArgument;
    config.gso = flags & config_flag_no_gso == 0;
    // -1 = no pinning; else validated against the CPU count.
    if (c.io_core != -1) config.cpu = @intCast(try wholeNumber(c.io_core, 0, std.math.maxInt(u32)));
    if (interface_address) |at| if (at.family != Endpoint.family_none) {
        if (at.port != 0) return error.InvalidArgument;
        config.interface_address = try at.toAddress();
    };
    try config.validate();
    return config;
}

/// `Stream.send` source over the caller's heap records and item table.
const HeapRecords = struct {
    heaps: []const HeapRecord,
    items: []const send_heap.ItemRecord,

    pub fn count(self: HeapRecords) usize {
        return self.heaps.len;
    }

    pub fn get(self: HeapRecords, i: usize) Error!udp_send.HeapSpec {
        const r = &self.heaps[i];
        if (r.first_item > self.items.len or r.item_count > self.items.len - r.first_item) return error.InvalidArgument;
        if (r.heap_address_bits > 64) return error.InvalidFlavour;
        if (r.repeat_pointers > 1 or r.reserved != 0) return error.InvalidArgument;
        return .{
            .items = self.items[r.first_item..][0..r.item_count],
            .flavour = try Flavour.init(4, 64, r.heap_address_bits, 0),
            .cnt = if (r.cnt == cnt_auto) null else r.cnt,
            .substream = r.substream_index,
            .rate = r.rate,
            .repeat_pointers = r.repeat_pointers == 1,
        };
    }
};

// ---------------------------------------------------------------------------
// Exports

/// The stream of `handle`, leased for one call (`release` it).
fn lease(handle: u32) Error!StreamLeases.Lease {
    if (!supported) return error.SystemError;
    return streams.lease(handle);
}

/// Calls `Stream.<method>` on the stream of `handle` with `method_args`,
/// leased for the call (the method returns void or `Error!void`).
fn call(handle: u32, comptime method: []const u8, method_args: anytype) Error!void {
    const leased = try lease(handle);
    defer leased.release();
    return @call(.auto, @field(Stream, method), .{leased.object} ++ method_args);
}

pub fn create(
    endpoints: ?[*]const Endpoint,
    endpoint_count: u32,
    interface_address: ?*const Endpoint,
    config_in: ?*const SendStreamConfig,
    out_handle: ?*u32,
) Error!void {
    if (!supported) return error.SystemError;
    const handle_out = try args.u32Out(out_handle);
    const config = try parseConfig(config_in orelse return error.InvalidArgument, interface_address);
    var address_buffer: [udp_send.endpoints_max]std.net.Address = undefined;
    const addresses = try endpointAddresses(endpoints, endpoint_count, &address_buffer);
    try register(try udp_send.Stream.create(allocator, addresses, config), handle_out);
}

/// Gives `stream` a handle (destroying it if none is left) and writes it to `out`.
fn register(stream: *Stream, out: *u32) Error!void {
    errdefer stream.destroy();
    const handle = try streams.insert(stream);
    // Not yet visible to JS, so no doorbell can use the handle before this.
    stream.handle = handle;
    out.* = handle;
}

/// spead2's TcpStream: connects to `endpoint` (an Endpoint record) and returns a
/// send-stream handle that the other `spead_udp_send_stream_*` exports take.
pub fn createTcp(
    endpoint: ?*const Endpoint,
    interface_address: ?*const Endpoint,
    config_in: ?*const SendStreamConfig,
    out_handle: ?*u32,
) Error!void {
    if (!supported) return error.SystemError;
    const handle_out = try args.u32Out(out_handle);
    const config = try parseConfig(config_in orelse return error.InvalidArgument, interface_address);
    const address = try (endpoint orelse return error.InvalidArgument).toAddress();
    try register(try udp_send.Stream.createTcp(allocator, address, config), handle_out);
}

pub fn send(
    handle: u32,
    heaps: ?[*]const HeapRecord,
    heap_count: u32,
    items: ?[*]const u64,
    item_count: u32,
    mode: u32,
    token_in: ?*const u64,
    out_cnts: ?[*]u64,
) Error!void {
    const leased = try lease(handle);
    defer leased.release();
    if (heap_count == 0) return error.InvalidArgument;
    if (heap_count > group_heaps_max) return error.QueueFull;
    const group_mode = std.meta.intToEnum(udp_send.GroupMode, mode) catch return error.InvalidArgument;
    const source = HeapRecords{
        .heaps = (heaps orelse return error.InvalidArgument)[0..heap_count],
        .items = try args.itemTable(items, item_count),
    };
    const token = try args.u64In(token_in);
    const cnts: []u64 = if (out_cnts == null) &.{} else try args.wordsOut(out_cnts, heap_count);
    try leased.object.send(source, group_mode, token, cnts);
}

pub fn poll(handle: u32, out: ?[*]records.SendCompletion, cap_records: u32, out_count: ?*u32) Error!void {
    const leased = try lease(handle);
    defer leased.release();
    const count_out = try args.u32Out(out_count);
    const completions: []records.SendCompletion = if (cap_records == 0) &.{} else (out orelse return error.InvalidArgument)[0..cap_records];
    count_out.* = @intCast(leased.object.poll(completions));
}

pub fn wait(handle: u32, timeout_ms: u32) Error!void {
    return call(handle, "wait", .{timeout_ms});
}

pub fn flush(handle: u32, timeout_ms: u32) Error!void {
    return call(handle, "flush", .{timeout_ms});
}

pub fn setNotify(handle: u32, callback: ?*const fn (u32) callconv(.c) void) Error!void {
    return call(handle, "setNotify", .{callback});
}

pub fn arm(handle: u32) Error!void {
    return call(handle, "arm", .{});
}

pub fn setCntSequence(handle: u32, sequence: ?*const CntSequence) Error!void {
    const leased = try lease(handle);
    defer leased.release();
    const s = sequence orelse return error.InvalidArgument;
    try leased.object.setCntSequence(s.next, s.step);
}

/// The stat names; elsewhere than Linux one placeholder (every read fails).
const stat_names = if (supported) udp_send.stat_names else [_][]const u8{"unsupported"};

fn readStats(handle: u32, values: *[stat_names.len]u64) Error!void {
    const leased = try lease(handle);
    defer leased.release();
    assert(leased.object.statValues(values) == values.len);
}

/// `spead_udp_send_stream_stats` and `spead_udp_send_stream_stat_name`.
pub const stats = @import("stats.zig").Stats(&stat_names, readStats);

pub fn stop(handle: u32) Error!void {
    return call(handle, "stop", .{});
}

/// Stops every live stream and joins its I/O thread (process shutdown,
/// zig/abi/lifecycle.zig); the streams stay valid until destroyed.
pub fn stopAll() void {
    if (!supported) return;
    var live: [streams_capacity]u32 = undefined;
    const n = streams.liveHandles(&live);
    for (live[0..n]) |h| stop(h) catch {}; // destroyed meanwhile: nothing to stop
}

pub fn destroy(handle: u32) Error!void {
    if (!supported) return error.SystemError;
    // No new call can find the stream now; stopping wakes those inside; a call
    // stuck inside past the bound leaks the stream rather than freeing it.
    const stream = try streams.retire(handle, udp_send.Stream.stop, destroy_wait_ms);
    stream.destroy();
}

// ---------------------------------------------------------------------------
// Tests: the exports as JS drives them, including a waiter during destroy.

const testing = std.testing;
const abi = @import("table.zig");
const capi = abi.fns;
const Status = status.Status;
const posix = std.posix;

const expectStatus = abi.expectStatus;

/// A SendStreamConfig as its 10 f64 fields (tests set them by index).
fn defaultConfig() [10]f64 {
    return .{ 1472, 0, 65536, 4, 1.05, 512 * 1024, -1, 0, 0, -1 };
}

const Sink = struct {
    fd: posix.socket_t,
    port: u16,

    fn open() !Sink {
        var address = try std.net.Address.parseIp("127.0.0.1", 0);
        const fd = try posix.socket(posix.AF.INET, posix.SOCK.DGRAM | posix.SOCK.CLOEXEC, posix.IPPROTO.UDP);
        errdefer posix.close(fd);
        try posix.bind(fd, &address.any, address.getOsSockLen());
        var len = address.getOsSockLen();
        try posix.getsockname(fd, &address.any, &len);
        return .{ .fd = fd, .port = address.getPort() };
    }

    fn recv(self: Sink, buffer: []u8) !usize {
        var fds = [_]posix.pollfd{.{ .fd = self.fd, .events = posix.POLL.IN, .revents = 0 }};
        if (try posix.poll(&fds, 2000) == 0) return error.Timeout;
        return posix.recv(self.fd, buffer, 0);
    }
};

test "udp send exports: create, send, poll, stats, destroy" {
    if (!supported) return error.SkipZigTest;
    const sink = try Sink.open();
    defer posix.close(sink.fd);
    const endpoint = try Endpoint.parse("127.0.0.1", sink.port);
    var config = defaultConfig();
    var handle: u32 = 0;
    try expectStatus(.ok, capi.spead_udp_send_stream_create(@ptrCast(&endpoint), 1, null, @ptrCast(&config), &handle));

    // One group of two heaps: a start heap (auto cnt) and an item at cnt 9.
    const data = [_]u8{ 1, 2, 3, 4, 5 };
    const items = [_]u64{
        0x06,   0,                  0,        1,
        0x1000, @intFromPtr(&data), data.len, 0,
    };
    const heaps = [_]HeapRecord{
        .{ .first_item = 0, .item_count = 1, .cnt = cnt_auto, .substream_index = 0, .heap_address_bits = 48, .rate = -1, .repeat_pointers = 0, .reserved = 0 },
        .{ .first_item = 1, .item_count = 1, .cnt = 9, .substream_index = 0, .heap_address_bits = 48, .rate = -1, .repeat_pointers = 0, .reserved = 0 },
    };
    const token: u64 = 0xfeed;
    var cnts: [2]u64 = undefined;
    try expectStatus(.ok, capi.spead_udp_send_stream_send(handle, &heaps, 2, &items, 2, 1, &token, &cnts));
    try testing.expectEqualSlices(u64, &.{ 1, 9 }, &cnts);
    var buffer: [1500]u8 = undefined;
    try testing.expectEqual(@as(usize, 57), try sink.recv(&buffer));
    try testing.expectEqual(@as(usize, 48 + 5), try sink.recv(&buffer));
    try expectStatus(.ok, capi.spead_udp_send_stream_wait(handle, 2000));
    var completions: [2]records.SendCompletion = undefined;
    var n: u32 = 0;
    try expectStatus(.ok, capi.spead_udp_send_stream_poll(handle, &completions, 2, &n));
    try testing.expectEqual(@as(u32, 1), n);
    try testing.expectEqual(token, completions[0].token);
    try testing.expectEqual(@as(u64, 57 + 53), completions[0].bytes_sent);
    try testing.expectEqual(@as(u64, 0), completions[0].status);

    var stat_values: [32]u64 = undefined;
    try expectStatus(.ok, capi.spead_udp_send_stream_stats(handle, &stat_values, stat_values.len, &n));
    try testing.expectEqual(@as(u32, udp_send.stat_names.len), n);
    try testing.expectEqual(@as(u64, 2), stat_values[0]); // heaps
    var name: [32]u8 = undefined;
    var len: u32 = 0;
    try expectStatus(.ok, capi.spead_udp_send_stream_stat_name(0, &name, name.len, &len));
    try testing.expectEqualStrings("heaps", name[0..len]);
    try expectStatus(.buffer_too_small, capi.spead_udp_send_stream_stat_name(0, &name, 2, &len));
    try testing.expectEqual(@as(u32, 5), len);
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_stat_name(99, &name, name.len, &len));

    // Bad arguments.
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_send(handle, &heaps, 0, &items, 2, 1, &token, null));
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_send(handle, &heaps, 2, &items, 2, 2, &token, null));
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_send(handle, &heaps, 2, &items, 1, 1, &token, null));
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_send(handle, &heaps, 2, &items, 2, 1, null, null));
    var bad_heaps = heaps;
    bad_heaps[0].heap_address_bits = 44;
    try expectStatus(.invalid_flavour, capi.spead_udp_send_stream_send(handle, &bad_heaps, 1, &items, 2, 1, &token, null));
    bad_heaps = heaps;
    bad_heaps[0].cnt = 1 << 48;
    try expectStatus(.invalid_cnt, capi.spead_udp_send_stream_send(handle, &bad_heaps, 1, &items, 2, 1, &token, null));
    bad_heaps = heaps;
    bad_heaps[0].substream_index = 1;
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_send(handle, &bad_heaps, 1, &items, 2, 1, &token, null));
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_set_cnt_sequence(handle, &CntSequence{ .next = 5, .step = 0 }));
    try expectStatus(.ok, capi.spead_udp_send_stream_set_cnt_sequence(handle, &CntSequence{ .next = 5, .step = 2 }));
    try expectStatus(.ok, capi.spead_udp_send_stream_flush(handle, 1000));

    try expectStatus(.ok, capi.spead_udp_send_stream_stop(handle));
    try expectStatus(.stopped, capi.spead_udp_send_stream_wait(handle, 10));
    try expectStatus(.stopped, capi.spead_udp_send_stream_send(handle, &heaps, 1, &items, 2, 1, &token, null));
    try expectStatus(.ok, capi.spead_udp_send_stream_destroy(handle));
    try expectStatus(.invalid_handle, capi.spead_udp_send_stream_destroy(handle));
    try expectStatus(.invalid_handle, capi.spead_udp_send_stream_wait(handle, 0));
    try expectStatus(.invalid_handle, capi.spead_udp_send_stream_arm(0));
}

test "udp send create rejects bad endpoints and configs" {
    if (!supported) return error.SkipZigTest;
    var config = defaultConfig();
    var handle: u32 = 0;
    const good = [_]Endpoint{ try Endpoint.parse("127.0.0.1", 9), try Endpoint.parse("127.0.0.1", 10) };
    // None, port 0, port 70000, family 0 (no address), reserved set, IPv4 with a scope, two families.
    var bad_endpoints = [_][2]Endpoint{good} ** 7;
    bad_endpoints[1][0].port = 0;
    bad_endpoints[2][0].port = 70000;
    bad_endpoints[3][0].family = Endpoint.family_none;
    bad_endpoints[4][0].reserved = 1;
    bad_endpoints[5][0].scope_id = 2;
    bad_endpoints[6][1] = try Endpoint.parse("::1", 9);
    for (&bad_endpoints, 0..) |*list, i| {
        try expectStatus(.invalid_argument, capi.spead_udp_send_stream_create(list, if (i == 0) 0 else 2, null, @ptrCast(&config), &handle));
    }
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_create(null, 2, null, @ptrCast(&config), &handle));
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_create(&good, good.len, null, null, &handle));
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_create(&good, good.len, null, @ptrCast(&config), null));
    const bad_configs = [_]struct { index: usize, value: f64, expected: Status }{
        .{ .index = 0, .value = 55, .expected = .packet_too_small },
        .{ .index = 0, .value = 1472.5, .expected = .invalid_argument },
        .{ .index = 1, .value = -1, .expected = .invalid_argument },
        .{ .index = 3, .value = 0, .expected = .invalid_argument },
        .{ .index = 4, .value = 0.9, .expected = .invalid_argument },
        .{ .index = 6, .value = 256, .expected = .invalid_argument },
        .{ .index = 6, .value = 1, .expected = .invalid_argument }, // unicast endpoints with a TTL
        .{ .index = 7, .value = 3, .expected = .invalid_argument },
        .{ .index = 8, .value = 2, .expected = .invalid_argument },
        .{ .index = 9, .value = 10000, .expected = .invalid_argument },
        .{ .index = 9, .value = 0.5, .expected = .invalid_argument },
        .{ .index = 9, .value = -2, .expected = .invalid_argument },
        .{ .index = 9, .value = std.math.nan(f64), .expected = .invalid_argument },
    };
    for (bad_configs) |case| {
        config = defaultConfig();
        config[case.index] = case.value;
        try expectStatus(case.expected, capi.spead_udp_send_stream_create(&good, good.len, null, @ptrCast(&config), &handle));
    }
    config = defaultConfig();
    const iface = try Endpoint.parse("::1", 0);
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_create(&good, good.len, &iface, @ptrCast(&config), &handle));
    const iface_port = try Endpoint.parse("127.0.0.1", 9);
    try expectStatus(.invalid_argument, capi.spead_udp_send_stream_create(&good, good.len, &iface_port, @ptrCast(&config), &handle));
    // Two substreams, bound to the loopback address, no GSO: fine.
    const local = try Endpoint.parse("127.0.0.1", 0);
    config[8] = 1;
    try expectStatus(.ok, capi.spead_udp_send_stream_create(&good, good.len, &local, @ptrCast(&config), &handle));
    try expectStatus(.ok, capi.spead_udp_send_stream_destroy(handle));
    // Core 0.
    const allowed = try std.posix.sched_getaffinity(0);
    if (allowed[0] & 1 != 0) {
        config[9] = 0;
        try expectStatus(.ok, capi.spead_udp_send_stream_create(&good, good.len, null, @ptrCast(&config), &handle));
        var stat_values: [32]u64 = undefined;
        var n: u32 = 0;
        try expectStatus(.ok, capi.spead_udp_send_stream_flush(handle, 1000));
        try expectStatus(.ok, capi.spead_udp_send_stream_stats(handle, &stat_values, stat_values.len, &n));
        try testing.expectEqual(@as(u32, udp_send.stat_names.len), n);
        var name: [32]u8 = undefined;
        var len: u32 = 0;
        try expectStatus(.ok, capi.spead_udp_send_stream_stat_name(n - 1, &name, name.len, &len));
        try testing.expectEqualStrings("affinity_failures", name[0..len]);
        try expectStatus(.ok, capi.spead_udp_send_stream_destroy(handle));
    }
}

const Waiter = struct {
    fn run(handle: u32, result: *i32) void {
        result.* = capi.spead_udp_send_stream_wait(handle, 30_000);
    }
};

test "destroy while another thread waits: the waiter returns, nothing is freed under it" {
    if (!supported) return error.SkipZigTest;
    const endpoint = try Endpoint.parse("127.0.0.1", 9);
    var config = defaultConfig();
    var handle: u32 = 0;
    try expectStatus(.ok, capi.spead_udp_send_stream_create(@ptrCast(&endpoint), 1, null, @ptrCast(&config), &handle));
    var result: i32 = 1;
    const thread = try std.Thread.spawn(.{}, Waiter.run, .{ handle, &result });
    std.Thread.sleep(20 * std.time.ns_per_ms);
    var timer = try std.time.Timer.start();
    try expectStatus(.ok, capi.spead_udp_send_stream_destroy(handle));
    thread.join();
    try testing.expect(timer.read() < 5 * std.time.ns_per_s);
    // The waiter saw the stop (or, had it started late, the stale handle).
    try testing.expect(result == @intFromEnum(Status.stopped) or result == @intFromEnum(Status.invalid_handle));
}
