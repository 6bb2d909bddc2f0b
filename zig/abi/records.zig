//! Records that cross the C ABI: `extern struct`s with their layout asserted
//! at compile time. `zig build gen` publishes each one (listed in `all`) as a
//! TS layout with accessors (ffi/abi.gen.ts) and a C struct (include/spead.h).
//! Each record has a `doc` declaration: one line for both.
const std = @import("std");
const send_udp = @import("../send/udp.zig");
const reassembly = @import("../recv/reassembly.zig");

/// Every record published by the generator.
pub const all = .{
    RecvStreamConfig,
    HeapDescription,
    ItemDescription,
    MemoryPoolConfig,
    SendStreamConfig,
    HeapRecord,
    SendCompletion,
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
};

/// `spead_recv_heap_describe` writes one of these, then `n_items` `ItemDescription`s.
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
    n_items: u32,
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

comptime {
    assertLayout(RecvStreamConfig, 48, .{
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
        .n_items = 64,
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
        .n_items = 4,
        .cnt = 8,
        .substream_index = 16,
        .heap_address_bits = 20,
        .rate = 24,
        .repeat_pointers = 32,
        .reserved = 36,
    });
    assertLayout(SendCompletion, 32, .{ .token = 0, .bytes_sent = 8, .status = 16, .errno = 24 });
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
