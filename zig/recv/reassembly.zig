//! Heap reassembly (docs/PROTOCOL.md §7): live heaps and the heap table.
//!
//! The table keeps `heaps_max` live-heap slots per substream (`cnt % substreams`),
//! found through Fibonacci-hashed buckets. A new heap cnt takes the next slot of its
//! substream in round-robin order, evicting whatever lived there. Packets of one
//! heap must arrive in order unless `allow_out_of_order`, in which case received
//! ranges are merged and duplicates / partial overlaps are rejected. Finished heaps
//! (complete, evicted or flushed) go to a `Sink`, which usually freezes them into
//! a `FrozenHeap` (the item list of spead2's `recv::heap`).
//!
//! Everything here runs under the stream's lock; nothing is thread-safe on its own.
const std = @import("std");
const protocol = @import("../core/protocol.zig");
const fast_copy = @import("../core/fast_copy.zig");
const assert = std.debug.assert;
const packet_mod = @import("packet.zig");
const Packet = packet_mod.Packet;

// ---------------------------------------------------------------------------
// Payload memory

/// Where heap payloads come from. The default is the C allocator with every page
/// prefaulted (spead2's default allocator); Part 2's MemoryPool plugs in here.
/// `alloc` may return a buffer longer than asked for (a pool hands out `upper`
/// bytes); `free` must be given exactly the slice `alloc` returned.
pub const PayloadAllocator = struct {
    ctx: *anyopaque,
    vtable: *const VTable,

    pub const VTable = struct {
        alloc: *const fn (ctx: *anyopaque, size: usize) ?[]u8,
        free: *const fn (ctx: *anyopaque, buffer: []u8) void,
    };

    /// Returns null for size 0 as well as on failure; callers treat 0 specially.
    pub fn alloc(self: PayloadAllocator, size: usize) ?[]u8 {
        assert(size > 0);
        const buffer = self.vtable.alloc(self.ctx, size) orelse return null;
        assert(buffer.len >= size);
        return buffer;
    }

    pub fn free(self: PayloadAllocator, buffer: []u8) void {
        assert(buffer.len > 0);
        self.vtable.free(self.ctx, buffer);
    }
};

pub const page_size_prefault: usize = 4096;

/// Writes one byte per 4 KiB page so the kernel maps the pages now rather than
/// on the first packet's memcpy.
pub fn prefault(buffer: []u8) void {
    var offset: usize = 0;
    while (offset < buffer.len) : (offset += page_size_prefault) {
        @as(*volatile u8, &buffer[offset]).* = 0;
    }
}

/// Frees a payload buffer without `Allocator.free`'s poisoning: in safe
/// builds that writes 0xaa over the whole buffer first, a full extra pass
/// over every heap (it was a quarter of the receive path's CPU).
pub fn freeWithoutPoisoning(backing: std.mem.Allocator, buffer: []u8) void {
    if (buffer.len == 0) return;
    backing.rawFree(buffer, .fromByteUnits(1), @returnAddress());
}

/// A `std.mem.Allocator` wrapped as a payload allocator, prefaulting each buffer.
pub const DefaultPayloadAllocator = struct {
    backing: std.mem.Allocator,

    pub fn payloadAllocator(self: *DefaultPayloadAllocator) PayloadAllocator {
        return .{ .ctx = self, .vtable = &vtable };
    }

    const vtable: PayloadAllocator.VTable = .{ .alloc = allocFn, .free = freeFn };

    fn allocFn(ctx: *anyopaque, size: usize) ?[]u8 {
        const self: *DefaultPayloadAllocator = @ptrCast(@alignCast(ctx));
        const buffer = self.backing.alloc(u8, size) catch return null;
        prefault(buffer);
        return buffer;
    }

    fn freeFn(ctx: *anyopaque, buffer: []u8) void {
        const self: *DefaultPayloadAllocator = @ptrCast(@alignCast(ctx));
        freeWithoutPoisoning(self.backing, buffer);
    }
};

/// The process-wide default: libc malloc, prefaulted.
pub var c_payload_allocator: DefaultPayloadAllocator = .{ .backing = std.heap.c_allocator };

/// Heap placement (chunk streams, zig/recv/chunk.zig): instead of allocating,
/// a heap's payload is written into memory the placement chooses from the
/// heap's first packet. Placed memory is borrowed, never freed by the table.
pub const Placement = struct {
    ctx: *anyopaque,
    vtable: *const VTable,

    pub const VTable = struct {
        /// Chooses where `size` payload bytes of `heap` go, from its first
        /// packet; may set `heap.place_tag`. Null discards the payload (the
        /// heap is still reassembled and counted, its bytes are not kept).
        place: *const fn (ctx: *anyopaque, heap: *LiveHeap, packet: Packet, size: u64) ?[]u8,
        /// Whether the heap's placed memory may still be written (its chunk
        /// may have left the stream since).
        writable: *const fn (ctx: *anyopaque, heap: *const LiveHeap) bool,
    };
};

// ---------------------------------------------------------------------------
// Configuration and per-batch accounting

/// spead2 has no limit; a single forged HEAP_LENGTH must not make us allocate
/// gigabytes, so heaps above this are rejected (configurable per stream).
pub const heap_length_max_default: u64 = 256 << 20;
/// Distinct item pointers one heap may collect.
pub const pointers_max_default: u32 = 65536;
/// Disjoint received ranges one out-of-order heap may hold.
pub const ranges_max: usize = 65536;
pub const heaps_max_limit: u32 = 65536;
pub const slots_limit: u64 = 1 << 20;

/// How payload bytes are copied into heap memory (spead2's `memcpy_function_id`).
pub const Memcpy = enum(u32) {
    /// glibc's memcpy (fast_copy.copy): the destination passes through the caches.
    std = 0,
    /// Streaming stores past the caches (fast_copy.copyNonTemporal); a store
    /// fence before every heap leaves the table and at every batch end.
    nontemporal = 1,
};

pub const Config = struct {
    heaps_max: u32 = 4,
    substreams: u32 = 1,
    bug_compat: u8 = 0,
    allow_out_of_order: bool = false,
    allow_unsized_heaps: bool = true,
    stop_on_stop_item: bool = true,
    heap_length_max: u64 = heap_length_max_default,
    pointers_max: u32 = pointers_max_default,
    memcpy: Memcpy = .std,

    pub fn assertValid(self: Config) void {
        assert(self.heaps_max >= 1);
        assert(self.heaps_max <= heaps_max_limit);
        assert(self.substreams >= 1);
        assert(@as(u64, self.heaps_max) * self.substreams <= slots_limit);
        assert(self.bug_compat <= 7);
        assert(self.heap_length_max > 0);
        assert(self.pointers_max > 0);
    }
};

/// Why the table refused a packet that decoded correctly.
pub const Reject = enum(u8) {
    /// No HEAP_LENGTH and allow_unsized_heaps is false.
    no_heap_length,
    /// HEAP_LENGTH differs from the heap's.
    heap_length_inconsistent,
    /// HEAP_LENGTH is below an item address already seen.
    heap_length_too_small,
    /// Heap address bits differ from the heap's first packet.
    flavour_inconsistent,
    /// In-order mode: offset below the bytes already received.
    out_of_order,
    /// In-order mode: offset beyond the bytes received (a lost packet).
    gap,
    /// Out-of-order mode: the range starts inside received data.
    duplicate,
    /// Out-of-order mode: the range runs into later received data.
    partial_overlap,
    /// The heap would exceed heap_length_max.
    too_large,
    /// The heap would exceed pointers_max distinct item pointers.
    too_many_pointers,
    /// The heap would exceed ranges_max disjoint received ranges.
    too_fragmented,
    /// Payload or bookkeeping memory could not be allocated.
    out_of_memory,
};

pub const reject_count = @typeInfo(Reject).@"enum".fields.len;

/// Counters of one batch; the stream folds them into its stats at batch end.
pub const Batch = struct {
    packets: u64 = 0,
    complete_heaps: u64 = 0,
    incomplete_heaps_evicted: u64 = 0,
    single_packet_heaps: u64 = 0,
    search_dist: u64 = 0,
    rejected: [reject_count]u64 = [_]u64{0} ** reject_count,
    /// Set when a stop item was accepted (with stop_on_stop_item).
    stop: bool = false,

    fn reject(self: *Batch, reason: Reject) bool {
        self.rejected[@intFromEnum(reason)] += 1;
        return false;
    }
};

/// See `Table.pendingPayload`.
pub const PendingPayload = struct {
    offset: u64,
    dest: []u8,
};

/// Receives finished heaps. After `ready` returns, the table resets the live
/// heap, freeing whatever the sink did not take (see `LiveHeap.takePayload`).
pub const Sink = struct {
    ctx: *anyopaque,
    ready: *const fn (ctx: *anyopaque, heap: *LiveHeap) void,
};

// ---------------------------------------------------------------------------
// Live heap

pub const Range = struct {
    first: u64,
    last: u64,
};

/// Pointers de-duplicated by linear scan up to this count, then by hash set.
const inline_dedup_max = 16;

pub const LiveHeap = struct {
    cnt: u64 = 0,
    heap_address_bits: u8 = 0,
    bug_compat: u8 = 0,
    heap_length: ?u64 = null,
    received_length: u64 = 0,
    /// Bytes needed to hold every item: max of heap length, item addresses and
    /// (unsized heaps) received extents.
    length_min: u64 = 0,
    end_of_stream: bool = false,
    /// Payload buffer exactly as the allocator returned it (empty = none).
    payload: []u8 = &.{},
    /// Bytes requested for the payload (spead2's payload_reserved).
    payload_reserved: u64 = 0,
    /// Distinct pointer words in arrival order (ids 0 and > 4).
    pointers: std.ArrayListUnmanaged(u64) = .{},
    seen: std.AutoHashMapUnmanaged(u64, void) = .{},
    ranges: std.ArrayListUnmanaged(Range) = .{},
    /// The payload was placed (`Placement`): borrowed memory, or none if discarded.
    placed: bool = false,
    /// Free for the placement's use (chunk streams: chunk id and heap index).
    place_tag: [2]u64 = .{ 0, 0 },

    pub fn isComplete(self: *const LiveHeap) bool {
        const length = self.heap_length orelse return false;
        return self.received_length == length and self.received_length == self.length_min;
    }

    pub fn isContiguous(self: *const LiveHeap) bool {
        return self.received_length == self.length_min;
    }

    /// Hands the payload buffer to the caller; the heap no longer frees it.
    pub fn takePayload(self: *LiveHeap) []u8 {
        const buffer = self.payload;
        self.payload = &.{};
        return buffer;
    }

    fn start(self: *LiveHeap, packet: Packet, bug_compat: u8) void {
        assert(self.payload.len == 0);
        assert(!self.placed);
        assert(self.pointers.items.len == 0);
        assert(self.ranges.items.len == 0);
        self.cnt = packet.heap_cnt;
        self.heap_address_bits = packet.heap_address_bits;
        self.bug_compat = bug_compat;
        self.heap_length = null;
        self.received_length = 0;
        self.length_min = 0;
        self.end_of_stream = false;
        self.payload_reserved = 0;
    }

    /// Frees the payload and forgets the heap, keeping list capacity for reuse.
    fn reset(self: *LiveHeap, payload_allocator: PayloadAllocator) void {
        if (self.payload.len > 0 and !self.placed) payload_allocator.free(self.payload);
        self.payload = &.{};
        self.payload_reserved = 0;
        self.placed = false;
        self.pointers.clearRetainingCapacity();
        self.seen.clearRetainingCapacity();
        self.ranges.clearRetainingCapacity();
        self.heap_length = null;
        self.received_length = 0;
        self.length_min = 0;
        self.end_of_stream = false;
    }

    fn deinit(self: *LiveHeap, allocator: std.mem.Allocator, payload_allocator: PayloadAllocator) void {
        self.reset(payload_allocator);
        self.pointers.deinit(allocator);
        self.seen.deinit(allocator);
        self.ranges.deinit(allocator);
    }

    /// Nothing accepted yet (a slot that a rejected first packet created).
    fn isFresh(self: *const LiveHeap) bool {
        return self.received_length == 0 and self.pointers.items.len == 0 and
            self.heap_length == null and self.ranges.items.len == 0 and self.length_min == 0;
    }

    const RangePlan = struct {
        /// Index of the first range starting after `first` (spead2's upper_bound).
        next: usize,
        extend_prev: bool,
        merge_next: bool,
    };

    /// Decides where [first, last) goes without changing anything.
    fn planRange(self: *const LiveHeap, first: u64, last: u64) union(enum) { ok: RangePlan, rejected: Reject } {
        const ranges = self.ranges.items;
        var lo: usize = 0;
        var hi: usize = ranges.len;
        while (lo < hi) {
            const mid = lo + (hi - lo) / 2;
            if (ranges[mid].first <= first) lo = mid + 1 else hi = mid;
        }
        const next = lo;
        if (next < ranges.len and ranges[next].first < last) return .{ .rejected = .partial_overlap };
        var extend_prev = false;
        if (next > 0) {
            const prev = ranges[next - 1];
            if (prev.last == first) {
                extend_prev = true;
            } else if (prev.last > first) {
                return .{ .rejected = .duplicate };
            }
        }
        const merge_next = next < ranges.len and ranges[next].first == last;
        if (!extend_prev and !merge_next and ranges.len >= ranges_max) return .{ .rejected = .too_fragmented };
        return .{ .ok = .{ .next = next, .extend_prev = extend_prev, .merge_next = merge_next } };
    }

    fn applyRange(self: *LiveHeap, plan: RangePlan, first: u64, last: u64) void {
        const ranges = &self.ranges;
        var index: usize = undefined;
        if (plan.extend_prev) {
            index = plan.next - 1;
            ranges.items[index].last = last;
        } else {
            // Capacity was reserved in addPacket.
            ranges.insertAssumeCapacity(plan.next, .{ .first = first, .last = last });
            index = plan.next;
        }
        if (plan.merge_next) {
            assert(index + 1 < ranges.items.len);
            assert(ranges.items[index + 1].first == last);
            ranges.items[index].last = ranges.items[index + 1].last;
            _ = ranges.orderedRemove(index + 1);
        }
        assert(ranges.items[index].first <= ranges.items[index].last);
    }

    /// Grows the payload to hold `size` bytes; `exact` sizes it precisely,
    /// otherwise at least doubling (unsized heaps).
    fn reserve(self: *LiveHeap, size_wanted: u64, exact: bool, payload_allocator: PayloadAllocator, placement: ?Placement, packet: Packet) bool {
        if (size_wanted <= self.payload_reserved) return true;
        if (placement) |p| {
            // Placed heaps are sized (chunk streams refuse unsized heaps), so
            // this runs once, on the first packet.
            assert(exact);
            assert(!self.placed and self.payload.len == 0);
            const dest = p.vtable.place(p.ctx, self, packet, size_wanted);
            if (dest) |d| assert(d.len >= size_wanted);
            self.placed = true;
            self.payload = dest orelse &.{};
            self.payload_reserved = size_wanted;
            return true;
        }
        var size = size_wanted;
        if (!exact and size < self.payload_reserved * 2) size = self.payload_reserved * 2;
        const buffer = payload_allocator.alloc(@intCast(size)) orelse return false;
        if (self.payload.len > 0) {
            @memcpy(buffer[0..@intCast(self.payload_reserved)], self.payload[0..@intCast(self.payload_reserved)]);
            payload_allocator.free(self.payload);
        }
        self.payload = buffer;
        self.payload_reserved = size;
        return true;
    }

    fn seenPointer(self: *const LiveHeap, word: u64) bool {
        if (self.pointers.items.len <= inline_dedup_max) {
            return std.mem.indexOfScalar(u64, self.pointers.items, word) != null;
        }
        return self.seen.contains(word);
    }

    /// Capacity for every pointer of the packet, so adding them cannot fail.
    fn reservePointers(self: *LiveHeap, allocator: std.mem.Allocator, count: usize) bool {
        self.pointers.ensureUnusedCapacity(allocator, count) catch return false;
        if (self.pointers.items.len + count > inline_dedup_max) {
            const wanted = self.pointers.items.len + count;
            self.seen.ensureTotalCapacity(allocator, @intCast(wanted)) catch return false;
            if (self.seen.count() == 0) {
                for (self.pointers.items) |word| self.seen.putAssumeCapacity(word, {});
            }
        }
        return true;
    }

    fn addPointers(self: *LiveHeap, packet: Packet) void {
        const hab = self.heap_address_bits;
        var i: usize = 0;
        while (i < packet.pointerCount()) : (i += 1) {
            const word = packet.pointer(i);
            const immediate = packet_mod.pointerIsImmediate(word);
            if (!immediate) self.length_min = @max(self.length_min, packet_mod.pointerValue(hab, word));
            const id = packet_mod.pointerId(hab, word);
            // NULL pointers stay: they delimit the previous addressed item.
            if (id != protocol.id_null and id <= protocol.id_payload_length) continue;
            if (self.seenPointer(word)) continue;
            self.pointers.appendAssumeCapacity(word);
            if (self.seen.capacity() > 0) self.seen.putAssumeCapacity(word, {});
            if (id == protocol.id_stream_ctrl and immediate and
                packet_mod.pointerValue(hab, word) == protocol.ctrl_stream_stop)
            {
                self.end_of_stream = true;
            }
        }
    }

    /// spead2's live_heap::add_packet: validates, then copies the payload.
    /// Returns false (and counts the reason) if the packet is refused.
    fn addPacket(
        self: *LiveHeap,
        packet: Packet,
        config: *const Config,
        allocator: std.mem.Allocator,
        payload_allocator: PayloadAllocator,
        placement: ?Placement,
        batch: *Batch,
    ) bool {
        assert(self.cnt == packet.heap_cnt);
        if (self.heap_length != null and packet.heap_length != null and packet.heap_length.? != self.heap_length.?) {
            return batch.reject(.heap_length_inconsistent);
        }
        if (packet.heap_length != null and packet.heap_length.? < self.length_min) {
            return batch.reject(.heap_length_too_small);
        }
        if (packet.heap_address_bits != self.heap_address_bits) return batch.reject(.flavour_inconsistent);

        const first = packet.payload_offset;
        const last = first + packet.payload_length;
        var plan: RangePlan = undefined;
        if (config.allow_out_of_order) {
            plan = switch (self.planRange(first, last)) {
                .ok => |p| p,
                .rejected => |reason| return batch.reject(reason),
            };
        } else if (first != self.received_length) {
            return batch.reject(if (first < self.received_length) .out_of_order else .gap);
        }

        // Everything that can fail for lack of memory happens before any change.
        var wanted: u64 = undefined;
        var exact: bool = undefined;
        if (packet.heap_length) |length| {
            wanted = if (self.heap_length == null) @max(self.length_min, length) else 0;
            exact = true;
        } else {
            wanted = @max(self.length_min, last);
            exact = false;
        }
        if (wanted > config.heap_length_max) return batch.reject(.too_large);
        if (self.pointers.items.len + packet.pointerCount() > config.pointers_max) {
            return batch.reject(.too_many_pointers);
        }
        if (!self.reservePointers(allocator, packet.pointerCount())) return batch.reject(.out_of_memory);
        if (config.allow_out_of_order) {
            self.ranges.ensureUnusedCapacity(allocator, 1) catch return batch.reject(.out_of_memory);
        }
        if (wanted > 0 and !self.reserve(wanted, exact, payload_allocator, placement, packet)) return batch.reject(.out_of_memory);

        // Accepted: from here on the heap changes.
        if (config.allow_out_of_order) self.applyRange(plan, first, last);
        if (packet.heap_length) |length| {
            if (self.heap_length == null) {
                self.heap_length = length;
                self.length_min = @max(self.length_min, length);
            }
        } else {
            self.length_min = @max(self.length_min, last);
        }
        self.addPointers(packet);
        if (packet.payload_length > 0) {
            assert(last <= self.payload_reserved);
            const keep = if (self.placed)
                self.payload.len > 0 and placement.?.vtable.writable(placement.?.ctx, self)
            else
                true;
            if (keep) {
                const dest = self.payload[@intCast(first)..@intCast(last)];
                // A reader that received the payload in place (zig/recv/udp.zig)
                // hands it over where it already is: nothing to copy.
                if (dest.ptr != packet.payload.ptr) switch (config.memcpy) {
                    .std => fast_copy.copy(dest, packet.payload),
                    .nontemporal => fast_copy.copyNonTemporal(dest, packet.payload),
                };
            }
            self.received_length += packet.payload_length;
        }
        return true;
    }
};

// ---------------------------------------------------------------------------
// Heap table

const entry_unused: u32 = std.math.maxInt(u32);
const entry_end: u32 = std.math.maxInt(u32) - 1;

const Slot = struct {
    heap: LiveHeap = .{},
    /// Next slot in the bucket chain; entry_end ends a chain and entry_unused
    /// marks a slot holding no heap.
    next: u32 = entry_unused,

    fn occupied(self: *const Slot) bool {
        return self.next != entry_unused;
    }
};

pub const Table = struct {
    allocator: std.mem.Allocator,
    payload_allocator: PayloadAllocator,
    config: Config,
    slots: []Slot,
    buckets: []u32,
    bucket_shift: u6,
    /// Round-robin position of each substream, an index into `slots`.
    heads: []u32,
    /// Chunk streams: heap payloads go where this says (set once, before any packet).
    placement: ?Placement = null,

    pub fn init(allocator: std.mem.Allocator, payload_allocator: PayloadAllocator, config: Config) error{OutOfMemory}!Table {
        config.assertValid();
        const slot_count: u32 = config.heaps_max * config.substreams;
        var bucket_count: u64 = 4;
        while (bucket_count < slot_count) bucket_count *= 2;
        bucket_count *= 4; // low load factor, as spead2
        const slots = try allocator.alloc(Slot, slot_count);
        errdefer allocator.free(slots);
        const buckets = try allocator.alloc(u32, @intCast(bucket_count));
        errdefer allocator.free(buckets);
        const heads = try allocator.alloc(u32, config.substreams);
        errdefer allocator.free(heads);
        for (slots) |*slot| slot.* = .{};
        @memset(buckets, entry_end);
        for (heads, 0..) |*head, i| head.* = @intCast(i * config.heaps_max);
        return .{
            .allocator = allocator,
            .payload_allocator = payload_allocator,
            .config = config,
            .slots = slots,
            .buckets = buckets,
            .bucket_shift = @intCast(@as(u32, 64) - std.math.log2_int(u64, bucket_count)),
            .heads = heads,
        };
    }

    pub fn deinit(self: *Table) void {
        for (self.slots) |*slot| slot.heap.deinit(self.allocator, self.payload_allocator);
        self.allocator.free(self.slots);
        self.allocator.free(self.buckets);
        self.allocator.free(self.heads);
        self.* = undefined;
    }

    fn bucketOf(self: *const Table, cnt: u64) usize {
        const index = (cnt *% 11400714819323198485) >> self.bucket_shift;
        assert(index < self.buckets.len);
        return @intCast(index);
    }

    fn link(self: *Table, index: u32) void {
        const slot = &self.slots[index];
        assert(!slot.occupied());
        const bucket = self.bucketOf(slot.heap.cnt);
        slot.next = self.buckets[bucket];
        self.buckets[bucket] = index;
    }

    fn unlink(self: *Table, index: u32) void {
        const slot = &self.slots[index];
        assert(slot.occupied());
        const bucket = self.bucketOf(slot.heap.cnt);
        var prev: *u32 = &self.buckets[bucket];
        var steps: usize = 0;
        while (prev.* != index) : (steps += 1) {
            assert(steps < self.slots.len);
            assert(prev.* != entry_end);
            prev = &self.slots[prev.*].next;
        }
        prev.* = slot.next;
        slot.next = entry_unused;
    }

    /// Hands the heap in `index` to the sink and frees the slot.
    fn release(self: *Table, index: u32, sink: Sink, deliver: bool) void {
        // Streaming stores reach memory before the heap reaches another thread
        // (the ring, a chunk) or its buffer goes back to a shared pool.
        if (self.config.memcpy == .nontemporal) fast_copy.storeFence();
        self.unlink(index);
        const heap = &self.slots[index].heap;
        if (deliver) sink.ready(sink.ctx, heap);
        heap.reset(self.payload_allocator);
    }

    fn find(self: *Table, cnt: u64, batch: *Batch) ?u32 {
        var index = self.buckets[self.bucketOf(cnt)];
        var dist: u64 = 1;
        defer batch.search_dist += dist;
        while (index != entry_end) : (dist += 1) {
            assert(dist <= self.slots.len);
            const slot = &self.slots[index];
            assert(slot.occupied());
            if (slot.heap.cnt == cnt) return index;
            index = slot.next;
        }
        return null;
    }

    /// spead2's stream_base::add_packet. Returns whether the packet was accepted.
    /// Must not be called once `batch.stop` is set.
    pub fn addPacket(self: *Table, packet: Packet, batch: *Batch, sink: Sink) bool {
        assert(!batch.stop);
        const config = &self.config;
        batch.packets += 1;
        if (packet.heap_length == null and !config.allow_unsized_heaps) return batch.reject(.no_heap_length);
        // Refuse absurd sizes before they can evict a live heap.
        const extent = packet.heap_length orelse packet.payload_offset + packet.payload_length;
        if (extent > config.heap_length_max) return batch.reject(.too_large);
        if (packet.pointerCount() > config.pointers_max) return batch.reject(.too_many_pointers);

        var found: ?u32 = null;
        if (packet.heap_length != null and packet.payload_length == packet.heap_length.?) {
            // A whole heap in one packet cannot belong to a partial heap.
            batch.single_packet_heaps += 1;
        } else {
            found = self.find(packet.heap_cnt, batch);
        }

        const index = found orelse blk: {
            if (!config.allow_out_of_order and packet.payload_offset != 0) return batch.reject(.gap);
            const substream: u32 = @intCast(packet.heap_cnt % config.substreams);
            const start = substream * config.heaps_max;
            var head = self.heads[substream] + 1;
            if (head == start + config.heaps_max) head = start;
            self.heads[substream] = head;
            if (self.slots[head].occupied()) {
                batch.incomplete_heaps_evicted += 1;
                self.release(head, sink, true);
            }
            self.slots[head].heap.start(packet, config.bug_compat);
            self.link(head);
            break :blk head;
        };

        const heap = &self.slots[index].heap;
        if (!heap.addPacket(packet, config, self.allocator, self.payload_allocator, self.placement, batch)) {
            // Only a failed allocation can refuse a heap's first packet; do not
            // leave an empty heap behind to be delivered later.
            if (found == null and heap.isFresh()) self.release(index, sink, false);
            return false;
        }
        const end_of_stream = config.stop_on_stop_item and heap.end_of_stream;
        if (heap.isComplete()) {
            if (!end_of_stream) batch.complete_heaps += 1;
            self.release(index, sink, !end_of_stream);
        }
        if (end_of_stream) batch.stop = true;
        return true;
    }

    /// Where the next bytes of live heap `cnt` go, for a reader that receives
    /// payloads in place (zig/recv/udp.zig): the heap's payload offset that the
    /// next in-order packet must carry and the unreceived rest of its payload
    /// memory. Those bytes belong to nobody else yet, so a wrong guess written
    /// there does no harm: a later packet overwrites it. Null when there is
    /// no such heap or no such memory (out-of-order streams, placed or unsized
    /// heaps, a complete payload).
    pub fn pendingPayload(self: *const Table, cnt: u64) ?PendingPayload {
        if (self.config.allow_out_of_order or self.placement != null) return null;
        var index = self.buckets[self.bucketOf(cnt)];
        var steps: usize = 0;
        while (index != entry_end) : (steps += 1) {
            assert(steps < self.slots.len);
            const heap = &self.slots[index].heap;
            if (heap.cnt == cnt) {
                if (heap.heap_length == null or heap.placed) return null;
                const from = heap.received_length;
                const to = heap.payload_reserved;
                if (from >= to or heap.payload.len < to) return null;
                return .{ .offset = from, .dest = heap.payload[@intCast(from)..@intCast(to)] };
            }
            index = self.slots[index].next;
        }
        return null;
    }

    /// Delivers every live heap (stop). Returns how many were flushed.
    pub fn flush(self: *Table, sink: Sink) u64 {
        var flushed: u64 = 0;
        for (self.heads, 0..) |*head, substream| {
            const start: u32 = @intCast(substream * self.config.heaps_max);
            var step: u32 = 0;
            while (step < self.config.heaps_max) : (step += 1) {
                head.* += 1;
                if (head.* == start + self.config.heaps_max) head.* = start;
                if (self.slots[head.*].occupied()) {
                    flushed += 1;
                    self.release(head.*, sink, true);
                }
            }
        }
        return flushed;
    }

    /// Number of live heaps (for tests and assertions).
    pub fn liveCount(self: *const Table) usize {
        var count: usize = 0;
        for (self.slots) |*slot| count += @intFromBool(slot.occupied());
        return count;
    }
};

// ---------------------------------------------------------------------------
// Frozen heap: what JS sees

pub const Item = struct {
    id: u64,
    is_immediate: bool,
    /// Immediate: the value. Addressed: offset into the payload.
    value: u64,
    length: u64,
};

/// A received heap as `spead_recv_heap_describe` reports it (published by zig/abi/records.zig).
pub const HeapDescription = extern struct {
    pub const doc = "A received heap, followed by item_count ItemDescription records";
    cnt: u64,
    /// 2^64-1 when unknown.
    heap_length: u64,
    received_length: u64,
    /// bit 0 complete, bit 1 contiguous, bit 2 start of stream, bit 3 end of stream.
    flags: u64,
    heap_address_bits: u64,
    bug_compat: u64,
    /// The payload's address (0 if none); valid until the heap is released.
    payload_address: u64,
    payload_size: u64,
    item_count: u64,
};

/// One item of a `HeapDescription`: an immediate value, or an offset into the payload.
pub const ItemDescription = extern struct {
    pub const doc = "One item of a received heap: immediate value, or offset into the payload";
    id: u64,
    is_immediate: u64,
    value: u64,
    length: u64,
};

pub const FrozenHeap = struct {
    allocator: std.mem.Allocator,
    payload_allocator: PayloadAllocator,
    cnt: u64,
    heap_length: ?u64,
    received_length: u64,
    complete: bool,
    contiguous: bool,
    start_of_stream: bool,
    end_of_stream: bool,
    heap_address_bits: u8,
    bug_compat: u8,
    /// The buffer as allocated (empty when there is none).
    payload: []u8,
    /// Valid bytes at the start of `payload`.
    payload_size: u64,
    items: []Item,

    pub fn deinit(self: *FrozenHeap) void {
        if (self.payload.len > 0) self.payload_allocator.free(self.payload);
        self.allocator.free(self.items);
        const allocator = self.allocator;
        allocator.destroy(self);
    }

    /// Words `describe` writes (ABI.md: 9 + 4 per item).
    pub fn describeWords(self: *const FrozenHeap) usize {
        return (@sizeOf(HeapDescription) + @sizeOf(ItemDescription) * self.items.len) / 8;
    }

    /// The heap description of `spead_recv_heap_describe` (docs/ABI.md): a
    /// `HeapDescription`, then one `ItemDescription` per item.
    pub fn describe(self: *const FrozenHeap, out: []u64) void {
        assert(out.len >= self.describeWords());
        const head: *HeapDescription = @ptrCast(out.ptr);
        head.* = .{
            .cnt = self.cnt,
            .heap_length = self.heap_length orelse std.math.maxInt(u64),
            .received_length = self.received_length,
            .flags = @as(u64, @intFromBool(self.complete)) | @as(u64, @intFromBool(self.contiguous)) << 1 |
                @as(u64, @intFromBool(self.start_of_stream)) << 2 | @as(u64, @intFromBool(self.end_of_stream)) << 3,
            .heap_address_bits = self.heap_address_bits,
            .bug_compat = self.bug_compat,
            .payload_address = if (self.payload_size > 0) @intFromPtr(self.payload.ptr) else 0,
            .payload_size = self.payload_size,
            .item_count = self.items.len,
        };
        const items: [*]ItemDescription = @ptrCast(out[@sizeOf(HeapDescription) / 8 ..].ptr);
        for (self.items, 0..) |item, i| {
            items[i] = .{ .id = item.id, .is_immediate = @intFromBool(item.is_immediate), .value = item.value, .length = item.length };
        }
    }

    pub fn findItem(self: *const FrozenHeap, id: u64) ?Item {
        for (self.items) |item| if (item.id == id) return item;
        return null;
    }

    pub fn itemBytes(self: *const FrozenHeap, item: Item) []const u8 {
        assert(!item.is_immediate);
        assert(item.value + item.length <= self.payload_size);
        return self.payload[@intCast(item.value)..@intCast(item.value + item.length)];
    }
};

fn sortKeyLess(mask: u64, a: u64, b: u64) bool {
    return (a & mask) < (b & mask);
}

/// Turns a finished live heap into a frozen one, as spead2's heap_base::load:
/// pointers stable-sorted by (mode bit, address); NULL and zero-length items
/// skipped; addressed items only when the heap is contiguous (their lengths run
/// to the next address or to length_min). Takes the payload when contiguous.
pub fn freeze(allocator: std.mem.Allocator, heap: *LiveHeap, payload_allocator: PayloadAllocator) error{OutOfMemory}!*FrozenHeap {
    const hab = heap.heap_address_bits;
    const contiguous = heap.isContiguous();
    const words = heap.pointers.items;
    const sort_mask = packet_mod.pointerValue(hab, std.math.maxInt(u64)) | (@as(u64, 1) << 63);
    std.mem.sort(u64, words, sort_mask, sortKeyLess);

    const frozen = try allocator.create(FrozenHeap);
    errdefer allocator.destroy(frozen);
    var items = try std.ArrayListUnmanaged(Item).initCapacity(allocator, words.len);
    errdefer items.deinit(allocator);
    var start_of_stream = false;
    var end_of_stream = false;
    for (words, 0..) |word, i| {
        const id = packet_mod.pointerId(hab, word);
        if (id == protocol.id_null) continue;
        const value = packet_mod.pointerValue(hab, word);
        if (packet_mod.pointerIsImmediate(word)) {
            items.appendAssumeCapacity(.{ .id = id, .is_immediate = true, .value = value, .length = hab / 8 });
            if (id == protocol.id_stream_ctrl) {
                start_of_stream = start_of_stream or value == protocol.ctrl_stream_start;
                end_of_stream = end_of_stream or value == protocol.ctrl_stream_stop;
            }
            continue;
        }
        if (!contiguous) continue;
        const end = if (i + 1 < words.len and !packet_mod.pointerIsImmediate(words[i + 1]))
            packet_mod.pointerValue(hab, words[i + 1])
        else
            heap.length_min;
        assert(value <= end);
        assert(end <= heap.length_min);
        if (value == end) continue;
        items.appendAssumeCapacity(.{ .id = id, .is_immediate = false, .value = value, .length = end - value });
    }
    const owned_items = try items.toOwnedSlice(allocator);

    const payload: []u8 = if (contiguous) heap.takePayload() else &.{};
    const payload_size: u64 = if (contiguous) heap.length_min else 0;
    assert(payload_size <= payload.len);
    frozen.* = .{
        .allocator = allocator,
        .payload_allocator = payload_allocator,
        .cnt = heap.cnt,
        .heap_length = heap.heap_length,
        .received_length = heap.received_length,
        .complete = heap.isComplete(),
        .contiguous = contiguous,
        .start_of_stream = start_of_stream,
        .end_of_stream = end_of_stream,
        .heap_address_bits = hab,
        .bug_compat = heap.bug_compat,
        .payload = payload,
        .payload_size = payload_size,
        .items = owned_items,
    };
    // Addressed STREAM_CTRL values (rare) are read from their bytes, as spead2 does.
    for (frozen.items) |item| {
        if (item.id != protocol.id_stream_ctrl or item.is_immediate or item.length > 8) continue;
        var value: u64 = 0;
        for (frozen.itemBytes(item)) |byte| value = value << 8 | byte;
        frozen.start_of_stream = frozen.start_of_stream or value == protocol.ctrl_stream_start;
        frozen.end_of_stream = frozen.end_of_stream or value == protocol.ctrl_stream_stop;
    }
    return frozen;
}

// ---------------------------------------------------------------------------
// Tests

const testing = std.testing;
const imm = packet_mod.imm;
const addr = packet_mod.addr;
const TestPointer = packet_mod.TestPointer;

/// Collects frozen heaps (and drops or counts incomplete ones like a ring would).
const Collector = struct {
    heaps: std.ArrayListUnmanaged(*FrozenHeap) = .{},
    payload_allocator: PayloadAllocator,

    fn sink(self: *Collector) Sink {
        return .{ .ctx = self, .ready = readyFn };
    }

    fn readyFn(ctx: *anyopaque, heap: *LiveHeap) void {
        const self: *Collector = @ptrCast(@alignCast(ctx));
        const frozen = freeze(testing.allocator, heap, self.payload_allocator) catch unreachable;
        self.heaps.append(testing.allocator, frozen) catch unreachable;
    }

    fn deinit(self: *Collector) void {
        for (self.heaps.items) |h| h.deinit();
        self.heaps.deinit(testing.allocator);
    }
};

const Harness = struct {
    payload: DefaultPayloadAllocator = .{ .backing = testing.allocator },
    table: Table = undefined,
    collector: Collector = undefined,
    batch: Batch = .{},
    buf: [4096]u8 = undefined,

    fn init(self: *Harness, config: Config) !void {
        self.* = .{};
        self.collector = .{ .payload_allocator = self.payload.payloadAllocator() };
        self.table = try Table.init(testing.allocator, self.payload.payloadAllocator(), config);
    }

    fn deinit(self: *Harness) void {
        self.table.deinit();
        self.collector.deinit();
    }

    fn feed(self: *Harness, hab: u8, pointers: []const TestPointer, payload: []const u8) bool {
        const bytes = packet_mod.buildTestPacket(&self.buf, hab, pointers, payload);
        const packet = packet_mod.decode(bytes).ok;
        return self.table.addPacket(packet, &self.batch, self.collector.sink());
    }

    fn flush(self: *Harness) u64 {
        return self.table.flush(self.collector.sink());
    }

    fn rejected(self: *const Harness, reason: Reject) u64 {
        return self.batch.rejected[@intFromEnum(reason)];
    }
};

/// One packet of heap `cnt`: its slice [offset, offset+len) of `data`, with
/// HEAP_LENGTH unless `sized` is false, and `extra` pointers.
fn feedPart(h: *Harness, cnt: u64, data: []const u8, offset: usize, len: usize, sized: bool, extra: []const TestPointer) bool {
    var pointers: [32]TestPointer = undefined;
    var n: usize = 0;
    pointers[n] = imm(protocol.id_heap_cnt, cnt);
    n += 1;
    if (sized) {
        pointers[n] = imm(protocol.id_heap_length, data.len);
        n += 1;
    }
    pointers[n] = imm(protocol.id_payload_offset, offset);
    pointers[n + 1] = imm(protocol.id_payload_length, len);
    n += 2;
    for (extra) |p| {
        pointers[n] = p;
        n += 1;
    }
    return h.feed(40, pointers[0..n], data[offset .. offset + len]);
}

test "single-packet heap: items sorted, NULL and zero-length skipped, immediates exposed" {
    var h: Harness = undefined;
    try h.init(.{});
    defer h.deinit();
    // item 0x1001 "abc" @0, 0x1002 empty @3, 0x1003 "de" @3, NULL @5, padding to 8
    try testing.expect(h.feed(40, &.{
        imm(1, 42),      imm(2, 8),            imm(3, 0),       imm(4, 8),
        addr(0x1002, 3), imm(0x1600, 0x12345), addr(0x1001, 0), addr(0x1003, 3),
        addr(0, 5),      imm(6, 0),
    }, "abcde\x00\x00\x00"));
    try testing.expectEqual(@as(u64, 1), h.batch.single_packet_heaps);
    try testing.expectEqual(@as(u64, 1), h.batch.complete_heaps);
    try testing.expectEqual(@as(usize, 1), h.collector.heaps.items.len);
    const f = h.collector.heaps.items[0];
    try testing.expectEqual(@as(u64, 42), f.cnt);
    try testing.expect(f.complete and f.contiguous and f.start_of_stream and !f.end_of_stream);
    try testing.expectEqual(@as(u64, 8), f.payload_size);
    // addressed (sorted by address, stable), then immediates
    try testing.expectEqual(@as(usize, 4), f.items.len);
    try testing.expectEqual(@as(u64, 0x1001), f.items[0].id);
    try testing.expectEqualStrings("abc", f.itemBytes(f.items[0]));
    try testing.expectEqual(@as(u64, 0x1003), f.items[1].id);
    try testing.expectEqualStrings("de", f.itemBytes(f.items[1]));
    // immediates sort by value too (spead2's mask keeps the address bits)
    try testing.expectEqual(Item{ .id = 6, .is_immediate = true, .value = 0, .length = 5 }, f.items[2]);
    try testing.expectEqual(Item{ .id = 0x1600, .is_immediate = true, .value = 0x12345, .length = 5 }, f.items[3]);
    var words: [9 + 16]u64 = undefined;
    try testing.expectEqual(@as(usize, 25), f.describeWords());
    f.describe(&words);
    try testing.expectEqual(@as(u64, 0b0111), words[3]);
    try testing.expectEqual(@as(u64, 4), words[8]);
    try testing.expectEqual(@as(u64, 0x1003), words[9 + 4]);
    try testing.expectEqual(@as(u64, 3), words[11 + 4]);
    try testing.expectEqual(@as(usize, 0), h.table.liveCount());
}

test "in-order multi-packet heap; out-of-order packets rejected by default" {
    var h: Harness = undefined;
    try h.init(.{});
    defer h.deinit();
    const data = "0123456789abcdefghij";
    const item = [_]TestPointer{addr(0x2000, 0)};
    try testing.expect(feedPart(&h, 1, data, 0, 5, true, &item));
    try testing.expect(!feedPart(&h, 1, data, 10, 5, true, &item)); // gap
    try testing.expect(feedPart(&h, 1, data, 5, 5, true, &item));
    try testing.expect(!feedPart(&h, 1, data, 0, 5, true, &item)); // behind: out of order
    try testing.expect(!feedPart(&h, 2, data, 5, 5, true, &item)); // new heap not at 0
    try testing.expect(feedPart(&h, 1, data, 10, 5, true, &item));
    try testing.expect(feedPart(&h, 1, data, 15, 5, true, &item));
    try testing.expectEqual(@as(u64, 1), h.rejected(.out_of_order));
    try testing.expectEqual(@as(u64, 2), h.rejected(.gap));
    try testing.expectEqual(@as(usize, 1), h.collector.heaps.items.len);
    const f = h.collector.heaps.items[0];
    try testing.expectEqual(@as(usize, 1), f.items.len); // pointer de-duplicated
    try testing.expectEqualStrings(data, f.itemBytes(f.items[0]));
    try testing.expectEqual(@as(u64, 7), h.batch.search_dist);
}

test "pendingPayload: the unreceived tail of an in-order heap; a payload already there is not copied" {
    var h: Harness = undefined;
    try h.init(.{});
    defer h.deinit();
    const data = "0123456789abcdefghij";
    const item = [_]TestPointer{addr(0x2000, 0)};
    try testing.expectEqual(@as(?PendingPayload, null), h.table.pendingPayload(1));
    try testing.expect(feedPart(&h, 1, data, 0, 5, true, &item));
    const pending = h.table.pendingPayload(1).?;
    try testing.expectEqual(@as(u64, 5), pending.offset);
    try testing.expectEqual(@as(usize, 15), pending.dest.len);
    // The next packet's payload received straight into place, then handed over there.
    @memcpy(pending.dest[0..5], data[5..10]);
    var buf: [256]u8 = undefined;
    const bytes = packet_mod.buildTestPacket(&buf, 40, &.{ imm(1, 1), imm(2, data.len), imm(3, 5), imm(4, 5), addr(0x2000, 0) }, "XXXXX");
    var packet = packet_mod.decode(bytes).ok;
    packet.payload = pending.dest[0..5];
    try testing.expect(h.table.addPacket(packet, &h.batch, h.collector.sink()));
    try testing.expectEqual(@as(u64, 10), h.table.pendingPayload(1).?.offset);
    try testing.expect(feedPart(&h, 1, data, 10, 10, true, &item));
    try testing.expectEqual(@as(?PendingPayload, null), h.table.pendingPayload(1)); // complete: delivered
    try testing.expectEqualStrings(data, h.collector.heaps.items[0].itemBytes(h.collector.heaps.items[0].items[0]));
    // Unsized heaps and out-of-order tables give no guess.
    try testing.expect(feedPart(&h, 2, data, 0, 5, false, &item));
    try testing.expectEqual(@as(?PendingPayload, null), h.table.pendingPayload(2));
    var o: Harness = undefined;
    try o.init(.{ .allow_out_of_order = true });
    defer o.deinit();
    try testing.expect(feedPart(&o, 1, data, 0, 5, true, &item));
    try testing.expectEqual(@as(?PendingPayload, null), o.table.pendingPayload(1));
}

test "out-of-order: fixed-seed shuffles, duplicates and partial overlaps" {
    var prng = std.Random.DefaultPrng.init(0x5eed);
    const random = prng.random();
    var data: [997]u8 = undefined;
    random.bytes(&data);
    const chunk = 64;
    const chunk_count = (data.len + chunk - 1) / chunk;
    var round: usize = 0;
    while (round < 20) : (round += 1) {
        var h: Harness = undefined;
        try h.init(.{ .allow_out_of_order = true });
        defer h.deinit();
        var order: [chunk_count]usize = undefined;
        for (&order, 0..) |*o, i| o.* = i;
        random.shuffle(usize, &order);
        var dups: u64 = 0;
        for (order, 0..) |c, i| {
            const off = c * chunk;
            const len = @min(chunk, data.len - off);
            try testing.expect(feedPart(&h, 7, &data, off, len, true, &.{addr(0x3000, 0)}));
            // re-send an earlier chunk now and then: a duplicate
            if (i + 1 < order.len and random.boolean()) {
                const d = order[random.uintLessThan(usize, i + 1)];
                const doff = d * chunk;
                try testing.expect(!feedPart(&h, 7, &data, doff, @min(chunk, data.len - doff), true, &.{}));
                dups += 1;
            }
        }
        try testing.expectEqual(dups, h.rejected(.duplicate));
        try testing.expectEqual(@as(usize, 1), h.collector.heaps.items.len);
        const f = h.collector.heaps.items[0];
        try testing.expect(f.complete);
        try testing.expectEqualSlices(u8, &data, f.itemBytes(f.items[0]));
    }

    var h: Harness = undefined;
    try h.init(.{ .allow_out_of_order = true });
    defer h.deinit();
    const d = "abcdefghijklmnop";
    try testing.expect(feedPart(&h, 1, d, 8, 4, true, &.{}));
    try testing.expect(!feedPart(&h, 1, d, 6, 4, true, &.{})); // runs into [8,12)
    try testing.expect(!feedPart(&h, 1, d, 9, 2, true, &.{})); // inside [8,12)
    try testing.expect(feedPart(&h, 1, d, 12, 4, true, &.{})); // merges
    try testing.expect(feedPart(&h, 1, d, 0, 8, true, &.{}));
    try testing.expectEqual(@as(u64, 1), h.rejected(.partial_overlap));
    try testing.expectEqual(@as(u64, 1), h.rejected(.duplicate));
    try testing.expectEqual(@as(usize, 1), h.collector.heaps.items.len);
}

test "eviction: heaps_max slots, round robin, incomplete heaps evicted" {
    var h: Harness = undefined;
    try h.init(.{ .heaps_max = 2 });
    defer h.deinit();
    const data = "0123456789";
    try testing.expect(feedPart(&h, 1, data, 0, 5, true, &.{addr(0x1000, 0)}));
    try testing.expect(feedPart(&h, 2, data, 0, 5, true, &.{addr(0x1000, 0)}));
    try testing.expectEqual(@as(usize, 2), h.table.liveCount());
    // heap 3 evicts heap 1 (round robin), heap 4 evicts heap 2
    try testing.expect(feedPart(&h, 3, data, 0, 5, true, &.{addr(0x1000, 0)}));
    try testing.expect(feedPart(&h, 4, data, 0, 5, true, &.{addr(0x1000, 0)}));
    try testing.expectEqual(@as(u64, 2), h.batch.incomplete_heaps_evicted);
    try testing.expectEqual(@as(usize, 2), h.collector.heaps.items.len);
    try testing.expectEqual(@as(u64, 1), h.collector.heaps.items[0].cnt);
    try testing.expect(!h.collector.heaps.items[0].contiguous);
    try testing.expectEqual(@as(usize, 0), h.collector.heaps.items[0].items.len);
    try testing.expectEqual(@as(u64, 0), h.collector.heaps.items[0].payload_size);
    try testing.expectEqual(@as(u64, 2), h.collector.heaps.items[1].cnt);
    // the rest of heap 1 now starts a new heap at offset 5 -> gap
    try testing.expect(!feedPart(&h, 1, data, 5, 5, true, &.{}));
    try testing.expect(feedPart(&h, 3, data, 5, 5, true, &.{}));
    try testing.expectEqual(@as(u64, 1), h.batch.complete_heaps);
    try testing.expectEqual(@as(u64, 1), h.flush());
    try testing.expectEqual(@as(usize, 4), h.collector.heaps.items.len);
    try testing.expectEqual(@as(usize, 0), h.table.liveCount());
}

test "substreams: cnt % substreams keeps interleaved senders apart" {
    var h: Harness = undefined;
    try h.init(.{ .heaps_max = 1, .substreams = 3 });
    defer h.deinit();
    const data = "0123456789";
    // three heaps interleaved; each substream has a single slot
    for ([_]u64{ 30, 31, 32 }) |cnt| try testing.expect(feedPart(&h, cnt, data, 0, 5, true, &.{}));
    for ([_]u64{ 30, 31, 32 }) |cnt| try testing.expect(feedPart(&h, cnt, data, 5, 5, true, &.{}));
    try testing.expectEqual(@as(u64, 0), h.batch.incomplete_heaps_evicted);
    try testing.expectEqual(@as(u64, 3), h.batch.complete_heaps);
    // same substream (33 % 3 == 30 % 3) evicts
    try testing.expect(feedPart(&h, 33, data, 0, 5, true, &.{}));
    try testing.expect(feedPart(&h, 36, data, 0, 5, true, &.{}));
    try testing.expectEqual(@as(u64, 1), h.batch.incomplete_heaps_evicted);
    try testing.expectEqual(@as(u64, 1), h.flush());
}

test "unsized heaps grow by doubling and complete only by flush" {
    var h: Harness = undefined;
    try h.init(.{});
    defer h.deinit();
    var data: [300]u8 = undefined;
    for (&data, 0..) |*b, i| b.* = @truncate(i * 7);
    var off: usize = 0;
    while (off < data.len) : (off += 30) {
        try testing.expect(feedPart(&h, 9, &data, off, 30, false, &.{addr(0x1000, 0)}));
    }
    const live = &h.table.slots[h.table.find(9, &h.batch).?].heap;
    try testing.expect(live.payload_reserved >= 300);
    try testing.expect(live.payload_reserved < 600);
    try testing.expectEqual(@as(usize, 0), h.collector.heaps.items.len);
    try testing.expectEqual(@as(u64, 1), h.flush());
    const f = h.collector.heaps.items[0];
    try testing.expect(!f.complete and f.contiguous);
    try testing.expectEqual(@as(?u64, null), f.heap_length);
    try testing.expectEqualSlices(u8, &data, f.itemBytes(f.items[0]));

    var h2: Harness = undefined;
    try h2.init(.{ .allow_unsized_heaps = false });
    defer h2.deinit();
    try testing.expect(!feedPart(&h2, 9, &data, 0, 30, false, &.{}));
    try testing.expectEqual(@as(u64, 1), h2.rejected(.no_heap_length));
    try testing.expectEqual(@as(usize, 0), h2.table.liveCount());
}

test "stop item: stops without delivery, or delivered with the end flag" {
    var h: Harness = undefined;
    try h.init(.{});
    defer h.deinit();
    const data = "0123456789";
    try testing.expect(feedPart(&h, 1, data, 0, 5, true, &.{}));
    try testing.expect(h.feed(40, &.{ imm(1, 2), imm(2, 1), imm(3, 0), imm(4, 1), imm(6, 2), addr(0, 0) }, "\x00"));
    try testing.expect(h.batch.stop);
    try testing.expectEqual(@as(usize, 0), h.collector.heaps.items.len);
    try testing.expectEqual(@as(u64, 0), h.batch.complete_heaps);
    try testing.expectEqual(@as(u64, 1), h.flush());

    var h2: Harness = undefined;
    try h2.init(.{ .stop_on_stop_item = false });
    defer h2.deinit();
    try testing.expect(h2.feed(40, &.{ imm(1, 2), imm(2, 1), imm(3, 0), imm(4, 1), imm(6, 2), addr(0, 0) }, "\x00"));
    try testing.expect(!h2.batch.stop);
    try testing.expectEqual(@as(usize, 1), h2.collector.heaps.items.len);
    const f = h2.collector.heaps.items[0];
    try testing.expect(f.end_of_stream and !f.start_of_stream and f.complete);
    try testing.expectEqual(@as(usize, 1), f.items.len);
}

test "heap length consistency, length_min and flavour checks" {
    var h: Harness = undefined;
    try h.init(.{});
    defer h.deinit();
    try testing.expect(h.feed(40, &.{ imm(1, 1), imm(2, 10), imm(3, 0), imm(4, 4), addr(0x1000, 8) }, "abcd"));
    try testing.expect(!h.feed(40, &.{ imm(1, 1), imm(2, 12), imm(3, 4), imm(4, 4) }, "efgh"));
    try testing.expectEqual(@as(u64, 1), h.rejected(.heap_length_inconsistent));
    try testing.expect(!h.feed(48, &.{ imm(1, 1), imm(2, 10), imm(3, 4), imm(4, 4) }, "efgh"));
    try testing.expectEqual(@as(u64, 1), h.rejected(.flavour_inconsistent));

    // an address beyond HEAP_LENGTH: later sized packets are too small for it
    try testing.expect(h.feed(40, &.{ imm(1, 2), imm(2, 10), imm(3, 0), imm(4, 4), addr(0x1000, 20) }, "abcd"));
    try testing.expect(!h.feed(40, &.{ imm(1, 2), imm(2, 10), imm(3, 4), imm(4, 4) }, "efgh"));
    try testing.expectEqual(@as(u64, 1), h.rejected(.heap_length_too_small));
    try testing.expectEqual(@as(u64, 2), h.flush());
    for (h.collector.heaps.items) |f| try testing.expect(!f.contiguous);
}

test "absurd heap lengths and pointer counts are refused without allocating" {
    var h: Harness = undefined;
    try h.init(.{ .heap_length_max = 1 << 20, .pointers_max = 4 });
    defer h.deinit();
    try testing.expect(!h.feed(40, &.{ imm(1, 1), imm(2, 1 << 39), imm(3, 0), imm(4, 4) }, "abcd"));
    try testing.expect(!h.feed(40, &.{ imm(1, 1), imm(3, (1 << 39) - 4), imm(4, 4) }, "abcd"));
    try testing.expectEqual(@as(u64, 2), h.rejected(.too_large));
    // unsized heap pushed past the limit by an item address
    try testing.expect(h.feed(40, &.{ imm(1, 2), imm(3, 0), imm(4, 4), addr(0x1000, 1 << 30) }, "abcd"));
    try testing.expect(!h.feed(40, &.{ imm(1, 2), imm(3, 4), imm(4, 4) }, "efgh"));
    try testing.expectEqual(@as(u64, 3), h.rejected(.too_large));
    try testing.expect(!h.feed(40, &.{ imm(1, 3), imm(2, 4), imm(3, 0), imm(4, 4), addr(0x1001, 0), addr(0x1002, 0), addr(0x1003, 0), addr(0x1004, 0), addr(0x1005, 0) }, "abcd"));
    try testing.expectEqual(@as(u64, 1), h.rejected(.too_many_pointers));
    try testing.expectEqual(@as(usize, 1), h.table.liveCount());
    try testing.expectEqual(@as(u64, 1), h.flush());
}

test "pointer de-duplication beyond the inline limit (repeat_pointers)" {
    var h: Harness = undefined;
    try h.init(.{});
    defer h.deinit();
    var pointers: [24]TestPointer = undefined;
    pointers[0] = imm(1, 5);
    pointers[1] = imm(2, 40);
    pointers[3] = imm(4, 20);
    var i: usize = 4;
    while (i < pointers.len) : (i += 1) pointers[i] = addr(0x1000 + i, (i - 4) * 2);
    var data: [40]u8 = undefined;
    for (&data, 0..) |*b, k| b.* = @truncate(k);
    pointers[2] = imm(3, 0);
    try testing.expect(h.feed(40, &pointers, data[0..20]));
    pointers[2] = imm(3, 20);
    try testing.expect(h.feed(40, &pointers, data[20..40]));
    const f = h.collector.heaps.items[0];
    try testing.expectEqual(@as(usize, 20), f.items.len);
    try testing.expectEqual(@as(u64, 2), f.items[0].length);
    try testing.expectEqual(@as(u64, 2), f.items[18].length);
    try testing.expectEqual(@as(u64, 40 - 38), f.items[19].length);
}

test "live_heap payload range rules (spead2 unittest sequences)" {
    var heap: LiveHeap = .{};
    defer heap.ranges.deinit(testing.allocator);
    const Case = struct { first: u64, last: u64, ok: bool };
    const cases = [_]Case{
        .{ .first = 100, .last = 200, .ok = true },
        .{ .first = 300, .last = 400, .ok = true },
        .{ .first = 150, .last = 200, .ok = false }, // duplicate
        .{ .first = 250, .last = 350, .ok = false }, // overlap into [300,400)
        .{ .first = 200, .last = 300, .ok = true }, // bridges both
        .{ .first = 0, .last = 100, .ok = true },
        .{ .first = 400, .last = 500, .ok = true },
        .{ .first = 499, .last = 600, .ok = false },
    };
    for (cases) |c| {
        try heap.ranges.ensureUnusedCapacity(testing.allocator, 1);
        switch (heap.planRange(c.first, c.last)) {
            .ok => |plan| {
                try testing.expect(c.ok);
                heap.applyRange(plan, c.first, c.last);
            },
            .rejected => try testing.expect(!c.ok),
        }
    }
    try testing.expectEqual(@as(usize, 1), heap.ranges.items.len);
    try testing.expectEqual(Range{ .first = 0, .last = 500 }, heap.ranges.items[0]);
}

const FailingPayloadAllocator = struct {
    fn payloadAllocator(self: *FailingPayloadAllocator) PayloadAllocator {
        return .{ .ctx = self, .vtable = &.{ .alloc = allocFn, .free = freeFn } };
    }
    fn allocFn(_: *anyopaque, _: usize) ?[]u8 {
        return null;
    }
    fn freeFn(_: *anyopaque, _: []u8) void {
        unreachable;
    }
};

test "allocation failure rejects the packet and leaves no empty heap" {
    var failing: FailingPayloadAllocator = .{};
    var table = try Table.init(testing.allocator, failing.payloadAllocator(), .{});
    defer table.deinit();
    var collector: Collector = .{ .payload_allocator = failing.payloadAllocator() };
    defer collector.deinit();
    var batch: Batch = .{};
    var buf: [256]u8 = undefined;
    const bytes = packet_mod.buildTestPacket(&buf, 40, &.{ imm(1, 1), imm(2, 8), imm(3, 0), imm(4, 4) }, "abcd");
    try testing.expect(!table.addPacket(packet_mod.decode(bytes).ok, &batch, collector.sink()));
    try testing.expectEqual(@as(u64, 1), batch.rejected[@intFromEnum(Reject.out_of_memory)]);
    try testing.expectEqual(@as(usize, 0), table.liveCount());
    try testing.expectEqual(@as(u64, 0), table.flush(collector.sink()));
}

test "memcpy nontemporal: heaps byte-exact as with std, in order, out of order and evicted" {
    var data: [20000]u8 = undefined;
    for (&data, 0..) |*b, i| b.* = @truncate(i * 151 + 3);
    const item = [_]TestPointer{addr(0x2000, 0)};
    var results: [2][]u8 = undefined;
    for ([_]Memcpy{ .std, .nontemporal }, 0..) |memcpy, r| {
        var h: Harness = undefined;
        try h.init(.{ .memcpy = memcpy, .allow_out_of_order = true, .heaps_max = 2 });
        defer h.deinit();
        // Heap 1 in order at odd sizes (unaligned destinations), heap 2 backwards.
        var offset: usize = 0;
        while (offset < data.len) : (offset += 2999) try testing.expect(feedPart(&h, 1, &data, offset, @min(2999, data.len - offset), true, &item));
        var end: usize = data.len;
        while (end > 0) : (end -|= 3000) try testing.expect(feedPart(&h, 2, &data, end -| 3000, end - (end -| 3000), true, &item));
        // Heap 3 stays partial and is evicted (heaps_max 2) by heaps 4 and 5
        // (whole heaps of 700 and 600 bytes in one packet).
        try testing.expect(feedPart(&h, 3, data[0..2000], 0, 1000, true, &item));
        try testing.expect(feedPart(&h, 4, data[0..700], 0, 700, true, &item));
        try testing.expect(feedPart(&h, 6, data[0..3000], 0, 1000, true, &item));
        try testing.expect(feedPart(&h, 5, data[100..700], 0, 600, true, &item));
        try testing.expectEqual(@as(u64, 1), h.flush()); // heap 6
        try testing.expectEqual(@as(usize, 6), h.collector.heaps.items.len);
        const heaps = h.collector.heaps.items;
        try testing.expectEqualSlices(u8, &data, heaps[0].itemBytes(heaps[0].items[0]));
        try testing.expectEqualSlices(u8, &data, heaps[1].itemBytes(heaps[1].items[0]));
        for (heaps[2..]) |f| switch (f.cnt) {
            3, 6 => try testing.expect(!f.complete),
            4 => try testing.expectEqualSlices(u8, data[0..700], f.itemBytes(f.items[0])),
            5 => try testing.expectEqualSlices(u8, data[100..700], f.itemBytes(f.items[0])),
            else => return error.TestUnexpectedResult,
        };
        // Everything delivered, concatenated, to compare the two runs.
        var all: std.ArrayListUnmanaged(u8) = .empty;
        for (heaps) |f| try all.appendSlice(testing.allocator, f.payload[0..@intCast(f.payload_size)]);
        results[r] = try all.toOwnedSlice(testing.allocator);
    }
    defer for (results) |x| testing.allocator.free(x);
    try testing.expectEqualSlices(u8, results[0], results[1]);
}
