//! Stable status codes at the C ABI. Every export returns one of these; the
//! numbers never change once published (ffi/status.ts mirrors them and a test
//! checks that the two agree).
const std = @import("std");

/// Every failure the library can report across the C ABI.
pub const Error = error{
    /// A handle that is zero, of the wrong kind, already destroyed or never issued.
    InvalidHandle,
    /// A caller buffer is shorter than the operation needs.
    BufferTooSmall,
    /// An argument is outside the range the operation accepts.
    InvalidArgument,
    /// A flavour that spead2 would refuse (version, pointer bits, address bits, bug_compat).
    InvalidFlavour,
    /// A fixed capacity (handle table, item count, queue) is exhausted.
    CapacityExceeded,
    /// Memory could not be obtained.
    OutOfMemory,
    /// Bytes that are not a valid SPEAD packet / descriptor.
    Malformed,
    /// Nothing to return right now (non-blocking pop on an empty ring).
    Empty,
    /// The stream has been stopped and has nothing more to give.
    Stopped,
    /// packet_size_max is too small for the heap (or below spead2's minimum).
    PacketTooSmall,
    /// A heap cnt that does not fit in the flavour's heap address bits.
    InvalidCnt,
    /// The send queue already holds heaps_max heaps.
    QueueFull,
    /// An operating-system call failed.
    SystemError,
    /// The operation is not valid in the object's current state.
    InvalidState,
};

/// Status codes, one per error plus OK. Values are part of the ABI.
pub const Status = enum(i32) {
    ok = 0,
    invalid_handle = -1,
    buffer_too_small = -2,
    invalid_argument = -3,
    invalid_flavour = -4,
    capacity_exceeded = -5,
    out_of_memory = -6,
    malformed = -7,
    empty = -8,
    stopped = -9,
    packet_too_small = -10,
    invalid_cnt = -11,
    queue_full = -12,
    system_error = -13,
    invalid_state = -14,
};

/// Maps an error to its status code; the switch is exhaustive so a new error
/// cannot be added without a code.
pub fn fromError(err: Error) Status {
    return switch (err) {
        error.InvalidHandle => .invalid_handle,
        error.BufferTooSmall => .buffer_too_small,
        error.InvalidArgument => .invalid_argument,
        error.InvalidFlavour => .invalid_flavour,
        error.CapacityExceeded => .capacity_exceeded,
        error.OutOfMemory => .out_of_memory,
        error.Malformed => .malformed,
        error.Empty => .empty,
        error.Stopped => .stopped,
        error.PacketTooSmall => .packet_too_small,
        error.InvalidCnt => .invalid_cnt,
        error.QueueFull => .queue_full,
        error.SystemError => .system_error,
        error.InvalidState => .invalid_state,
    };
}

/// Converts an error union result into the i32 returned by exports.
pub fn code(result: Error!void) i32 {
    if (result) |_| {
        return @intFromEnum(Status.ok);
    } else |err| {
        return @intFromEnum(fromError(err));
    }
}

test "every error maps to a distinct negative status" {
    const errors = @typeInfo(Error).error_set.?;
    var seen = std.AutoHashMap(i32, void).init(std.testing.allocator);
    defer seen.deinit();
    inline for (errors) |e| {
        const status = @intFromEnum(fromError(@field(Error, e.name)));
        try std.testing.expect(status < 0);
        try std.testing.expect(!seen.contains(status));
        try seen.put(status, {});
    }
    try std.testing.expectEqual(@as(usize, errors.len + 1), @typeInfo(Status).@"enum".fields.len);
}
