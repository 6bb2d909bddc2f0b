//! Generational handle tables. JS never holds a raw pointer to a native object:
//! it holds a u32 handle = (generation << index_bits) | index, with index 0
//! reserved so that 0 is never valid. A stale or forged handle is rejected with
//! error.InvalidHandle instead of dereferencing freed memory.
const std = @import("std");
const assert = std.debug.assert;
const Error = @import("status.zig").Error;

pub const index_bits = 16;
const index_mask: u32 = (1 << index_bits) - 1;
const generation_max: u32 = (1 << (32 - index_bits)) - 1;

/// A fixed-capacity table of `*T`. Thread-safe: I/O threads never touch it, but
/// JS may create and destroy from the main thread while a Worker also calls in.
pub fn Table(comptime T: type, comptime capacity: u32) type {
    comptime assert(capacity > 1);
    comptime assert(capacity <= index_mask + 1);
    return struct {
        const Self = @This();
        entries: [capacity]?*T = [_]?*T{null} ** capacity,
        generations: [capacity]u32 = [_]u32{1} ** capacity,
        free_hint: u32 = 1,
        count: u32 = 0,
        mutex: std.Thread.Mutex = .{},

        /// Stores `ptr` and returns its handle.
        pub fn insert(self: *Self, ptr: *T) Error!u32 {
            self.mutex.lock();
            defer self.mutex.unlock();
            var probe: u32 = 0;
            while (probe < capacity - 1) : (probe += 1) {
                const index = 1 + (self.free_hint - 1 + probe) % (capacity - 1);
                if (self.entries[index] == null) {
                    self.entries[index] = ptr;
                    self.free_hint = index;
                    self.count += 1;
                    assert(self.count < capacity);
                    return (self.generations[index] << index_bits) | index;
                }
            }
            return error.CapacityExceeded;
        }

        /// Returns the object of a live handle.
        pub fn get(self: *Self, handle: u32) Error!*T {
            self.mutex.lock();
            defer self.mutex.unlock();
            const index = try self.check(handle);
            return self.entries[index].?;
        }

        /// `remove` while holding `guard` (the lock an export file pairs with
        /// its lookups that take a reference), released before returning so
        /// the caller can stop and free the object outside it.
        pub fn removeUnder(self: *Self, guard: *std.Thread.Mutex, handle: u32) Error!*T {
            guard.lock();
            defer guard.unlock();
            return self.remove(handle);
        }

        /// Looks a handle up under an export file's guard and takes a
        /// reference (`T.retain`) before the guard is released, so a
        /// concurrent `removeUnder` cannot drop the last one meanwhile.
        /// The caller releases it.
        pub fn retainUnder(self: *Self, guard: *std.Thread.Mutex, handle: u32) Error!*T {
            guard.lock();
            defer guard.unlock();
            const ptr = try self.get(handle);
            const Retain = @TypeOf(T.retain);
            if (@typeInfo(@typeInfo(Retain).@"fn".return_type.?) == .error_union) try ptr.retain() else ptr.retain();
            return ptr;
        }

        /// Removes a live handle and returns its object; the handle becomes stale.
        pub fn remove(self: *Self, handle: u32) Error!*T {
            self.mutex.lock();
            defer self.mutex.unlock();
            const index = try self.check(handle);
            const ptr = self.entries[index].?;
            self.entries[index] = null;
            self.generations[index] = if (self.generations[index] == generation_max) 1 else self.generations[index] + 1;
            assert(self.count > 0);
            self.count -= 1;
            return ptr;
        }

        /// Copies up to `out.len` live handles into `out`; returns how many (for shutdown).
        pub fn liveHandles(self: *Self, out: []u32) usize {
            self.mutex.lock();
            defer self.mutex.unlock();
            var n: usize = 0;
            for (self.entries, 0..) |entry, index| {
                if (entry == null or n == out.len) continue;
                out[n] = (self.generations[index] << index_bits) | @as(u32, @intCast(index));
                n += 1;
            }
            return n;
        }

        fn check(self: *Self, handle: u32) Error!u32 {
            const index = handle & index_mask;
            if (index == 0 or index >= capacity) return error.InvalidHandle;
            if (self.entries[index] == null) return error.InvalidHandle;
            if (self.generations[index] != handle >> index_bits) return error.InvalidHandle;
            return index;
        }
    };
}

/// A handle table whose objects are leased for the length of a call and
/// retired by destroy: `retire` unlinks the handle (no new lease can find the
/// object), stops it (which must wake every blocking call inside), then waits
/// at most `wait_ms` for the leases in flight to be released. Past the bound
/// it returns `InvalidState` and the object is leaked rather than freed under
/// a caller. The one lifetime mechanism of every stream kind (zig/abi/recv.zig,
/// zig/abi/udp_send.zig).
pub fn LeaseTable(comptime T: type, comptime capacity: u32) type {
    return struct {
        const Self = @This();
        table: Table(T, capacity) = .{},
        users: [capacity]u32 = [_]u32{0} ** capacity,
        guard: std.Thread.Mutex = .{},

        /// An object held for one call; `release` it when the call leaves.
        pub const Lease = struct {
            owner: *Self,
            object: *T,
            slot: u32,

            pub fn release(self: Lease) void {
                self.owner.guard.lock();
                defer self.owner.guard.unlock();
                assert(self.owner.users[self.slot] > 0);
                self.owner.users[self.slot] -= 1;
            }
        };

        pub fn insert(self: *Self, ptr: *T) Error!u32 {
            return self.table.insert(ptr);
        }

        /// Looks the object up and keeps it alive (retire waits) until `Lease.release`.
        pub fn lease(self: *Self, handle: u32) Error!Lease {
            self.guard.lock();
            defer self.guard.unlock();
            const object = try self.table.get(handle);
            const slot = handle & index_mask;
            self.users[slot] += 1;
            return .{ .owner = self, .object = object, .slot = slot };
        }

        /// Unlinks, stops (`stop(object)`) and waits for the leases in flight; see the type.
        pub fn retire(self: *Self, handle: u32, comptime stop: fn (*T) void, wait_ms: u32) Error!*T {
            const object = blk: {
                self.guard.lock();
                defer self.guard.unlock();
                break :blk try self.table.remove(handle);
            };
            const slot = handle & index_mask;
            stop(object);
            var waited_ms: u32 = 0;
            while (true) : (waited_ms += 1) {
                self.guard.lock();
                const users = self.users[slot];
                self.guard.unlock();
                if (users == 0) return object;
                if (waited_ms >= wait_ms) return error.InvalidState;
                std.Thread.sleep(std.time.ns_per_ms);
            }
        }

        pub fn liveHandles(self: *Self, out: []u32) usize {
            return self.table.liveHandles(out);
        }
    };
}

test "handles are generational and reject stale, zero and forged values" {
    var table: Table(u64, 8) = .{};
    var a: u64 = 1;
    var b: u64 = 2;
    const ha = try table.insert(&a);
    const hb = try table.insert(&b);
    try std.testing.expect(ha != 0 and hb != 0 and ha != hb);
    try std.testing.expectEqual(&a, try table.get(ha));
    try std.testing.expectEqual(&a, try table.remove(ha));
    try std.testing.expectError(error.InvalidHandle, table.get(ha));
    try std.testing.expectError(error.InvalidHandle, table.remove(ha));
    try std.testing.expectError(error.InvalidHandle, table.get(0));
    try std.testing.expectError(error.InvalidHandle, table.get(0xffff_ffff));
    const hc = try table.insert(&a);
    try std.testing.expect(hc != ha);
    try std.testing.expectEqual(&b, try table.get(hb));
}

test "liveHandles lists exactly the live handles" {
    var table: Table(u8, 8) = .{};
    var x: u8 = 0;
    const ha = try table.insert(&x);
    const hb = try table.insert(&x);
    _ = try table.remove(ha);
    var out: [8]u32 = undefined;
    try std.testing.expectEqual(@as(usize, 1), table.liveHandles(&out));
    try std.testing.expectEqual(hb, out[0]);
    try std.testing.expectEqual(&x, try table.get(out[0]));
    try std.testing.expectEqual(@as(usize, 0), table.liveHandles(out[0..0]));
}

test "retainUnder takes a reference under the guard; removed handles are refused" {
    const Counted = struct {
        refs: u32 = 1,
        fn retain(self: *@This()) void {
            self.refs += 1;
        }
    };
    var table: Table(Counted, 4) = .{};
    var guard: std.Thread.Mutex = .{};
    var object: Counted = .{};
    const h = try table.insert(&object);
    try std.testing.expectEqual(&object, try table.retainUnder(&guard, h));
    try std.testing.expectEqual(@as(u32, 2), object.refs);
    _ = try table.removeUnder(&guard, h);
    try std.testing.expectError(error.InvalidHandle, table.retainUnder(&guard, h));
    try std.testing.expectEqual(@as(u32, 2), object.refs);
}

test "table reports exhaustion" {
    var table: Table(u8, 4) = .{};
    var x: u8 = 0;
    _ = try table.insert(&x);
    _ = try table.insert(&x);
    _ = try table.insert(&x);
    try std.testing.expectError(error.CapacityExceeded, table.insert(&x));
}

test "leases keep an object until released; retire waits for them, bounded" {
    const Obj = struct {
        stopped: bool = false,
        fn stop(self: *@This()) void {
            self.stopped = true;
        }
    };
    var table: LeaseTable(Obj, 8) = .{};
    var obj: Obj = .{};
    const h = try table.insert(&obj);
    const held = try table.lease(h);
    try std.testing.expectEqual(&obj, held.object);
    // A lease still out: retire stops the object, then gives up after the bound.
    try std.testing.expectError(error.InvalidState, table.retire(h, Obj.stop, 2));
    try std.testing.expect(obj.stopped);
    try std.testing.expectError(error.InvalidHandle, table.lease(h));
    held.release();
    const h2 = try table.insert(&obj);
    try std.testing.expectEqual(&obj, try table.retire(h2, Obj.stop, 1000));
    try std.testing.expectError(error.InvalidHandle, table.retire(h2, Obj.stop, 1000));
}
