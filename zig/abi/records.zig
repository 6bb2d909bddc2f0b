//! Records that cross the C ABI: `extern struct`s with their layout asserted
//! at compile time. `zig build gen` publishes each one (listed in `all`) as a
//! TS layout with accessors (ffi/abi.gen.ts) and a C struct (include/spead.h).
//! Each record has a `doc` declaration: one line for both.
const std = @import("std");
const send_udp = @import("../send/udp.zig");
const reassembly = @import("../recv/reassembly.zig");
const descriptor = @import("../send/descriptor.zig");
const Error = @import("../core/status.zig").Error;

/// Every record published by the generator.
pub const all = .{
    RecvStreamConfig,
    HeapDescription,
    ItemDescription,
    MemoryPoolConfig,
    SendStreamConfig,
    HeapRecord,
    SendCompletion,
    Endpoint,
    UdpReaderInfo,
    TcpReaderInfo,
    BufferInfo,
    ChunkInfo,
    DescriptorFields,
    DescriptorDecoded,
    HeapEncoding,
    ChunkSizes,
    ChunkRingState,
    ChunkRuleInfo,
    ProcessCounters,
    CntSequence,
};

/// `spead_recv_stream_create` (docs/ABI.md "Stream"): spead2's StreamConfig and RingStreamConfig.
pub const RecvStreamConfig = extern struct {
    pub const doc = "Receive stream config: spead2's StreamConfig and RingStreamConfig; booleans are 0/1";
    /// Live heaps per substream (>= 1).
    heaps_max: u32,
    substreams: u32,
    bug_compat: u32,
    allow_out_of_order: u32,
    allow_unsized_heaps: u32,
    stop_on_stop_item: u32,
    /// Capacity of the ring of finished heaps (>= 1).
    ring_heaps: u32,
    contiguous_only: u32,
    /// Memory pool handle; 0 = the allocator of `allocator_flags`.
    memory_pool: u32,
    /// Longest heap accepted, in MiB; 0 = 256 MiB.
    heap_length_max_mib: u32,
    /// 0 = malloc, 1 = mmap preferring huge pages, 2 = mmap.
    allocator_flags: u32,
    /// Core the reader threads pin themselves to; 0xFFFFFFFF = none.
    reader_core: u32,
    /// How payloads are copied into heaps: 0 = memcpy, 1 = non-temporal stores (spead2's MEMCPY_NONTEMPORAL).
    memcpy: u32,
};

/// `spead_recv_heap_describe` writes one of these, then `item_count` `ItemDescription`s.
pub const HeapDescription = reassembly.HeapDescription;
pub const ItemDescription = reassembly.ItemDescription;

/// `spead_memory_pool_create` (docs/ABI.md "Memory pools").
pub const MemoryPoolConfig = extern struct {
    pub const doc = "Memory pool config: spead2's MemoryPool(lower, upper, max_free, initial, low_water) and flags";
    lower: u64,
    upper: u64,
    free_max: u64,
    initial: u64,
    low_water: u64,
    /// bit 0 prefer huge pages, bit 1 warn when empty.
    flags: u64,
};

/// `spead_udp_send_stream_create` (docs/ABI.md "UDP send stream"). Numbers are
/// f64 as JS has them: the core refuses fractions and out-of-range values.
pub const SendStreamConfig = extern struct {
    pub const doc = "UDP send stream config: spead2's send.StreamConfig and UdpStream options (f64, whole numbers where a count is meant)";
    packet_size_max: f64,
    /// Bytes per second; 0 = unlimited.
    rate: f64,
    burst_size: f64,
    heaps_max: f64,
    burst_rate_ratio: f64,
    /// SO_SNDBUF; 0 = the OS default.
    buffer_size: f64,
    /// -1 = no multicast socket options.
    ttl: f64,
    interface_index: f64,
    /// bit 0: never use UDP GSO.
    flags: f64,
    /// Core the I/O thread pins itself to; -1 = none.
    io_core: f64,
};

/// One heap of a `spead_udp_send_stream_send` group.
pub const HeapRecord = extern struct {
    pub const doc = "One heap of a send group: its item records and how to send it";
    /// Index of the heap's first item record in the group's item table.
    first_item: u32,
    item_count: u32,
    /// 2^64-1 = the next automatic cnt.
    cnt: u64,
    substream_index: u32,
    heap_address_bits: u32,
    /// Bytes per second for this heap; < 0 = the stream's rate, 0 = unlimited.
    rate: f64,
    repeat_pointers: u32,
    /// Must be 0.
    reserved: u32,
};

/// A finished send group, as `spead_udp_send_stream_poll` reports it.
pub const SendCompletion = send_udp.Completion;

/// An IP endpoint (`spead_udp_send_stream_create`, `spead_recv_stream_add_udp_reader`):
/// TS writes it from a parsed IP literal.
pub const Endpoint = extern struct {
    pub const doc = "An IP endpoint: family 4 or 6 (0 = none / any address), address in network byte order, port";
    /// 0 = none (an unset interface; the unspecified IPv4 address for a reader), 4 = IPv4, 6 = IPv6.
    family: u32,
    port: u32,
    /// IPv4: the first 4 bytes; IPv6: all 16.
    address: [16]u8,
    /// IPv6: the address's scope (sin6_scope_id: the interface of a
    /// link-local address, as in "fe80::1%2"). IPv4: must be 0.
    scope_id: u32,
    /// Must be 0.
    reserved: u32,

    pub const family_none: u32 = 0;
    pub const family_ip4: u32 = 4;
    pub const family_ip6: u32 = 6;

    /// The address (`family` 4 or 6); anything else from JS or C is `invalid_argument`.
    pub fn toAddress(self: *const Endpoint) Error!std.net.Address {
        if (self.port > std.math.maxInt(u16) or self.reserved != 0) return error.InvalidArgument;
        const port: u16 = @intCast(self.port);
        return switch (self.family) {
            family_ip4 => if (self.scope_id != 0) error.InvalidArgument else std.net.Address.initIp4(self.address[0..4].*, port),
            family_ip6 => std.net.Address.initIp6(self.address, port, 0, self.scope_id),
            else => error.InvalidArgument,
        };
    }

    /// The record of an IP literal ("" = family 0), for tests.
    pub fn parse(text: []const u8, port: u16) Error!Endpoint {
        if (text.len == 0) return fromAddress(std.net.Address.initIp4(.{ 0, 0, 0, 0 }, port)).withFamily(family_none);
        return fromAddress(std.net.Address.parseIp(text, port) catch return error.InvalidArgument);
    }

    fn withFamily(self: Endpoint, family: u32) Endpoint {
        var e = self;
        e.family = family;
        return e;
    }

    /// The record of an address.
    pub fn fromAddress(address: std.net.Address) Endpoint {
        var e: Endpoint = .{ .family = family_none, .port = address.getPort(), .address = [_]u8{0} ** 16, .scope_id = 0, .reserved = 0 };
        switch (address.any.family) {
            std.posix.AF.INET => {
                e.family = family_ip4;
                e.address[0..4].* = @bitCast(address.in.sa.addr);
            },
            std.posix.AF.INET6 => {
                e.family = family_ip6;
                e.address = address.in6.sa.addr;
                e.scope_id = address.in6.sa.scope_id;
            },
            else => unreachable,
        }
        return e;
    }
};

/// What `spead_recv_stream_add_udp_reader` reports about the reader it started.
pub const UdpReaderInfo = extern struct {
    pub const doc = "A UDP reader as started: bound port, socket receive buffer, GRO (0/1), buffer size forced past rmem_max (0/1)";
    port: u32,
    /// SO_RCVBUF as the kernel reports it.
    buffer_size: u32,
    gro: u32,
    buffer_size_forced: u32,
};

/// What `spead_recv_stream_add_tcp_reader` reports.
pub const TcpReaderInfo = extern struct {
    pub const doc = "A TCP reader as started: listening port, socket receive buffer";
    port: u32,
    /// SO_RCVBUF as the kernel reports it.
    buffer_size: u32,
};

/// What `spead_buffer_alloc` returns.
pub const BufferInfo = extern struct {
    pub const doc = "A native buffer: its address, usable size (the size asked for, page-rounded), handle and whether it is on huge pages (0/1)";
    address: u64,
    mapped_size: u64,
    handle: u32,
    huge: u32,
};

/// What `spead_chunk_info` returns (the chunk's memory, while JS holds it).
pub const ChunkInfo = extern struct {
    pub const doc = "A chunk's memory while JS holds it: data, present flags and extra areas (address 0 when empty), chunk id, stream id";
    data_address: u64,
    data_size: u64,
    present_address: u64,
    present_size: u64,
    extra_address: u64,
    extra_size: u64,
    chunk_id: i64,
    stream_id: u64,
};

/// `spead_descriptor_encode`'s input: the fields of spead2's encode_descriptor,
/// the variable parts by address (bytes or u64 pairs valid during the call).
pub const DescriptorFields = extern struct {
    pub const doc = "A descriptor to encode: id, flavour, and the addresses and lengths of its name, description, format and shape pairs, numpy header";
    id: u64,
    name_address: u64,
    description_address: u64,
    /// `format_count` (ascii code, bits) u64 pairs; 8-byte aligned.
    format_address: u64,
    /// `shape_count` (flags, size) u64 pairs, flags bit 0 = variable; 8-byte aligned.
    shape_address: u64,
    dtype_address: u64,
    name_len: u32,
    description_len: u32,
    format_count: u32,
    shape_count: u32,
    /// 0 = no numpy header (ID 0x15 absent).
    dtype_len: u32,
    heap_address_bits: u32,
    bug_compat: u32,
    /// Must be 0.
    reserved: u32,
};

/// `spead_descriptor_decode` writes one of these, then its pairs and strings.
pub const DescriptorDecoded = descriptor.DescriptorDecoded;

/// What `spead_heap_encoded_size` writes.
pub const HeapEncoding = extern struct {
    pub const doc = "A heap's encoding: the bytes of all its packets (headers included) and how many packets";
    encoded_size: u64,
    packet_count: u64,
};

/// `spead_chunk_create`'s input (each size at most 2^40 bytes; data and present at least 1).
pub const ChunkSizes = extern struct {
    pub const doc = "A chunk to create: the bytes of its data, present flags and extra areas";
    data_size: u64,
    present_size: u64,
    /// 0 = no extra area.
    extra_size: u64,
};

/// What `spead_chunk_ring_size` writes.
pub const ChunkRingState = extern struct {
    pub const doc = "A chunk ring now: chunks inside, capacity, stopped (0/1)";
    chunk_count: u32,
    capacity: u32,
    stopped: u32,
};

/// What `spead_chunk_rule_check` writes about a valid place rule.
pub const ChunkRuleInfo = extern struct {
    pub const doc = "A checked place rule: heaps per chunk, and the bytes of a chunk's data and extra areas";
    /// Heaps per chunk.
    heap_count: u64,
    data_size: u64,
    extra_size: u64,
};

/// What `spead_process_stats` writes (2^64-1 where the platform cannot say).
pub const ProcessCounters = extern struct {
    pub const doc = "Process counters: minor and major page faults (getrusage), open file descriptors, threads (2^64-1 = unknown)";
    minor_fault_count: u64,
    major_fault_count: u64,
    fd_count: u64,
    thread_count: u64,
};

/// `spead_udp_send_stream_set_cnt_sequence`'s input.
pub const CntSequence = extern struct {
    pub const doc = "An automatic heap cnt sequence: the next cnt and the step (not 0)";
    next: u64,
    step: u64,
};

comptime {
    assertLayout(Endpoint, 32, .{ .family = 0, .port = 4, .address = 8, .scope_id = 24, .reserved = 28 });
    assertLayout(UdpReaderInfo, 16, .{ .port = 0, .buffer_size = 4, .gro = 8, .buffer_size_forced = 12 });
    assertLayout(TcpReaderInfo, 8, .{ .port = 0, .buffer_size = 4 });
    assertLayout(BufferInfo, 24, .{ .address = 0, .mapped_size = 8, .handle = 16, .huge = 20 });
    assertLayout(ChunkInfo, 64, .{
        .data_address = 0,
        .data_size = 8,
        .present_address = 16,
        .present_size = 24,
        .extra_address = 32,
        .extra_size = 40,
        .chunk_id = 48,
        .stream_id = 56,
    });
    assertLayout(DescriptorFields, 80, .{
        .id = 0,
        .name_address = 8,
        .description_address = 16,
        .format_address = 24,
        .shape_address = 32,
        .dtype_address = 40,
        .name_len = 48,
        .description_len = 52,
        .format_count = 56,
        .shape_count = 60,
        .dtype_len = 64,
        .heap_address_bits = 68,
        .bug_compat = 72,
        .reserved = 76,
    });
    assertLayout(DescriptorDecoded, 80, .{
        .id = 0,
        .format_count = 8,
        .shape_count = 16,
        .name_offset = 24,
        .name_len = 32,
        .description_offset = 40,
        .description_len = 48,
        .dtype_offset = 56,
        .dtype_len = 64,
        .heap_address_bits = 72,
    });
    assertLayout(RecvStreamConfig, 52, .{
        .heaps_max = 0,
        .substreams = 4,
        .bug_compat = 8,
        .allow_out_of_order = 12,
        .allow_unsized_heaps = 16,
        .stop_on_stop_item = 20,
        .ring_heaps = 24,
        .contiguous_only = 28,
        .memory_pool = 32,
        .heap_length_max_mib = 36,
        .allocator_flags = 40,
        .reader_core = 44,
        .memcpy = 48,
    });
    assertLayout(HeapDescription, 72, .{
        .cnt = 0,
        .heap_length = 8,
        .received_length = 16,
        .flags = 24,
        .heap_address_bits = 32,
        .bug_compat = 40,
        .payload_address = 48,
        .payload_size = 56,
        .item_count = 64,
    });
    assertLayout(ItemDescription, 32, .{ .id = 0, .is_immediate = 8, .value = 16, .length = 24 });
    assertLayout(MemoryPoolConfig, 48, .{ .lower = 0, .upper = 8, .free_max = 16, .initial = 24, .low_water = 32, .flags = 40 });
    assertLayout(SendStreamConfig, 80, .{
        .packet_size_max = 0,
        .rate = 8,
        .burst_size = 16,
        .heaps_max = 24,
        .burst_rate_ratio = 32,
        .buffer_size = 40,
        .ttl = 48,
        .interface_index = 56,
        .flags = 64,
        .io_core = 72,
    });
    assertLayout(HeapRecord, 40, .{
        .first_item = 0,
        .item_count = 4,
        .cnt = 8,
        .substream_index = 16,
        .heap_address_bits = 20,
        .rate = 24,
        .repeat_pointers = 32,
        .reserved = 36,
    });
    assertLayout(SendCompletion, 32, .{ .token = 0, .bytes_sent = 8, .status = 16, .errno = 24 });
    assertLayout(HeapEncoding, 16, .{ .encoded_size = 0, .packet_count = 8 });
    assertLayout(ChunkSizes, 24, .{ .data_size = 0, .present_size = 8, .extra_size = 16 });
    assertLayout(ChunkRingState, 12, .{ .chunk_count = 0, .capacity = 4, .stopped = 8 });
    assertLayout(ChunkRuleInfo, 24, .{ .heap_count = 0, .data_size = 8, .extra_size = 16 });
    assertLayout(ProcessCounters, 32, .{ .minor_fault_count = 0, .major_fault_count = 8, .fd_count = 16, .thread_count = 24 });
    assertLayout(CntSequence, 16, .{ .next = 0, .step = 8 });
}

/// The record's name in TS: its `abi_name` declaration, else the Zig name.
pub fn tsName(comptime R: type) []const u8 {
    if (@hasDecl(R, "abi_name")) return R.abi_name;
    const full = @typeName(R);
    return full[(std.mem.lastIndexOfScalar(u8, full, '.') orelse return full) + 1 ..];
}

/// The record's name in C: snake_case of the Zig name (`spead_` is prefixed by the generator).
pub fn cName(comptime R: type) []const u8 {
    return comptime blk: {
        const name = tsName(R);
        var out: []const u8 = "";
        for (name, 0..) |ch, i| {
            if (std.ascii.isUpper(ch)) {
                out = out ++ (if (i == 0) "" else "_") ++ .{std.ascii.toLower(ch)};
            } else out = out ++ .{ch};
        }
        break :blk out;
    };
}

/// Asserts a record's size and field offsets (the layout both sides rely on).
pub fn assertLayout(comptime R: type, comptime size: usize, comptime offsets: anytype) void {
    comptime {
        if (@typeInfo(R).@"struct".layout != .@"extern") @compileError(@typeName(R) ++ " must be an extern struct");
        if (@sizeOf(R) != size) @compileError(std.fmt.comptimePrint("{s}: size {d}, expected {d}", .{ @typeName(R), @sizeOf(R), size }));
        for (std.meta.fields(@TypeOf(offsets))) |f| {
            if (@offsetOf(R, f.name) != @field(offsets, f.name)) {
                @compileError(std.fmt.comptimePrint("{s}.{s}: offset {d}, expected {d}", .{ @typeName(R), f.name, @offsetOf(R, f.name), @field(offsets, f.name) }));
            }
        }
    }
}

test "endpoint records: both families, and what JS or C may get wrong" {
    const v4 = try std.net.Address.parseIp("127.0.0.1", 8888);
    const e4 = Endpoint.fromAddress(v4);
    try std.testing.expectEqual(Endpoint.family_ip4, e4.family);
    try std.testing.expectEqualSlices(u8, &.{ 127, 0, 0, 1 }, e4.address[0..4]);
    try std.testing.expect((try e4.toAddress()).eql(v4));
    const v6 = try std.net.Address.parseIp("fe80::1%2", 9000);
    try std.testing.expect((try Endpoint.fromAddress(v6).toAddress()).eql(v6));
    var bad = e4;
    bad.port = 70000;
    try std.testing.expectError(error.InvalidArgument, bad.toAddress());
    bad = e4;
    bad.family = 5;
    try std.testing.expectError(error.InvalidArgument, bad.toAddress());
    bad = e4;
    bad.scope_id = 2;
    try std.testing.expectError(error.InvalidArgument, bad.toAddress());
    bad = e4;
    bad.reserved = 1;
    try std.testing.expectError(error.InvalidArgument, bad.toAddress());
}
