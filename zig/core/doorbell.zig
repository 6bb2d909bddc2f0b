//! The Bun doorbell of a native queue (a receive stream's heap ring, a chunk
//! ring, a send stream's completions): a C callback, armed by JS for one call, that a native thread rings
//! when something is ready. Under Deno it stays unset (Deno waits with
//! nonblocking calls instead).
const std = @import("std");

/// Called with the queue's handle from a native thread.
pub const NotifyFn = *const fn (handle: u32) callconv(.c) void;

pub const Doorbell = struct {
    mutex: std.Thread.Mutex = .{},
    callback: ?NotifyFn = null,
    armed: bool = false,

    /// Sets (or with null clears) the callback. Once this returns, a cleared
    /// callback is not running and will not be called again.
    pub fn set(self: *Doorbell, callback: ?NotifyFn) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        self.callback = callback;
        self.armed = false;
    }

    /// Arms the doorbell for one call, then rings at once if `isReady(queue)`
    /// says something is already waiting. The order matters: a producer that
    /// publishes after the check but before the arming would ring a disarmed
    /// bell, and the wake-up would be lost (JS would sleep until its fallback
    /// timer: about a millisecond per heap under Bun in a `for await` loop).
    /// Arming first means such a producer's ring is the wake-up.
    pub fn arm(self: *Doorbell, handle: u32, queue: anytype, comptime isReady: fn (@TypeOf(queue)) bool) void {
        self.mutex.lock();
        self.armed = true;
        self.mutex.unlock();
        if (isReady(queue)) self.ring(handle);
    }

    /// Calls the callback if it is set and armed, disarming it.
    pub fn ring(self: *Doorbell, handle: u32) void {
        self.mutex.lock();
        defer self.mutex.unlock();
        const callback = self.callback orelse return;
        if (!self.armed) return;
        self.armed = false;
        callback(handle);
    }
};

const testing = std.testing;

var test_rings: u32 = 0;
fn testNotify(handle: u32) callconv(.c) void {
    std.debug.assert(handle == 7);
    test_rings += 1;
}

const RacingQueue = struct {
    bell: *Doorbell,
    /// The producer publishes and rings while the consumer is looking: the
    /// consumer's check still sees an empty queue.
    fn isReady(self: *RacingQueue) bool {
        self.bell.ring(7);
        return false;
    }
};

test "a producer that publishes while arm looks is not lost" {
    var bell: Doorbell = .{};
    bell.set(testNotify);
    test_rings = 0;
    var queue: RacingQueue = .{ .bell = &bell };
    bell.arm(7, &queue, RacingQueue.isReady);
    try testing.expectEqual(@as(u32, 1), test_rings);
    // Disarmed by that ring: a second ring without arming does nothing.
    bell.ring(7);
    try testing.expectEqual(@as(u32, 1), test_rings);
}
