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

    /// Arms the doorbell for one call; rings at once if `ready`.
    pub fn arm(self: *Doorbell, handle: u32, ready: bool) void {
        self.mutex.lock();
        self.armed = true;
        self.mutex.unlock();
        if (ready) self.ring(handle);
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
