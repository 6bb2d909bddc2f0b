//! SPEAD-64-XX flavours: heap address bits and spead2's bug_compat flags.
//! Only version 4 with 64-bit item pointers exists in practice (spead2 refuses
//! anything else), so a flavour is fully described by two small numbers.
const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;

pub const bug_compat_descriptor_widths: u8 = 1;
pub const bug_compat_shape_bit_1: u8 = 2;
pub const bug_compat_swap_endian: u8 = 4;
pub const bug_compat_pyspead_0_5_2: u8 = 7;

pub const immediate_mask: u64 = 1 << 63;

pub const Flavour = struct {
    heap_address_bits: u8 = 40,
    bug_compat: u8 = 0,

    /// Validates raw values coming from JS or from a packet header.
    pub fn init(version: u32, item_pointer_bits: u32, heap_address_bits: u32, bug_compat: u32) Error!Flavour {
        if (version != 4) return error.InvalidFlavour;
        if (item_pointer_bits != 64) return error.InvalidFlavour;
        if (heap_address_bits == 0 or heap_address_bits >= 64) return error.InvalidFlavour;
        if (heap_address_bits % 8 != 0) return error.InvalidFlavour;
        if (bug_compat & ~@as(u32, bug_compat_pyspead_0_5_2) != 0) return error.InvalidFlavour;
        return .{ .heap_address_bits = @intCast(heap_address_bits), .bug_compat = @intCast(bug_compat) };
    }

    pub fn assertValid(self: Flavour) void {
        assert(self.heap_address_bits > 0);
        assert(self.heap_address_bits < 64);
        assert(self.heap_address_bits % 8 == 0);
        assert(self.bug_compat & ~bug_compat_pyspead_0_5_2 == 0);
    }

    /// Bytes of the address/immediate field (header byte 3).
    pub fn addressBytes(self: Flavour) u8 {
        return self.heap_address_bits / 8;
    }

    /// Bytes of mode bit + item ID (header byte 2).
    pub fn idBytes(self: Flavour) u8 {
        return 8 - self.addressBytes();
    }

    pub fn addressMask(self: Flavour) u64 {
        return (@as(u64, 1) << @intCast(self.heap_address_bits)) - 1;
    }

    pub fn idMask(self: Flavour) u64 {
        return (@as(u64, 1) << @intCast(63 - @as(u32, self.heap_address_bits))) - 1;
    }

    pub fn encodeImmediate(self: Flavour, id: u64, value: u64) u64 {
        assert(id & ~self.idMask() == 0);
        assert(value & ~self.addressMask() == 0);
        return immediate_mask | (id << @intCast(self.heap_address_bits)) | value;
    }

    pub fn encodeAddress(self: Flavour, id: u64, address: u64) u64 {
        assert(id & ~self.idMask() == 0);
        assert(address & ~self.addressMask() == 0);
        return (id << @intCast(self.heap_address_bits)) | address;
    }

    pub fn pointerIsImmediate(pointer: u64) bool {
        return pointer & immediate_mask != 0;
    }

    pub fn pointerId(self: Flavour, pointer: u64) u64 {
        return (pointer >> @intCast(self.heap_address_bits)) & self.idMask();
    }

    pub fn pointerValue(self: Flavour, pointer: u64) u64 {
        return pointer & self.addressMask();
    }
};

test "flavour validation follows spead2" {
    try std.testing.expectError(error.InvalidFlavour, Flavour.init(5, 64, 40, 0));
    try std.testing.expectError(error.InvalidFlavour, Flavour.init(4, 32, 40, 0));
    try std.testing.expectError(error.InvalidFlavour, Flavour.init(4, 64, 0, 0));
    try std.testing.expectError(error.InvalidFlavour, Flavour.init(4, 64, 64, 0));
    try std.testing.expectError(error.InvalidFlavour, Flavour.init(4, 64, 41, 0));
    try std.testing.expectError(error.InvalidFlavour, Flavour.init(4, 64, 40, 8));
    var hab: u32 = 8;
    while (hab <= 56) : (hab += 8) {
        const f = try Flavour.init(4, 64, hab, 7);
        f.assertValid();
        try std.testing.expectEqual(@as(u8, 8), f.addressBytes() + f.idBytes());
    }
}

test "pointer encoding round-trips (64-40 and 64-48)" {
    const f40 = try Flavour.init(4, 64, 40, 0);
    const p = f40.encodeImmediate(0x1600, 0x12_3456_789a);
    try std.testing.expect(Flavour.pointerIsImmediate(p));
    try std.testing.expectEqual(@as(u64, 0x1600), f40.pointerId(p));
    try std.testing.expectEqual(@as(u64, 0x12_3456_789a), f40.pointerValue(p));
    const f48 = try Flavour.init(4, 64, 48, 0);
    // V3: immediate item 0x2345 = 0x7654 -> a3 45 00 00 00 00 76 54
    try std.testing.expectEqual(@as(u64, 0xa345_0000_0000_7654), f48.encodeImmediate(0x2345, 0x7654));
    try std.testing.expectEqual(@as(u64, 0x2345_0000_0000_00ae), f48.encodeAddress(0x2345, 0xae));
    try std.testing.expectEqual(@as(u64, 0x7fff), f48.idMask());
}
