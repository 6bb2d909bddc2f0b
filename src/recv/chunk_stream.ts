/**
 * Chunk streams (spead2's `recv.ChunkRingStream`, tutorial 12): heap payloads
 * are written by the native reader threads straight into large chunks, and JS
 * sees one object per chunk with a `present` byte per heap. Where each heap
 * goes is decided natively, per heap, by a declared {@link PlaceRule} or by a
 * C function from the user's own library ({@link PlaceFunction}); no JS runs
 * on the packet path.
 *
 * Chunks are leases, like received heaps: `data`, `present` and `extra` are
 * zero-copy views of native memory that JS may read while it holds the chunk.
 * Giving the chunk back (`addFreeChunk`, `putNowait`) or `release()` detaches
 * every view taken before (length 0), so a stale view can never read memory
 * the stream is writing or has freed.
 */
import { ChunkInfoView, ChunkRingStateView, ChunkRuleInfoView, ChunkSizesView } from "../../ffi/abi.gen.ts";
import { lib, native, Status } from "../../ffi/mod.ts";
import { checkInteger, Empty, fail, SpeadError, Stopped, untilStopped, untilStoppedSync } from "../errors.ts";
import { type NativeKind, NativeObject } from "../lifetime.ts";
import { statsReader } from "../native_stats.ts";
import type { ThreadPool } from "../thread_pool.ts";
import { RingStreamConfig, StreamConfig } from "./config.ts";
import { configRecord } from "./config_record.ts";
import {
  addBufferReaderTo,
  addFileReaderTo,
  addPcapFileReaderTo,
  addTcpReaderTo,
  addUdpReaderTo,
  type PcapFileReaderOptions,
  type TcpReaderInfo,
  type TcpReaderOptions,
  type UdpReaderInfo,
  type UdpReaderOptions,
} from "./readers.ts";
import type { StreamStats } from "./stream.ts";
import { streamKind } from "./stream_kind.ts";

/** Scratch for `spead_chunk_info`, read right after each call (a record per call would cost an ArrayBuffer). */
const chunkInfo = new ChunkInfoView();
const chunkInfoBytes = chunkInfo.bytes;

/** The `spead_chunk_create` record of checked sizes. */
function chunkSizes(data: number, present: number, extra: number): Uint8Array {
  const sizes = new ChunkSizesView();
  sizes.data_size = BigInt(data);
  sizes.present_size = BigInt(present);
  sizes.extra_size = BigInt(extra);
  return sizes.bytes;
}

/** An item ID, as a number or a bigint. */
export type ItemId = number | bigint;

function checkBig(name: string, v: number | bigint, min: bigint, max: bigint): bigint {
  if (typeof v === "number" && !Number.isSafeInteger(v)) {
    throw new SpeadError("invalid_argument", `${name} = ${v} must be an integer`);
  }
  const b = BigInt(v);
  if (b < min || b > max) throw new SpeadError("invalid_argument", `${name} = ${v} must be in [${min}, ${max}]`);
  return b;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

// ---------------------------------------------------------------------------
// Chunks

/** Sizes of a new {@link Chunk}, in bytes. */
export interface ChunkOptions {
  /** Payload bytes (`data`). */
  data: number;
  /** One byte per heap slot (`present`). */
  present: number;
  /** Per-heap extra bytes written by the placement (`extra`); default 0. */
  extra?: number;
}

/** Where a chunk's three regions lie in the one ArrayBuffer over its mapping. */
interface ChunkViews {
  buffer: ArrayBuffer;
  dataLength: number;
  presentOffset: number;
  presentLength: number;
  extraOffset: number;
  extraLength: number;
}

/** JS objects of chunks the library holds, so a popped chunk is the object that was given. */
const chunkObjects = new Map<number, WeakRef<Chunk>>();

/** Drops the map entry of a chunk object collected while the library held its chunk. */
const chunkObjectCleaner = new FinalizationRegistry<number>((handle) => {
  if (chunkObjects.get(handle)?.deref() === undefined) chunkObjects.delete(handle);
});

// The finalizer watches a chunk only while JS holds it; a chunk inside a ring is the ring's.
const chunkKind: NativeKind = {
  what: "recv.Chunk",
  destroy: lib.chunkDestroy,
  closedCode: "released",
  closedMessage: "chunk has been released",
};

/**
 * A chunk (spead2's `recv.Chunk`): native, pre-faulted memory for many heaps.
 * JS holds it after `new` and after taking it from a data ring; while it does,
 * `data`, `present` and `extra` are zero-copy views.
 */
export class Chunk extends NativeObject implements Disposable {
  #held = true;
  #views: ChunkViews | null = null;
  #chunkId = -1n;
  #streamId = 0;
  readonly #mapToken = {};

  /** A chunk of `options`' sizes, in pre-faulted native memory. */
  constructor(options: ChunkOptions) {
    const data = checkInteger("data", options.data, 1, 2 ** 40);
    const present = checkInteger("present", options.present, 1, 2 ** 40);
    const extra = checkInteger("extra", options.extra ?? 0, 0, 2 ** 40);
    super(Chunk.#adopting !== 0 ? Chunk.#adopting : lib.chunkCreate(chunkSizes(data, present, extra), "Chunk"), chunkKind);
  }

  #live(): ChunkViews {
    this.nativeHandle; // throws once released
    if (!this.#held) throw new SpeadError("invalid_state", "chunk belongs to a stream or ring; take it from the data ring first");
    return this.views;
  }

  /**
   * @internal The views, mapped on first use after JS got the chunk: one
   * ArrayBuffer over the chunk's whole mapping (data, present, extra lie in
   * one mapping), so a lease costs one external buffer and one detach.
   */
  get views(): ChunkViews {
    if (this.#views) return this.#views;
    const info = chunkInfo;
    lib.chunkInfo(this.nativeHandle, chunkInfoBytes, "chunk");
    this.#chunkId = info.chunk_id;
    this.#streamId = Number(info.stream_id);
    const base = info.data_address;
    const extraLen = Number(info.extra_size);
    const presentOffset = Number(info.present_address - base);
    const extraOffset = extraLen > 0 ? Number(info.extra_address - base) : 0;
    const end = Math.max(presentOffset + Number(info.present_size), extraOffset + extraLen);
    this.#views = {
      buffer: native.arrayBufferAt(base, end),
      dataLength: Number(info.data_size),
      presentOffset,
      presentLength: Number(info.present_size),
      extraOffset,
      extraLength: extraLen,
    };
    return this.#views;
  }

  /** The payload of every heap slot (zero-copy). */
  get data(): Uint8Array {
    const v = this.#live();
    return new Uint8Array(v.buffer, 0, v.dataLength);
  }

  /** One byte per heap slot: 1 when that heap arrived complete (zero-copy). */
  get present(): Uint8Array {
    const v = this.#live();
    return new Uint8Array(v.buffer, v.presentOffset, v.presentLength);
  }

  /** Per-heap values the placement copied (zero-copy), or null without extra bytes. */
  get extra(): Uint8Array | null {
    const v = this.#live();
    return v.extraLength > 0 ? new Uint8Array(v.buffer, v.extraOffset, v.extraLength) : null;
  }

  /** The chunk id the stream gave it (-1 before it went through a stream). */
  get chunkId(): bigint {
    this.#live();
    return this.#chunkId;
  }

  /** Index of the stream that filled it (its position in a group; 0 for a lone stream). */
  get streamId(): number {
    this.#live();
    return this.#streamId;
  }

  /** Whether JS holds the chunk now (false while a ring or stream does). */
  get isHeld(): boolean {
    return this.#held && !this.isClosed;
  }

  /** True once released. */
  get isReleased(): boolean {
    return this.isClosed;
  }

  #detach(): void {
    const v = this.#views;
    this.#views = null;
    const t = v?.buffer as (ArrayBuffer & { transfer?: (n: number) => ArrayBuffer }) | undefined;
    if (t && typeof t.transfer === "function") t.transfer(0);
  }

  /** @internal Hands the chunk to a ring: `put` is the native call; views detach first. */
  giveTo(put: (handle: number) => void): void {
    this.#live();
    this.#detach();
    const handle = this.nativeHandle;
    put(handle);
    this.#held = false;
    this.disown();
    chunkObjects.set(handle, new WeakRef(this));
    chunkObjectCleaner.register(this, handle, this.#mapToken);
  }

  /** @internal A ring handed the chunk (by handle) back to JS: the same object if it is still alive. */
  static taken(handle: number): Chunk {
    const existing = chunkObjects.get(handle)?.deref();
    chunkObjects.delete(handle);
    if (existing) {
      existing.#adopt(handle);
      return existing;
    }
    // Its object was collected while the library held it: a new one for the handle.
    Chunk.#adopting = handle;
    try {
      return new Chunk({ data: 1, present: 1 });
    } finally {
      Chunk.#adopting = 0;
    }
  }

  static #adopting = 0;

  #adopt(handle: number): void {
    chunkObjectCleaner.unregister(this.#mapToken);
    this.#held = true;
    this.#views = null;
    this.adopt(handle);
  }

  /** Frees the chunk's memory now. Idempotent; only while JS holds it. */
  release(): void {
    if (this.isClosed) return;
    if (!this.#held) throw new SpeadError("invalid_state", "chunk belongs to a stream or ring; it is freed with it");
    super.close();
  }

  /** Same as `release()`. */
  override close(): void {
    this.release();
  }

  /** Detaches every view before the memory goes. */
  protected override beforeClose(): void {
    this.#detach();
  }

  /** Same as `release()` (for `using`); a chunk a ring or stream holds is left to it. */
  override [Symbol.dispose](): void {
    if (this.isHeld) this.release();
  }
}

/** Wraps a handle popped from a ring. */
function takeChunk(handle: number): Chunk {
  return Chunk.taken(handle);
}

// ---------------------------------------------------------------------------
// Rings

const ringKind: NativeKind = {
  what: "recv.ChunkRingbuffer",
  stop: (h) => lib.chunkRingStop(h, "ring stop"),
  destroy: lib.chunkRingDestroy,
  wait: { waitAsync: lib.nonblocking?.chunkRingWait, setNotify: lib.chunkRingSetNotify, arm: lib.chunkRingArm },
  closedMessage: "ring has been closed",
};

/**
 * A ring of chunks (spead2's `recv.ChunkRingbuffer`): a stream's data ring
 * (finished chunks, for `for await (const chunk of dataRing)`) or free ring
 * (empty chunks for the stream to fill).
 */
export class ChunkRingbuffer extends NativeObject implements AsyncIterable<Chunk>, Iterable<Chunk>, Disposable {
  readonly #out = new Uint32Array(1);

  /** A ring holding at most `maxSize` chunks (1..65536). */
  constructor(maxSize: number) {
    checkInteger("maxSize", maxSize, 1, 65536);
    super(lib.chunkRingCreate(maxSize, "ChunkRingbuffer"), ringKind);
  }

  #state(): ChunkRingStateView {
    const state = new ChunkRingStateView();
    lib.chunkRingSize(this.nativeHandle, state.bytes, "ring size");
    return state;
  }

  /** Capacity. */
  get maxsize(): number {
    return this.#state().capacity;
  }

  /** Chunks inside now. */
  qsize(): number {
    return this.#state().chunk_count;
  }

  /** Whether the ring has been stopped. */
  get isStopped(): boolean {
    return this.#state().stopped !== 0;
  }

  /** Gives a chunk to the ring without waiting (throws `queue_full` or `Stopped`; JS keeps it then). */
  putNowait(chunk: Chunk): void {
    const ring = this.nativeHandle;
    chunk.giveTo((h) => lib.chunkRingPut(ring, h, "putNowait"));
  }

  /** Takes a chunk if one is ready; throws `Empty`, or `Stopped` once stopped and drained. */
  getNowait(): Chunk {
    const st = lib.chunkRingPop(this.nativeHandle, 0, this.#out);
    if (st === Status.ok) return takeChunk(this.#out[0]);
    return fail(st, "getNowait");
  }

  /** Blocks the thread until a chunk is ready (sync API). */
  getBlocking(timeoutMs = Infinity): Chunk {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const slice = Math.max(0, Math.min(1000, deadline - Date.now()));
      const st = lib.chunkRingPop(this.nativeHandle, slice, this.#out);
      if (st === Status.ok) return takeChunk(this.#out[0]);
      if (st === Status.stopped) fail(st, "get");
      if (Date.now() >= deadline) throw new Empty("timed out waiting for a chunk");
    }
  }

  /** Waits for a chunk without blocking the event loop; rejects with `Stopped` at the end. */
  async get(): Promise<Chunk> {
    for (;;) {
      const st = lib.chunkRingPop(this.nativeHandle, 0, this.#out);
      if (st === Status.ok) return takeChunk(this.#out[0]);
      if (st === Status.stopped) fail(st, "get");
      await this.waitReady();
    }
  }

  /** Chunks as they arrive (`for await`); ends when the ring is stopped and empty. */
  [Symbol.asyncIterator](): AsyncGenerator<Chunk, void, undefined> {
    return untilStopped(() => this.get());
  }

  /** Chunks already in the ring, without waiting; ends when none is ready. */
  [Symbol.iterator](): Generator<Chunk, void, undefined> {
    return untilStoppedSync(() => this.getBlocking());
  }

  /** Stops the ring: what is inside can still be taken, then `Stopped`. */
  stop(): void {
    this.stopNative();
  }

  /** Stops the ring and drops it; chunks inside are freed once no stream uses the ring. */
  override close(): void {
    super.close();
  }
}

// ---------------------------------------------------------------------------
// Placement

/** The timestamp axis of a {@link PlaceRule}. */
export interface PlaceRuleTimestamp {
  /** Item id of the timestamp (an immediate item, e.g. 0x1600). */
  item: ItemId;
  /** Timestamp units per heap slot (the heap size in tutorial 12). */
  step: number | bigint;
  /** Heap slots along time in one chunk. */
  heaps: number;
  /** Heap-index stride of one time step (default: the product of the axis counts). */
  stride?: number;
}

/** An index axis of a {@link PlaceRule} (an antenna, channel or beam index item). */
export interface PlaceRuleAxis {
  /** Item id carrying the index. */
  item: ItemId;
  /** Index values must be below this (heaps with larger ones are rejected). */
  count: number;
  /** Heap-index stride (default: row-major, the last axis varying fastest). */
  stride?: number;
}

/** An item value copied into `chunk.extra` for each heap. */
export interface PlaceRuleExtraField {
  /** The item whose value gives this axis' index. */
  item: ItemId;
  /** Byte offset within the heap's extra record. */
  offset: number;
  /** Bytes written, little-endian (1 to 8). */
  width: number;
}

/** Options of {@link PlaceRule}. */
export interface PlaceRuleOptions {
  /** Bytes of each heap slot in `chunk.data`; heap_offset = heap_index * heapBytes. */
  heapBytes: number;
  /** HEAP_LENGTH a heap must have (default heapBytes; 0: any up to heapBytes). */
  heapLength?: number;
  /** How a heap's timestamp chooses its chunk and its row in it. */
  timestamp: PlaceRuleTimestamp;
  /** Further axes (e.g. a channel item) that choose the heap's slot within the chunk. */
  axes?: PlaceRuleAxis[];
  /** Item values to copy into `extra`, `bytesPerHeap` per heap slot. */
  extra?: { bytesPerHeap: number; fields: PlaceRuleExtraField[] };
  /** Heap slots per chunk (`present` length); default the number the rule can address. */
  heapsPerChunk?: number;
}

/**
 * A placement declared as data and evaluated natively for each heap:
 *
 *     chunkId    = ts / (step * heaps)
 *     t          = (ts mod (step * heaps)) / step
 *     heapIndex  = t * timestamp.stride + sum(axis value * axis.stride)
 *     heapOffset = heapIndex * heapBytes
 *
 * Heaps missing an item, with a timestamp not a multiple of `step`, an index
 * value out of its axis or the wrong HEAP_LENGTH are rejected (counted in
 * `stats.rejected_heaps`). Bad rules (zero divisors, overflowing strides,
 * slots past the chunk) throw here.
 */
export class PlaceRule {
  /** Item ids the rule reads, in the order of spead2's `items`. */
  readonly items: readonly bigint[];
  /** Heap slots per chunk: the `present` size of the chunks to give. */
  readonly heapsPerChunk: number;
  /** `data` bytes per chunk. */
  readonly chunkBytes: number;
  /** `extra` bytes per chunk. */
  readonly extraBytes: number;
  /** Extra bytes per heap (spead2's max_heap_extra for this rule). */
  readonly heapExtra: number;
  /** @internal Native rule words (docs/ABI.md "Chunk streams"). */
  readonly words: BigUint64Array;

  /** Checks the rule; throws `invalid_argument` naming a bad field. */
  constructor(options: PlaceRuleOptions) {
    const items: bigint[] = [];
    const indexOf = (id: ItemId, what: string): number => {
      const b = checkBig(what, id, 0n, (1n << 56n) - 1n);
      let i = items.indexOf(b);
      if (i < 0) {
        i = items.length;
        items.push(b);
      }
      return i;
    };
    const heapBytes = checkInteger("heapBytes", options.heapBytes, 1, 2 ** 40);
    const heapLength = checkInteger("heapLength", options.heapLength ?? heapBytes, 0, heapBytes);
    const ts = options.timestamp;
    const timeItem = indexOf(ts.item, "timestamp.item");
    const step = checkBig("timestamp.step", ts.step, 1n, U64_MAX);
    const timeHeaps = checkInteger("timestamp.heaps", ts.heaps, 1, 2 ** 40);
    const axes = (options.axes ?? []).map((a, i) => ({
      item: indexOf(a.item, `axes[${i}].item`),
      count: checkInteger(`axes[${i}].count`, a.count, 1, 2 ** 40),
      stride: a.stride === undefined ? undefined : checkInteger(`axes[${i}].stride`, a.stride, 0, Number.MAX_SAFE_INTEGER),
    }));
    // Row-major defaults: the last axis varies fastest, time slowest.
    let next = 1;
    const strides: number[] = new Array(axes.length);
    for (let i = axes.length - 1; i >= 0; i--) {
      strides[i] = axes[i].stride ?? next;
      next = strides[i] * axes[i].count;
    }
    const timeStride = ts.stride === undefined ? next : checkInteger("timestamp.stride", ts.stride, 0, Number.MAX_SAFE_INTEGER);
    const extra = options.extra;
    const heapExtra = extra ? checkInteger("extra.bytesPerHeap", extra.bytesPerHeap, 0, 2 ** 20) : 0;
    const fields = (extra?.fields ?? []).map((f, i) => ({
      item: indexOf(f.item, `extra.fields[${i}].item`),
      offset: checkInteger(`extra.fields[${i}].offset`, f.offset, 0, 2 ** 20),
      width: checkInteger(`extra.fields[${i}].width`, f.width, 1, 8),
    }));
    const heapsDeclared = checkInteger("heapsPerChunk", options.heapsPerChunk ?? 0, 0, 2 ** 40);
    const w: bigint[] = [BigInt(items.length), ...items];
    w.push(BigInt(heapBytes), BigInt(heapLength), BigInt(timeItem), step, BigInt(timeHeaps), BigInt(timeStride));
    w.push(BigInt(axes.length));
    axes.forEach((a, i) => w.push(BigInt(a.item), BigInt(a.count), BigInt(strides[i])));
    w.push(BigInt(heapExtra), BigInt(fields.length));
    for (const f of fields) w.push(BigInt(f.item), BigInt(f.offset), BigInt(f.width));
    w.push(BigInt(heapsDeclared));
    this.words = BigUint64Array.from(w);
    const info = new ChunkRuleInfoView();
    const st = lib.chunkRuleCheck(this.words, this.words.length, info.bytes);
    if (st !== Status.ok) {
      throw new SpeadError(
        "invalid_argument",
        "PlaceRule: refused (a zero divisor, too many items/axes/fields, strides that overflow, " +
          "slots beyond heapsPerChunk, or extra fields past bytesPerHeap)",
        st,
      );
    }
    this.items = items;
    this.heapsPerChunk = Number(info.heap_count);
    this.chunkBytes = Number(info.data_size);
    this.extraBytes = Number(info.extra_size);
    this.heapExtra = heapExtra;
  }

  /** A chunk sized for this rule. */
  makeChunk(): Chunk {
    return new Chunk({ data: this.chunkBytes, present: this.heapsPerChunk, extra: this.extraBytes });
  }
}

/**
 * A native place function with spead2's C signature (include/spead_chunk.h):
 * `void place(spead_chunk_place_data *data, size_t data_size, void *user_data)`.
 * It runs on the reader thread for each heap's first packet, so it must be
 * quick and thread-safe; out-of-bounds placements it asks for are refused.
 */
export class PlaceFunction {
  /** Address of the function. */
  readonly address: bigint;
  /** Bytes copied for the stream; the function's `user_data` points at the copy. */
  readonly userData: Uint8Array;

  /** A native place function at `address` (C `void (*)(spead2_chunk_place_data *, size_t)`), with optional `userData` copied for it. */
  constructor(address: bigint, userData?: ArrayBufferView) {
    if (typeof address !== "bigint" || address <= 0n || address > U64_MAX) {
      throw new SpeadError("invalid_argument", "PlaceFunction: address must be a non-zero bigint");
    }
    this.address = address;
    this.userData = userData
      ? new Uint8Array(userData.buffer.slice(userData.byteOffset, userData.byteOffset + userData.byteLength))
      : new Uint8Array(0);
  }

  /** Loads `symbol` from the shared library at `path` (kept loaded for the life of the process). */
  static load(path: string, symbol: string, userData?: ArrayBufferView): PlaceFunction {
    const enc = new TextEncoder();
    const p = enc.encode(path);
    const s = enc.encode(symbol);
    const out = new BigUint64Array(1);
    const st = lib.chunkPlaceLookup(p, p.byteLength, s, s.byteLength, out);
    if (st !== Status.ok) {
      const cannotLoad = st === Status.system_error;
      const why = cannotLoad ? `cannot load ${path}` : `no symbol ${symbol} in ${path}`;
      throw new SpeadError(cannotLoad ? "system_error" : "invalid_argument", `PlaceFunction.load: ${why}`, st);
    }
    return new PlaceFunction(out[0], userData);
  }
}

/** Options of {@link ChunkStreamConfig}; defaults are spead2's. */
export interface ChunkStreamConfigOptions {
  /** Where heaps go. */
  place: PlaceRule | PlaceFunction;
  /** Item ids whose immediate values a {@link PlaceFunction} gets (a PlaceRule brings its own). */
  items?: ItemId[];
  /** Chunks under construction at once (default 2). */
  maxChunks?: number;
  /** Bytes a place function may write to `extra` per heap (default: the rule's, else 0). */
  maxHeapExtra?: number;
}

/** Chunk stream configuration (spead2's `recv.ChunkStreamConfig`); immutable. */
export class ChunkStreamConfig {
  /** spead2's default number of chunks under construction at once. */
  static readonly DEFAULT_MAX_CHUNKS = 2;
  /** How each heap is placed: a declarative rule or a native function. */
  readonly place: PlaceRule | PlaceFunction;
  /** Item IDs whose immediate values the place step sees, in order. */
  readonly items: readonly bigint[];
  /** Chunks under construction at once; the oldest is flushed when a heap needs another. */
  readonly maxChunks: number;
  /** Bytes of per-heap extra data the place step may write. */
  readonly maxHeapExtra: number;

  /** Checks the options; throws `invalid_argument` naming a bad field. */
  constructor(options: ChunkStreamConfigOptions) {
    const place = options.place;
    if (!(place instanceof PlaceRule) && !(place instanceof PlaceFunction)) {
      throw new SpeadError("invalid_argument", "ChunkStreamConfig: place must be a PlaceRule or a PlaceFunction");
    }
    this.place = place;
    this.maxChunks = checkInteger("maxChunks", options.maxChunks ?? ChunkStreamConfig.DEFAULT_MAX_CHUNKS, 1, 65536);
    if (place instanceof PlaceRule) {
      if (options.items !== undefined) {
        throw new SpeadError("invalid_argument", "ChunkStreamConfig: items come from the PlaceRule; do not pass them too");
      }
      this.items = place.items;
      this.maxHeapExtra = checkInteger("maxHeapExtra", options.maxHeapExtra ?? place.heapExtra, place.heapExtra, 2 ** 20);
    } else {
      this.items = (options.items ?? []).map((id, i) => checkBig(`items[${i}]`, id, 0n, (1n << 56n) - 1n));
      if (this.items.length > 64) throw new SpeadError("invalid_argument", "ChunkStreamConfig: at most 64 items");
      this.maxHeapExtra = checkInteger("maxHeapExtra", options.maxHeapExtra ?? 0, 0, 2 ** 20);
    }
  }

  /** @internal Native chunk config words. */
  words(): BigUint64Array {
    const head = [BigInt(this.maxChunks), BigInt(this.maxHeapExtra)];
    if (this.place instanceof PlaceRule) return BigUint64Array.from([...head, 0n, ...this.place.words]);
    return BigUint64Array.from([...head, 1n, this.place.address, BigInt(this.items.length), ...this.items]);
  }
}

// ---------------------------------------------------------------------------
// Chunk ring stream

/** Chunk stream statistics: the stream's own plus spead2's chunk counters. */
export type ChunkStreamStats = StreamStats & {
  /** Heaps whose chunk had already left the window. */
  readonly too_old_heaps: number;
  /** Heaps the placement refused (or placed out of bounds). */
  readonly rejected_heaps: number;
};

const readChunkStats = statsReader(lib.chunkStreamStatName, lib.chunkStreamStats, "chunk stats");
const readStreamStats = statsReader(lib.recvStreamStatName, lib.recvStreamStats, "stats");

const chunkStreamKind: NativeKind = { ...streamKind, what: "recv.ChunkRingStream", reportReclaimed: false };

/** What every chunk stream has: readers, statistics, stop and close. */
export abstract class ChunkStreamBase extends NativeObject implements Disposable {
  /** The stream configuration it was created with. */
  readonly config: StreamConfig;
  /** The chunk configuration it was created with. */
  readonly chunkStreamConfig: ChunkStreamConfig;

  /** @internal `create` makes the native stream from the config words and returns its handle. */
  constructor(
    config: StreamConfig,
    chunkStreamConfig: ChunkStreamConfig,
    threadPool: ThreadPool | undefined,
    create: (words: Uint8Array, chunkWords: BigUint64Array, user: Uint8Array, what: string) => number,
    what: string,
  ) {
    if (config.memoryAllocator !== undefined) {
      throw new SpeadError("invalid_argument", `${what}: heaps go into chunks; a memoryAllocator has no use here`);
    }
    const words = configRecord(config, new RingStreamConfig(), threadPool?.nextCore() ?? -1);
    const place = chunkStreamConfig.place;
    const user = place instanceof PlaceFunction ? place.userData : new Uint8Array(0);
    super(create(words, chunkStreamConfig.words(), user, what), chunkStreamKind);
    this.config = config;
    this.chunkStreamConfig = chunkStreamConfig;
  }

  /** Feeds a buffer of concatenated packets (copied); the stream stops at its end. */
  addBufferReader(bytes: Uint8Array): void {
    addBufferReaderTo(this.nativeHandle, bytes);
  }

  /** Reads a file of concatenated packets (mapped, read in place); the stream stops at its end: see `Stream.addFileReader`. */
  addFileReader(path: string): void {
    addFileReaderTo(this.nativeHandle, path);
  }

  /** Replays the UDP datagrams of a pcap capture; the stream stops at its end: see `Stream.addUdpPcapFileReader`. */
  addUdpPcapFileReader(path: string, options?: PcapFileReaderOptions): void {
    addPcapFileReaderTo(this.nativeHandle, path, options);
  }

  /** Receives UDP (unicast, or multicast with a group): see `Stream.addUdpReader`. */
  addUdpReader(port: number, options?: UdpReaderOptions): UdpReaderInfo;
  /** Joins the multicast `multicastGroup` and receives on `port`. */
  addUdpReader(multicastGroup: string, port: number, options?: UdpReaderOptions): UdpReaderInfo;
  addUdpReader(a: number | string, b?: number | UdpReaderOptions, c?: UdpReaderOptions): UdpReaderInfo {
    return addUdpReaderTo(this.nativeHandle, a, b, c);
  }

  /** Receives SPEAD over one TCP connection; the stream stops when the peer closes: see `Stream.addTcpReader`. */
  addTcpReader(port: number, options?: TcpReaderOptions): TcpReaderInfo {
    return addTcpReaderTo(this.nativeHandle, port, options);
  }

  /** Statistics: the stream's (spead2's names) then `too_old_heaps` and `rejected_heaps`. */
  get stats(): ChunkStreamStats {
    const h = this.nativeHandle;
    return { ...readStreamStats(h), ...readChunkStats(h) } as ChunkStreamStats;
  }

  /** Stops the stream (see the subclasses for what else stops with it). */
  stop(): void {
    this.stopNative();
  }

  /** Stops the stream and frees it (the rings stay with their owners). */
  override close(): void {
    super.close();
  }

  /** A member stops the whole group first, as its `stop()` does. */
  protected override beforeClose(): void {
    this.stop();
  }
}

/** Gives an empty chunk to a free ring (spead2's `add_free_chunk`): present cleared, a stopped ring ignored. */
function addFreeChunkTo(ring: ChunkRingbuffer, chunk: Chunk): void {
  chunk.present.fill(0);
  try {
    ring.putNowait(chunk);
  } catch (err) {
    if (err instanceof Stopped) return;
    throw err;
  }
}

/**
 * A chunk stream fed by readers, taking empty chunks from `freeRing` and
 * putting finished ones on `dataRing` (spead2's `recv.ChunkRingStream`).
 * When the stream stops (a stop heap, end of a buffer, or `stop()`) the data
 * ring stops once the last chunks are on it.
 */
export class ChunkRingStream extends ChunkStreamBase {
  /** Where completed chunks arrive. */
  readonly dataRingbuffer: ChunkRingbuffer;
  /** Where empty chunks come from; give chunks back to it once used. */
  readonly freeRingbuffer: ChunkRingbuffer;

  /** A chunk stream (spead2's `ChunkRingStream`): heaps go straight into chunks taken from the free ring. */
  constructor(
    config: StreamConfig,
    chunkStreamConfig: ChunkStreamConfig,
    dataRing: ChunkRingbuffer,
    freeRing: ChunkRingbuffer,
    options: { threadPool?: ThreadPool } = {},
  ) {
    if (dataRing === freeRing) throw new SpeadError("invalid_argument", "ChunkRingStream: the data and free rings must differ");
    super(config, chunkStreamConfig, options.threadPool, (words, chunkWords, user, what) =>
      lib.chunkStreamCreate(
        words,
        chunkWords,
        chunkWords.length,
        user,
        user.byteLength,
        dataRing.nativeHandle,
        freeRing.nativeHandle,
        what,
      ), "ChunkRingStream");
    this.dataRingbuffer = dataRing;
    this.freeRingbuffer = freeRing;
  }

  /**
   * Gives an empty chunk to the free ring (spead2's `add_free_chunk`): its
   * `present` is cleared, its views detach, and the stream may fill it.
   * Throws `queue_full` if the free ring is full; a stopped ring leaves the
   * chunk with JS silently, as spead2 does.
   */
  addFreeChunk(chunk: Chunk): void {
    addFreeChunkTo(this.freeRingbuffer, chunk);
  }

  /**
   * Stops the stream: both rings stop first (so a reader blocked on them lets
   * go), then readers finish. Chunks already on the data ring can still be
   * taken; chunks under construction are dropped, as in spead2.
   */
  override stop(): void {
    super.stop();
  }
}

// ---------------------------------------------------------------------------
// Groups

/** spead2's `ChunkStreamGroupConfig.EvictionMode`. */
export enum EvictionMode {
  /** A member that needs a new chunk forces the others to let go of old ones (their late heaps are lost). */
  LOSSY = 0,
  /** A chunk is ready only once every member has finished with it (a silent member holds everyone up). */
  LOSSLESS = 1,
}

/** Options of {@link ChunkStreamGroupConfig}; defaults are spead2's. */
export interface ChunkStreamGroupConfigOptions {
  /** Chunks under construction at once, shared by the members (default 2). */
  maxChunks?: number;
  /** Default LOSSY. */
  evictionMode?: EvictionMode;
}

/** Group configuration (spead2's `recv.ChunkStreamGroupConfig`); immutable. */
export class ChunkStreamGroupConfig {
  /** spead2's default number of chunks a group keeps under construction. */
  static readonly DEFAULT_MAX_CHUNKS = 2;
  /** spead2's `ChunkStreamGroupConfig.EvictionMode` (LOSSY or LOSSLESS). */
  static readonly EvictionMode: typeof EvictionMode = EvictionMode;
  /** Chunks under construction at once across the group. */
  readonly maxChunks: number;
  /** What happens to a member's oldest chunk when another is needed. */
  readonly evictionMode: EvictionMode;

  /** Checks the options; throws `invalid_argument` naming a bad field. */
  constructor(options: ChunkStreamGroupConfigOptions = {}) {
    this.maxChunks = checkInteger("maxChunks", options.maxChunks ?? ChunkStreamGroupConfig.DEFAULT_MAX_CHUNKS, 1, 65536);
    const mode = options.evictionMode ?? EvictionMode.LOSSY;
    if (mode !== EvictionMode.LOSSY && mode !== EvictionMode.LOSSLESS) {
      throw new SpeadError("invalid_argument", `evictionMode must be EvictionMode.LOSSY or LOSSLESS, not ${mode}`);
    }
    this.evictionMode = mode;
  }
}

/** A member stream of a {@link ChunkStreamRingGroup} (spead2's `ChunkStreamGroupMember`). */
export class ChunkStreamGroupMember extends ChunkStreamBase {
  /** Its position in the group (the `streamId` of what it writes). */
  readonly index: number;
  readonly #group: ChunkStreamRingGroup;

  /** @internal Made by `ChunkStreamRingGroup.emplaceBack`. */
  constructor(group: ChunkStreamRingGroup, index: number, config: StreamConfig, chunkStreamConfig: ChunkStreamConfig, threadPool?: ThreadPool) {
    super(config, chunkStreamConfig, threadPool, (words, chunkWords, user, what) =>
      lib.chunkGroupAddStream(
        group.nativeHandle,
        words,
        chunkWords,
        chunkWords.length,
        user,
        user.byteLength,
        what,
      ), "emplaceBack");
    this.index = index;
    this.#group = group;
  }

  /** Stops the whole group, as spead2 does. */
  override stop(): void {
    this.#group.stop();
  }
}

const groupKind: NativeKind = {
  what: "recv.ChunkStreamRingGroup",
  stop: (h) => lib.chunkGroupStop(h, "group stop"),
  destroy: lib.chunkGroupDestroy,
  closedMessage: "group has been closed",
};

/**
 * Several chunk streams filling the same chunks, aligned by chunk id (spead2's
 * `recv.ChunkStreamRingGroup`): one member per port or multicast group, each
 * with its own readers, all taking chunks from `freeRing`; a chunk goes to
 * `dataRing` once every member is done with it (or, LOSSY, once one member
 * needs the room). The data ring stops when every member has stopped.
 */
export class ChunkStreamRingGroup extends NativeObject implements Disposable, Iterable<ChunkStreamGroupMember> {
  /** The group configuration it was created with. */
  readonly config: ChunkStreamGroupConfig;
  /** Where completed chunks of every member arrive. */
  readonly dataRingbuffer: ChunkRingbuffer;
  /** Where empty chunks come from; give chunks back to it once used. */
  readonly freeRingbuffer: ChunkRingbuffer;
  readonly #members: ChunkStreamGroupMember[] = [];

  /** A group of chunk streams sharing chunks (spead2's `ChunkStreamRingGroup`); add members with `emplaceBack`. */
  constructor(config: ChunkStreamGroupConfig, dataRing: ChunkRingbuffer, freeRing: ChunkRingbuffer) {
    if (dataRing === freeRing) throw new SpeadError("invalid_argument", "ChunkStreamRingGroup: the data and free rings must differ");
    super(
      lib.chunkGroupCreate(config.maxChunks, config.evictionMode, dataRing.nativeHandle, freeRing.nativeHandle, "ChunkStreamRingGroup"),
      groupKind,
    );
    this.config = config;
    this.dataRingbuffer = dataRing;
    this.freeRingbuffer = freeRing;
  }

  /**
   * Adds a member stream (spead2's `emplace_back`); only before any data has
   * arrived, and with `chunkStreamConfig.maxChunks` at most the group's.
   */
  emplaceBack(config: StreamConfig, chunkStreamConfig: ChunkStreamConfig, options: { threadPool?: ThreadPool } = {}): ChunkStreamGroupMember {
    const member = new ChunkStreamGroupMember(this, this.#members.length, config, chunkStreamConfig, options.threadPool);
    this.#members.push(member);
    return member;
  }

  /** Number of members. */
  get length(): number {
    return this.#members.length;
  }

  /** The member at `index`. */
  at(index: number): ChunkStreamGroupMember | undefined {
    return this.#members.at(index);
  }

  /** The group's member streams, in order. */
  [Symbol.iterator](): Iterator<ChunkStreamGroupMember> {
    return this.#members[Symbol.iterator]();
  }

  /** Gives an empty chunk to the free ring (see `ChunkRingStream.addFreeChunk`). */
  addFreeChunk(chunk: Chunk): void {
    addFreeChunkTo(this.freeRingbuffer, chunk);
  }

  /** Stops both rings, then every member. Chunks already on the data ring can still be taken. */
  stop(): void {
    this.stopNative();
  }

  /** Stops the group and frees it and its members (the rings stay with their owners). */
  override close(): void {
    super.close();
  }

  /** Stops the group, then closes every member. */
  protected override beforeClose(): void {
    this.stopNative();
    for (const m of this.#members) m.close();
  }
}
