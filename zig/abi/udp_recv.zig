//! C ABI of memory pools and UDP readers (docs/ABI.md "UDP receiver and memory
//! pools"): memory pools for heap payloads and the UDP reader of a receive stream.
const std = @import("std");
const status = @import("../core/status.zig");
const Error = status.Error;
const handles = @import("../core/handles.zig");
const reassembly = @import("../recv/reassembly.zig");
const memory_pool = @import("../core/memory_pool.zig");
const MemoryPool = memory_pool.MemoryPool;
const udp_recv = @import("../recv/udp.zig");
const exports_recv = @import("recv.zig");
const records = @import("records.zig");
const MemoryPoolConfig = records.MemoryPoolConfig;
const Endpoint = records.Endpoint;
const UdpReaderInfo = records.UdpReaderInfo;

pub const pools_capacity = 256;

var pool_table: handles.Table(MemoryPool, pools_capacity) = .{};
/// Serialises lookups with destroy so a pool is never used after its handle
/// went away (its memory lives on while buffers or streams hold it).
var pools_guard: std.Thread.Mutex = .{};

const bookkeeping_allocator = std.heap.c_allocator;
/// Pool buffers are large and long-lived: whole pages straight from mmap.
const pool_backing = std.heap.page_allocator;

/// For stream creation (config word 8): the pool's payload allocator, with a
/// reference taken on the pool for the stream.
pub fn acquirePool(handle: u32) Error!reassembly.PayloadAllocator {
    const pool = try pool_table.retainUnder(&pools_guard, handle);
    return pool.payloadAllocator();
}

/// Drops the reference `acquirePool` took (stream destroyed).
pub fn releasePool(payload_allocator: reassembly.PayloadAllocator) void {
    MemoryPool.fromPayloadAllocator(payload_allocator).release();
}

pub fn createPool(config_in: ?*const MemoryPoolConfig, out_handle: ?*u32) Error!void {
    const out = out_handle orelse return error.InvalidArgument;
    const c = config_in orelse return error.InvalidArgument;
    const config: memory_pool.Config = .{
        .lower = c.lower,
        .upper = c.upper,
        .free_max = c.free_max,
        .initial = c.initial,
        .low_water = c.low_water,
        .flags = c.flags,
    };
    const pool = try MemoryPool.create(bookkeeping_allocator, pool_backing, config);
    errdefer pool.destroy();
    out.* = try pool_table.insert(pool);
}

pub fn destroyPool(handle: u32) Error!void {
    const pool = try pool_table.removeUnder(&pools_guard, handle);
    pool.destroy();
}

/// Stops every pool's refill thread (process shutdown, zig/abi/lifecycle.zig).
pub fn stopAllRefills() void {
    var live: [pools_capacity]u32 = undefined;
    const n = pool_table.liveHandles(&live);
    pools_guard.lock();
    defer pools_guard.unlock();
    for (live[0..n]) |h| {
        const pool = pool_table.get(h) catch continue;
        pool.stopRefill();
    }
}

fn readPoolStats(handle: u32, values: *[memory_pool.stat_count]u64) Error!void {
    pools_guard.lock();
    defer pools_guard.unlock();
    const pool = try pool_table.get(handle);
    pool.readStats(values);
}

/// `spead_memory_pool_stats` and `spead_memory_pool_stat_name`.
pub const pool_stats = @import("stats.zig").Stats(std.meta.fieldNames(memory_pool.Stat), readPoolStats);

/// Builds the reader options the way spead2's add_udp_reader overloads do:
/// an endpoint of family 0 binds 0.0.0.0; `interface` (family 0: none) is an
/// IPv4 address for IPv4 (a multicast join, or the unicast address to bind
/// when the endpoint's address is unspecified); IPv6 multicast joins on
/// `interface_index` (0: the default).
fn udpOptions(endpoint: *const Endpoint, interface: *const Endpoint, interface_index: u32, packet_size_max: u32, buffer_size: u32) Error!udp_recv.Options {
    var bind = endpoint.*;
    if (bind.family == Endpoint.family_none) bind.family = Endpoint.family_ip4;
    var options: udp_recv.Options = .{
        .address = try bind.toAddress(),
        .packet_size_max = if (packet_size_max == 0) udp_recv.packet_size_max_default else packet_size_max,
        .buffer_size = if (buffer_size == 0) udp_recv.buffer_size_default else buffer_size,
    };
    const multicast = udp_recv.isMulticast(options.address);
    switch (options.address.any.family) {
        std.posix.AF.INET => {
            if (interface_index != 0) return error.InvalidArgument;
            if (interface.family == Endpoint.family_none) return options;
            var at = interface.*;
            at.port = bind.port;
            const interface_address = try at.toAddress();
            if (interface_address.any.family != std.posix.AF.INET) return error.InvalidArgument;
            if (multicast) {
                options.interface_v4 = interface_address;
            } else if (options.address.in.sa.addr == 0) {
                options.address = interface_address;
            } else if (options.address.in.sa.addr != interface_address.in.sa.addr) {
                return error.InvalidArgument;
            }
        },
        std.posix.AF.INET6 => {
            if (interface.family != Endpoint.family_none) return error.InvalidArgument;
            if (interface_index == 0) return options;
            if (!multicast) return error.InvalidArgument;
            options.interface_index = interface_index;
        },
        else => unreachable,
    }
    return options;
}

const no_interface: Endpoint = .{ .family = Endpoint.family_none, .port = 0, .address = [_]u8{0} ** 16, .scope_id = 0, .reserved = 0 };

pub fn addUdpReader(
    handle: u32,
    endpoint: ?*const Endpoint,
    interface_address: ?*const Endpoint,
    interface_index: u32,
    packet_size_max: u32,
    buffer_size: u32,
    out_info: ?*UdpReaderInfo,
) Error!void {
    const options = try udpOptions(endpoint orelse return error.InvalidArgument, interface_address orelse &no_interface, interface_index, packet_size_max, buffer_size);
    const acquired = try exports_recv.acquire(handle);
    defer acquired.release();
    const info = try udp_recv.UdpReader.add(acquired.stream, options);
    if (out_info) |out| out.* = .{
        .port = info.port,
        .buffer_size = info.buffer_size,
        .gro = @intFromBool(info.gro),
        .buffer_size_forced = @intFromBool(info.buffer_size_forced),
    };
}

// ---------------------------------------------------------------------------
// Tests (through the exports)

const testing = std.testing;
const abi = @import("table.zig");
const capi = abi.fns;
const packet_mod = @import("../recv/packet.zig");
const imm = packet_mod.imm;
const addr = packet_mod.addr;

const expectStatus = abi.expectStatus;

fn streamConfig(pool: u32) [13]u32 {
    return .{ 4, 1, 0, 0, 1, 1, 8, 1, pool, 0, 0, 0xFFFF_FFFF, 0 };
}

fn createPool6(config: *const [6]u64, out: ?*u32) i32 {
    return capi.spead_memory_pool_create(@ptrCast(config), out);
}

test "exports: pool create validates, stats, stale handles" {
    var h: u32 = 0;
    var bad = [_]u64{ 10, 5, 1, 1, 0, 0 };
    try expectStatus(.invalid_argument, createPool6(&bad, &h));
    var config = [_]u64{ 0, 65536, 4, 2, 0, 0 };
    try expectStatus(.invalid_argument, capi.spead_memory_pool_create(null, &h));
    try expectStatus(.invalid_argument, createPool6(&config, null));
    var bad_flags = [_]u64{ 0, 65536, 4, 2, 0, 4 };
    try expectStatus(.invalid_argument, createPool6(&bad_flags, &h));
    try expectStatus(.ok, createPool6(&config, &h));
    var values: [memory_pool.stat_count]u64 = undefined;
    var n: u32 = 0;
    try expectStatus(.buffer_too_small, capi.spead_memory_pool_stats(h, &values, 1, &n));
    try testing.expectEqual(@as(u32, memory_pool.stat_count), n);
    try expectStatus(.ok, capi.spead_memory_pool_stats(h, &values, values.len, &n));
    try testing.expectEqual(@as(u64, 2), values[@intFromEnum(memory_pool.Stat.free)]);
    try testing.expectEqual(@as(u64, 2), values[@intFromEnum(memory_pool.Stat.allocated)]);
    var name: [32]u8 = undefined;
    var len: u32 = 0;
    try expectStatus(.ok, capi.spead_memory_pool_stat_name(3, &name, name.len, &len));
    try testing.expectEqualStrings("misses", name[0..len]);
    try expectStatus(.ok, capi.spead_memory_pool_destroy(h));
    try expectStatus(.invalid_handle, capi.spead_memory_pool_destroy(h));
    try expectStatus(.invalid_handle, capi.spead_memory_pool_stats(h, &values, values.len, &n));
    var stream_config = streamConfig(h);
    var s: u32 = 0;
    try expectStatus(.invalid_handle, capi.spead_recv_stream_create(@ptrCast(&stream_config), &s));
}

test "exports: UDP reader on a pooled stream; pool outlives stream and handle" {
    var pool: u32 = 0;
    var pool_config = [_]u64{ 0, 65536, 8, 4, 0, 0 };
    try expectStatus(.ok, createPool6(&pool_config, &pool));
    var config = streamConfig(pool);
    var s: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_stream_create(@ptrCast(&config), &s));

    var info: UdpReaderInfo = undefined;
    const address = try Endpoint.parse("127.0.0.1", 0);
    var bad = address;
    bad.port = 70000;
    try expectStatus(.invalid_argument, capi.spead_recv_stream_add_udp_reader(s, &bad, null, 0, 0, 0, &info));
    bad = address;
    bad.family = 5;
    try expectStatus(.invalid_argument, capi.spead_recv_stream_add_udp_reader(s, &bad, null, 0, 0, 0, &info));
    try expectStatus(.invalid_argument, capi.spead_recv_stream_add_udp_reader(s, null, null, 0, 0, 0, &info));
    const other = try Endpoint.parse("127.0.0.2", 0);
    try expectStatus(.invalid_argument, capi.spead_recv_stream_add_udp_reader(s, &address, &other, 0, 0, 0, &info));
    try expectStatus(.invalid_handle, capi.spead_recv_stream_add_udp_reader(0, &address, null, 0, 0, 0, &info));
    try expectStatus(.ok, capi.spead_recv_stream_add_udp_reader(s, &address, null, 0, 0, 0, &info));
    try testing.expect(info.port != 0);
    try testing.expect(info.gro <= 1 and info.buffer_size_forced <= 1);

    const fd = try std.posix.socket(std.posix.AF.INET, std.posix.SOCK.DGRAM | std.posix.SOCK.CLOEXEC, 0);
    defer std.posix.close(fd);
    const to = try std.net.Address.parseIp("127.0.0.1", @intCast(info.port));
    var buf: [256]u8 = undefined;
    const bytes = packet_mod.buildTestPacket(&buf, 40, &.{ imm(1, 3), imm(2, 5), imm(3, 0), imm(4, 5), addr(0x1000, 0) }, "hello");
    _ = try std.posix.sendto(fd, bytes, 0, &to.any, to.getOsSockLen());
    var heap: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_stream_pop(s, 5000, &heap));

    try expectStatus(.ok, capi.spead_recv_stream_destroy(s));
    try expectStatus(.ok, capi.spead_memory_pool_destroy(pool));
    // The heap's pool buffer is still readable after both are gone.
    var words: [16]u64 = undefined;
    var n: u32 = 0;
    try expectStatus(.ok, capi.spead_recv_heap_describe(heap, &words, words.len, &n));
    try testing.expectEqual(@as(u64, 5), words[7]);
    const payload: [*]const u8 = @ptrFromInt(@as(usize, @intCast(words[6])));
    try testing.expectEqualStrings("hello", payload[0..5]);
    try expectStatus(.ok, capi.spead_recv_heap_release(heap));
}

/// `udpOptions` over IP literals ("" = none).
fn optionsOf(address: []const u8, port: u16, packet_size_max: u32, buffer_size: u32, interface: []const u8, interface_index: u32) Error!udp_recv.Options {
    return udpOptions(&try Endpoint.parse(address, port), &try Endpoint.parse(interface, 0), interface_index, packet_size_max, buffer_size);
}

test "udp options follow spead2's overloads" {
    const any = try optionsOf("", 9000, 0, 0, "", 0);
    try testing.expectEqual(@as(u16, 9000), any.address.getPort());
    try testing.expectEqual(@as(u32, udp_recv.packet_size_max_default), any.packet_size_max);
    try testing.expectEqual(@as(u32, udp_recv.buffer_size_default), any.buffer_size);
    const bound = try optionsOf("0.0.0.0", 9000, 1500, 1 << 20, "127.0.0.1", 0);
    try testing.expect(bound.address.eql(try std.net.Address.parseIp("127.0.0.1", 9000)));
    const mc = try optionsOf("239.10.10.10", 8888, 0, 0, "10.0.0.5", 0);
    try testing.expect(mc.interface_v4 != null);
    const mc6 = try optionsOf("ff14::1234", 8888, 0, 0, "", 2);
    try testing.expectEqual(@as(u32, 2), mc6.interface_index);
    try testing.expectError(error.InvalidArgument, optionsOf("::1", 8888, 0, 0, "", 2));
    try testing.expectError(error.InvalidArgument, optionsOf("239.1.1.1", 8888, 0, 0, "::1", 0));
    try testing.expectError(error.InvalidArgument, optionsOf("239.1.1.1", 8888, 0, 0, "", 2));
    try testing.expectError(error.InvalidArgument, optionsOf("ff14::1234", 8888, 0, 0, "10.0.0.5", 0));
}

test "exports: pool flags word (prefer_huge with fallback, warn_on_empty), huge_pages stat" {
    var h: u32 = 0;
    var config = [_]u64{ 0, 65536, 4, 2, 0, memory_pool.flag_prefer_huge | memory_pool.flag_warn_on_empty };
    try expectStatus(.ok, createPool6(&config, &h));
    var values: [memory_pool.stat_count]u64 = undefined;
    var n: u32 = 0;
    try expectStatus(.ok, capi.spead_memory_pool_stats(h, &values, values.len, &n));
    try testing.expectEqual(@as(u32, memory_pool.stat_count), n);
    try testing.expectEqual(@as(u64, 2), values[@intFromEnum(memory_pool.Stat.allocated)]);
    try testing.expect(values[@intFromEnum(memory_pool.Stat.huge_pages)] <= 2);
    if (memory_pool.hugePageSize() == 0) try testing.expectEqual(@as(u64, 0), values[@intFromEnum(memory_pool.Stat.huge_pages)]);
    var name: [32]u8 = undefined;
    var len: u32 = 0;
    try expectStatus(.ok, capi.spead_memory_pool_stat_name(memory_pool.stat_count - 1, &name, name.len, &len));
    try testing.expectEqualStrings("huge_pages", name[0..len]);
    try expectStatus(.ok, capi.spead_memory_pool_destroy(h));
}
