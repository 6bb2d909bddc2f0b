//! Send rate limiting, spead2's scheme (doc/dev-send-rate-limit.rst):
//!
//! - packets go out in bursts of `burst_size` bytes with no sleep between them;
//! - two lower bounds for the next burst are kept: `send_time` advances by the
//!   burst's size at the requested rate regardless of when it really went out,
//!   and `send_time_burst` is when it really went out plus its size at
//!   `rate × burst_rate_ratio`. Waiting for the later of the two means an
//!   oversleep is caught up at the burst rate, never faster;
//! - after the sender ran out of work, `send_time` is moved up so that the idle
//!   time is not "caught up" as a burst;
//! - times are integer nanoseconds plus an f64 fraction in [0, 1), so that the
//!   per-burst rounding does not accumulate into a rate error.
//!
//! The limiter never reads a clock itself: callers pass a clock with `now()`
//! (nanoseconds, i64), which lets tests drive it with a fake one.
const std = @import("std");
const assert = std.debug.assert;

/// A time in nanoseconds with sub-nanosecond precision.
pub const PreciseTime = struct {
    coarse_ns: i64 = 0,
    /// Always in [0, 1).
    correction: f64 = 0,

    pub fn init(ns: i64) PreciseTime {
        return .{ .coarse_ns = ns, .correction = 0 };
    }

    /// Adds a non-negative duration.
    pub fn add(self: *PreciseTime, delta_ns: f64) void {
        assert(delta_ns >= 0);
        assert(delta_ns <= delta_max_ns);
        self.correction += delta_ns;
        const whole = @floor(self.correction);
        self.coarse_ns +|= @as(i64, @intFromFloat(whole));
        self.correction -= whole;
        assert(self.correction >= 0);
        assert(self.correction < 1);
    }

    pub fn lessThan(a: PreciseTime, b: PreciseTime) bool {
        if (a.coarse_ns != b.coarse_ns) return a.coarse_ns < b.coarse_ns;
        return a.correction < b.correction;
    }

    pub fn max(a: PreciseTime, b: PreciseTime) PreciseTime {
        return if (lessThan(a, b)) b else a;
    }
};

/// Largest duration ever added (about 3 years); callers keep rates above
/// `rate_min` so one burst never waits this long.
pub const delta_max_ns: f64 = 1e17;
/// Smallest non-zero rate (bytes/s) accepted by the senders.
pub const rate_min: f64 = 1e-3;

/// Nanoseconds per byte at `rate` bytes/s; 0 means unlimited.
pub fn waitPerByte(rate: f64) f64 {
    assert(rate >= 0);
    assert(!std.math.isNan(rate));
    if (rate == 0) return 0;
    assert(rate >= rate_min);
    return 1e9 / rate;
}

pub const RateLimiter = struct {
    burst_size: u64,
    burst_rate_ratio: f64,
    /// Earliest time for the next burst according to the burst rate.
    send_time_burst: PreciseTime = .{},
    /// Earliest time for the next burst according to the standard rate.
    send_time: PreciseTime = .{},
    /// A sleep was requested and has not ended yet.
    must_sleep: bool = false,
    /// Bytes since the send times were last advanced.
    rate_bytes: u64 = 0,
    /// What those bytes cost at their (per-heap) rates.
    rate_wait_ns: f64 = 0,

    pub fn init(burst_size: u64, burst_rate_ratio: f64) RateLimiter {
        assert(burst_rate_ratio >= 1);
        assert(std.math.isFinite(burst_rate_ratio));
        return .{ .burst_size = burst_size, .burst_rate_ratio = burst_rate_ratio };
    }

    /// Call before producing a packet. Returns null when a packet may go now,
    /// or the time (ns) to sleep until; keep calling after the sleep.
    pub fn check(self: *RateLimiter, clock: anytype) ?i64 {
        if (self.must_sleep) {
            const now = clock.now();
            if (now < self.send_time_burst.coarse_ns) return self.send_time_burst.coarse_ns;
            self.must_sleep = false;
        }
        if (self.rate_bytes >= self.burst_size) {
            const now = clock.now();
            const target = self.updateSendTimes(now);
            if (now < target) {
                self.must_sleep = true;
                assert(self.send_time_burst.coarse_ns == target);
                return target;
            }
        }
        return null;
    }

    /// Call after producing a packet of `bytes` at `wait_per_byte_ns`.
    pub fn account(self: *RateLimiter, bytes: u64, wait_per_byte_ns: f64) void {
        assert(wait_per_byte_ns >= 0);
        self.rate_bytes += bytes;
        self.rate_wait_ns += @as(f64, @floatFromInt(bytes)) * wait_per_byte_ns;
    }

    fn updateSendTimes(self: *RateLimiter, now: i64) i64 {
        self.send_time_burst.add(self.rate_wait_ns / self.burst_rate_ratio);
        self.send_time.add(self.rate_wait_ns);
        self.rate_bytes = 0;
        self.rate_wait_ns = 0;
        // send_time_burst records when this burst actually went out (as well
        // as we know), even if that is later than the target.
        const target = PreciseTime.max(self.send_time_burst, self.send_time);
        self.send_time_burst = PreciseTime.max(PreciseTime.init(now), target);
        return target.coarse_ns;
    }

    /// Call when work arrives after the sender had run out of it: moves
    /// `send_time` up so that the next packet is due now, not early.
    pub fn resumeAfterIdle(self: *RateLimiter, now: i64) void {
        assert(self.rate_wait_ns <= delta_max_ns);
        const wait: i64 = @intFromFloat(self.rate_wait_ns);
        const backdate = now -| wait;
        self.send_time = PreciseTime.max(self.send_time, PreciseTime.init(backdate));
    }
};

/// The real clock: CLOCK_MONOTONIC in nanoseconds.
pub const MonotonicClock = struct {
    pub fn now(_: MonotonicClock) i64 {
        const ts = std.posix.clock_gettime(.MONOTONIC) catch unreachable;
        return @as(i64, ts.sec) * std.time.ns_per_s + ts.nsec;
    }
};

// ---------------------------------------------------------------------------
// Tests, with a fake clock.

const testing = std.testing;

const FakeClock = struct {
    t: i64,
    reads: u64 = 0,

    pub fn now(self: *FakeClock) i64 {
        self.reads += 1;
        return self.t;
    }
};

/// Sends packets of `packet` bytes as fast as the limiter allows, sleeping
/// exactly as long as asked (plus `oversleep_ns` on sleep number
/// `oversleep_at`). Records the start time of each burst.
const Sim = struct {
    limiter: RateLimiter,
    clock: FakeClock,
    sleeps: u64 = 0,

    fn run(sim: *Sim, packets: u64, packet: u64, wait_per_byte_ns: f64, oversleep_at: u64, oversleep_ns: i64, starts: ?[]i64) void {
        var sent: u64 = 0;
        var guard: u64 = 0;
        while (sent < packets) : (guard += 1) {
            assert(guard < 4 * packets + 10);
            if (sim.limiter.check(&sim.clock)) |until| {
                assert(until > sim.clock.t);
                sim.clock.t = until;
                if (sim.sleeps == oversleep_at) sim.clock.t += oversleep_ns;
                if (starts) |s| {
                    if (sim.sleeps < s.len) s[@intCast(sim.sleeps)] = sim.clock.t;
                }
                sim.sleeps += 1;
                continue;
            }
            sim.limiter.account(packet, wait_per_byte_ns);
            sent += 1;
        }
    }
};

test "precise time keeps sub-nanosecond remainders" {
    var t = PreciseTime.init(100);
    var i: u32 = 0;
    while (i < 10) : (i += 1) t.add(0.25);
    try testing.expectEqual(@as(i64, 102), t.coarse_ns);
    try testing.expectEqual(@as(f64, 0.5), t.correction);
    try testing.expect(PreciseTime.lessThan(PreciseTime.init(5), .{ .coarse_ns = 5, .correction = 0.5 }));
    try testing.expect(!PreciseTime.lessThan(.{ .coarse_ns = 6, .correction = 0 }, .{ .coarse_ns = 5, .correction = 0.9 }));
}

test "40 Gb/s in 64 KiB bursts does not drift" {
    // 5e9 bytes/s: a 65536-byte burst takes 13107.2 ns. Rounding to whole
    // nanoseconds would lose 0.2 ns per burst; over 100000 bursts that is 20 µs.
    const start: i64 = 1_000_000_000;
    var sim = Sim{ .limiter = RateLimiter.init(65536, 1.05), .clock = .{ .t = start } };
    sim.limiter.resumeAfterIdle(start);
    const bursts: u64 = 100_000;
    // 8 packets of 8192 bytes per burst, plus one packet to trigger the last sleep.
    sim.run(bursts * 8 + 1, 8192, waitPerByte(5e9), std.math.maxInt(u64), 0, null);
    try testing.expectEqual(bursts, sim.sleeps);
    const expected: f64 = @as(f64, @floatFromInt(bursts)) * 65536.0 / 5e9 * 1e9;
    const elapsed: f64 = @floatFromInt(sim.clock.t - start);
    try testing.expect(@abs(elapsed - expected) <= 1.0);
}

test "oversleeping is caught up at the burst rate, then the standard rate resumes" {
    var sim = Sim{ .limiter = RateLimiter.init(1000, 1.25), .clock = .{ .t = 0 } };
    sim.limiter.resumeAfterIdle(0);
    // 1 byte per ns: a 1000-byte burst takes 1000 ns, or 800 ns at the burst rate.
    var starts: [26]i64 = undefined;
    sim.run(26 * 10 + 1, 100, 1.0, 2, 5000, &starts);
    // Sleeps 0 and 1 end on schedule; sleep 2 (due at 3000) oversleeps by 5000 ns.
    try testing.expectEqual(@as(i64, 1000), starts[0]);
    try testing.expectEqual(@as(i64, 2000), starts[1]);
    try testing.expectEqual(@as(i64, 8000), starts[2]);
    // The burst after the late one goes at once (it was due at 4000); then the
    // burst rate holds bursts 800 ns apart until the standard schedule, which
    // gains 1000 ns per burst, catches up (at 24000), and 1000 ns spacing resumes.
    try testing.expectEqual(@as(i64, 8800), starts[3]);
    for (4..23) |j| try testing.expectEqual(starts[j - 1] + 800, starts[j]);
    try testing.expectEqual(@as(i64, 24000), starts[22]);
    try testing.expectEqual(@as(i64, 25000), starts[23]);
    try testing.expectEqual(@as(i64, 26000), starts[24]);
}

test "no catch-up burst after an idle period" {
    var sim = Sim{ .limiter = RateLimiter.init(1000, 2.0), .clock = .{ .t = 0 } };
    sim.limiter.resumeAfterIdle(0);
    var starts: [8]i64 = undefined;
    sim.run(30, 100, 1.0, std.math.maxInt(u64), 0, &starts);
    // Idle for a long time, then new work.
    sim.clock.t += 1_000_000;
    sim.limiter.resumeAfterIdle(sim.clock.t);
    const resumed = sim.clock.t;
    sim.sleeps = 0;
    sim.run(41, 100, 1.0, std.math.maxInt(u64), 0, &starts);
    // The partial burst from before the idle period (0 bytes here) plus four
    // full bursts, each a full standard interval apart.
    try testing.expectEqual(resumed + 1000, starts[0]);
    try testing.expectEqual(resumed + 2000, starts[1]);
    try testing.expectEqual(resumed + 3000, starts[2]);
}

test "unlimited rate never sleeps and reads the clock once per burst" {
    var sim = Sim{ .limiter = RateLimiter.init(65536, 1.05), .clock = .{ .t = 42 } };
    sim.run(10_000, 1472, 0, std.math.maxInt(u64), 0, null);
    try testing.expectEqual(@as(u64, 0), sim.sleeps);
    try testing.expect(sim.clock.reads <= 10_000 * 1472 / 65536 + 1);
}

test "per-heap rates mix: the wait is the sum of each packet's own cost" {
    var limiter = RateLimiter.init(1000, 1.0);
    var clock = FakeClock{ .t = 0 };
    limiter.resumeAfterIdle(0);
    limiter.account(500, 1.0); // 500 ns
    limiter.account(500, 3.0); // 1500 ns
    try testing.expectEqual(@as(?i64, 2000), limiter.check(&clock));
    clock.t = 2000;
    try testing.expectEqual(@as(?i64, null), limiter.check(&clock));
    try testing.expectEqual(@as(f64, 1e9), waitPerByte(1));
    try testing.expectEqual(@as(f64, 0), waitPerByte(0));
}
