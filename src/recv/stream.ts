/**
 * Receive streams (spead2's `recv.Stream` / `recv.asyncio.Stream`). Readers
 * run on native threads and reassemble heaps into a bounded ring; JS drains the
 * ring. Native threads never call JS: under Bun a threadsafe doorbell wakes the
 * event loop, under Deno a nonblocking wait call resolves a Promise.
 */
import { native, Status } from "../../ffi/mod.ts";
import { check, checkInstance, checkInteger, Empty, SpeadError, Stopped } from "../errors.ts";
import { statsReader } from "../native_stats.ts";
import { type NativeParts, streamFinalizer } from "../lifetime.ts";
import { ThreadPool } from "../thread_pool.ts";
import { RingStreamConfig, StreamConfig } from "./config.ts";
import { configRecord } from "./config_record.ts";
import type { Heap } from "./heap.ts";
import { wrapHeap } from "./heap_wrap.ts";
import { addBufferReaderTo, addFileReaderTo, addUdpReaderTo, type UdpReaderInfo, type UdpReaderOptions } from "./readers.ts";


/** Most heaps one getBatch call takes (the native pop_batch limit). */
const POP_BATCH_MAX = 4096;
/** Longest single native wait; keeps shutdown prompt and the process alive while waiting. */
const WAIT_SLICE_MS = 50;

/** spead2's stream statistics, by name (`stats.heaps`, `stats["packets"]`). */
export type StreamStats = Record<string, number> & {
  readonly heaps: number;
  readonly incomplete_heaps_evicted: number;
  readonly incomplete_heaps_flushed: number;
  readonly packets: number;
  readonly batches: number;
  readonly max_batch: number;
  readonly single_packet_heaps: number;
  readonly search_dist: number;
  readonly worker_blocked: number;
};

const readStreamStats = statsReader(
  (i, out, cap, len) => native.symbols.spead_recv_stream_stat_name(i, out, cap, len),
  (h, out, cap, n) => native.symbols.spead_recv_stream_stats(h, out, cap, n),
  "stats",
);

const finalizer = streamFinalizer((h) => native.symbols.spead_recv_stream_destroy(h), "recv.Stream");

/**
 * A stream of received heaps. Add readers, then take heaps with `get()`
 * (async), `getNowait()`, `for await (const heap of stream)` or the blocking
 * `for (const heap of stream)`. Each heap is a lease to `release()`.
 */
export class Stream implements AsyncIterable<Heap>, Iterable<Heap>, Disposable {
  /** The stream configuration it was created with. */
  readonly config: StreamConfig;
  /** The ring configuration it was created with. */
  readonly ringConfig: RingStreamConfig;
  #handle: number;
  readonly #token = {};
  #doorbell: { close(): void } | null = null;
  readonly #parts: NativeParts;
  #wakers: Array<() => void> = [];
  #pendingWaits = 0;
  #destroyWhenIdle = false;
  readonly #out = new Uint32Array(1);
  #batch = new Uint32Array(0);
  /** Bounds a lost wake-up and keeps the process alive while waits are pending (Bun). */
  #keepAlive: ReturnType<typeof setInterval> | null = null;

  /**
   * @param options.threadPool pins this stream's reader threads (spead2 passes a
   *   `ThreadPool` first; here it is optional and only carries the affinity)
   */
  /** A receive stream (spead2's `recv.Stream`) with a native I/O thread per reader; add readers, then iterate. */
  constructor(config?: StreamConfig, ringConfig?: RingStreamConfig, options?: { threadPool?: ThreadPool });
  /** spead2's positional form: `recv.Stream(thread_pool, config, ring_config)`. */
  constructor(threadPool: ThreadPool, config?: StreamConfig, ringConfig?: RingStreamConfig);
  constructor(
    a: StreamConfig | ThreadPool = new StreamConfig(),
    b?: RingStreamConfig | StreamConfig,
    c?: { threadPool?: ThreadPool } | RingStreamConfig,
  ) {
    const spead2Form = a instanceof ThreadPool;
    const config = spead2Form ? b ?? new StreamConfig() : a;
    const ringConfig = (spead2Form ? c : b) ?? new RingStreamConfig();
    const options = spead2Form ? { threadPool: a } : (c as { threadPool?: ThreadPool } | undefined) ?? {};
    const form = "recv.Stream(config?, ringConfig?, { threadPool }?) or recv.Stream(threadPool, config?, ringConfig?)";
    this.config = checkInstance("config", config, StreamConfig, `a recv.StreamConfig (${form})`);
    this.ringConfig = checkInstance("ringConfig", ringConfig, RingStreamConfig, `a recv.RingStreamConfig (${form})`);
    if (options.threadPool !== undefined) checkInstance("threadPool", options.threadPool, ThreadPool, "a ThreadPool");
    const out = new Uint32Array(1);
    const record = configRecord(this.config, this.ringConfig, options.threadPool?.nextCore() ?? -1);
    check(native.symbols.spead_recv_stream_create(record, out), "recv.Stream");
    this.#handle = out[0];
    this.#parts = { handle: this.#handle, doorbell: null };
    finalizer.register(this, this.#parts, this.#token);
  }

  /** @internal Native handle for readers defined elsewhere; throws once closed. */
  get nativeHandle(): number {
    if (this.#handle === 0) throw new SpeadError("closed", "stream has been closed");
    return this.#handle;
  }

  /**
   * Feeds a buffer of concatenated SPEAD packets (e.g. `BytesStream.getValue()`)
   * through the stream. When the buffer ends the stream stops, as spead2's
   * `add_buffer_reader` does.
   *
   * Ordinary JS memory is copied first (the reader thread must not read memory
   * the garbage collector may move or free). A view of a
   * {@link send.NativeBuffer} (`allocateBuffer(n)`, filled through its `bytes`)
   * is read in place, without that copy: the reader holds its own reference, so
   * releasing the buffer meanwhile is safe, and the same buffer can feed many
   * streams. Writing into it while a reader runs changes what that reader sees.
   */
  addBufferReader(bytes: Uint8Array): void {
    addBufferReaderTo(this.nativeHandle, bytes);
  }

  /**
   * Reads a file of concatenated SPEAD packets (what `send.BytesStream` and
   * spead2's `BytesStream` write; docs/PROTOCOL.md §10) and stops the stream at
   * its end, like {@link addBufferReader} over the file's bytes. The file is
   * mapped read-only by the native reader (JS never holds the mapping) and each
   * byte is copied once, into its heap; the reader maps pages in a few MiB
   * ahead of where it reads instead of faulting on each.
   *
   * Bad contents are counted, never fatal: the reader stops at the first packet
   * it cannot decode (a truncated last packet counts in
   * `stats.packets_rejected_truncated`, other bytes in `packets_rejected_bad_magic`
   * and friends), as spead2's memory reader does. The file must not shrink while
   * it is being read (as with any mapping, the reader would fault).
   *
   * @param path the file; throws `SpeadError` (`system_error`, with the errno)
   *   when it cannot be opened or mapped, `invalid_argument` when it is not a
   *   regular file
   */
  addFileReader(path: string): void {
    addFileReaderTo(this.nativeHandle, path);
  }

  /**
   * Receives UDP datagrams (spead2's `add_udp_reader`): a native thread reads
   * up to 64 datagrams per recvmmsg (with GRO where available) and feeds them
   * to the stream. Two forms:
   * - `addUdpReader(port, { bindHostname, maxSize, bufferSize })` — unicast;
   *   port 0 picks a free port (the returned info says which);
   * - `addUdpReader(group, port, { interfaceAddress | interfaceIndex, ... })` —
   *   joins the multicast `group` (IPv4 or IPv6).
   */
  addUdpReader(port: number, options?: UdpReaderOptions): UdpReaderInfo;
  /** Joins the multicast `multicastGroup` and receives on `port`. */
  addUdpReader(multicastGroup: string, port: number, options?: UdpReaderOptions): UdpReaderInfo;
  addUdpReader(a: number | string, b?: number | UdpReaderOptions, c?: UdpReaderOptions): UdpReaderInfo {
    return addUdpReaderTo(this.nativeHandle, a, b, c);
  }

  /** Returns the next heap if one is ready; throws `Empty`, or `Stopped` once stopped and drained. */
  getNowait(): Heap {
    const st = native.symbols.spead_recv_stream_try_pop(this.nativeHandle, this.#out);
    check(st, "getNowait");
    return wrapHeap(this.#out[0]);
  }

  /** Blocks the thread until a heap is ready (sync API); throws `Stopped` at the end. */
  getBlocking(timeoutMs = Infinity): Heap {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const slice = Math.max(0, Math.min(1000, deadline - Date.now()));
      const st = native.symbols.spead_recv_stream_pop(this.nativeHandle, slice, this.#out);
      if (st === 0) return wrapHeap(this.#out[0]);
      if (st !== Status.empty) check(st, "get");
      if (Date.now() >= deadline) throw new Empty("timed out waiting for a heap");
    }
  }

  /**
   * Waits for the next heap without blocking the event loop; rejects with
   * `Stopped` at the end. Readers announce heaps once per batch, so after one
   * wake-up the following calls find their heap ready and do not wait.
   */
  async get(): Promise<Heap> {
    for (;;) {
      const st = native.symbols.spead_recv_stream_try_pop(this.nativeHandle, this.#out);
      if (st === 0) return wrapHeap(this.#out[0]);
      if (st !== Status.empty) check(st, "get");
      await this.#waitReady();
    }
  }

  /**
   * Waits until at least one heap is ready, then takes every ready heap, up to
   * `max`, in one native call. Rejects with `Stopped` once the stream has
   * stopped and every heap has been taken. Each heap is a lease to
   * `release()` as usual; heaps taken here have left the ring, so while they
   * are held the readers may fill the ring again (a memory pool must have
   * room for both).
   *
   * @param max largest number of heaps to return (1 to 4096; default: the ring size)
   */
  async getBatch(max: number = Math.min(this.ringConfig.heaps, POP_BATCH_MAX)): Promise<Heap[]> {
    if (!Number.isInteger(max) || max < 1 || max > POP_BATCH_MAX) {
      throw new RangeError(`getBatch: max must be an integer from 1 to ${POP_BATCH_MAX}, not ${max}`);
    }
    if (this.#batch.length < max) this.#batch = new Uint32Array(max);
    for (;;) {
      const st = native.symbols.spead_recv_stream_pop_batch(this.nativeHandle, 0, this.#batch, max, this.#out);
      if (st === 0) {
        const n = this.#out[0];
        const heaps = new Array<Heap>(n);
        for (let i = 0; i < n; i++) heaps[i] = wrapHeap(this.#batch[i]);
        return heaps;
      }
      if (st !== Status.empty) check(st, "getBatch");
      await this.#waitReady();
    }
  }

  /** Resolves when a heap may be ready or the stream may have stopped. */
  async #waitReady(): Promise<void> {
    const handle = this.nativeHandle;
    this.#pendingWaits++;
    try {
      if (native.asyncSymbols) {
        await native.asyncSymbols.spead_recv_stream_wait(handle, WAIT_SLICE_MS);
        return;
      }
      this.#ensureDoorbell();
      await new Promise<void>((resolve) => {
        this.#wakers.push(resolve);
        this.#ensureKeepAlive();
        native.symbols.spead_recv_stream_arm(handle);
      });
    } finally {
      this.#pendingWaits--;
      if (this.#pendingWaits === 0 && this.#destroyWhenIdle) this.#destroyNow();
    }
  }

  /**
   * One interval per stream while it is being waited on, not a timer per wait:
   * it keeps the process alive (a Bun doorbell does not), wakes waiters every
   * WAIT_SLICE_MS in case a wake-up was lost, and ends itself once nobody waits.
   */
  #ensureKeepAlive(): void {
    if (this.#keepAlive !== null) return;
    this.#keepAlive = setInterval(() => {
      const wakers = this.#wakers;
      if (wakers.length === 0) {
        this.#stopKeepAlive();
        return;
      }
      this.#wakers = [];
      for (const w of wakers) w();
    }, WAIT_SLICE_MS);
  }

  #stopKeepAlive(): void {
    if (this.#keepAlive === null) return;
    clearInterval(this.#keepAlive);
    this.#keepAlive = null;
  }

  #ensureDoorbell(): void {
    if (this.#doorbell) return;
    const self = new WeakRef(this);
    const bell = native.createDoorbell(() => {
      const stream = self.deref();
      if (stream) stream.#ring();
    });
    if (!bell) return;
    this.#parts.doorbell = bell;
    check(native.symbols.spead_recv_stream_set_notify(this.nativeHandle, bell.pointer), "set_notify");
    this.#doorbell = bell;
  }

  /** Wakes every pending get(). */
  #ring(): void {
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const w of wakers) w();
  }

  /** Heaps as they arrive (`for await`); ends once the stream has stopped and is drained. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Heap, void, undefined> {
    for (;;) {
      try {
        yield await this.get();
      } catch (err) {
        if (err instanceof Stopped) return;
        throw err;
      }
    }
  }

  /**
   * Iterates in batches: each step is a {@link getBatch} of up to `max` heaps;
   * ends when the stream has stopped and every heap has been taken.
   */
  async *batches(max?: number): AsyncGenerator<Heap[], void, undefined> {
    for (;;) {
      try {
        yield await this.getBatch(max);
      } catch (err) {
        if (err instanceof Stopped) return;
        throw err;
      }
    }
  }

  /** Heaps already in the ring, without waiting; ends when none is ready. */
  *[Symbol.iterator](): Generator<Heap, void, undefined> {
    for (;;) {
      try {
        yield this.getBlocking();
      } catch (err) {
        if (err instanceof Stopped) return;
        throw err;
      }
    }
  }

  /** Current statistics (spead2's names; see docs/ABI.md for our extra counters). */
  get stats(): StreamStats {
    return readStreamStats(this.nativeHandle) as StreamStats;
  }

  /** Stops readers and flushes partial heaps; heaps already in the ring can still be taken. */
  stop(): void {
    if (this.#handle === 0) return;
    check(native.symbols.spead_recv_stream_stop(this.#handle), "stop");
  }

  /** Stops the stream and frees it; heaps still in the ring are freed, heaps already taken stay valid. */
  close(): void {
    if (this.#handle === 0) return;
    this.stop();
    if (this.#doorbell) native.symbols.spead_recv_stream_set_notify(this.#handle, null);
    if (this.#pendingWaits > 0) {
      this.#destroyWhenIdle = true; // a Deno wait is still inside the library; destroy when it returns
      return;
    }
    this.#destroyNow();
  }

  #destroyNow(): void {
    const handle = this.#handle;
    if (handle === 0) return;
    this.#handle = 0;
    this.#destroyWhenIdle = false;
    finalizer.unregister(this.#token);
    native.symbols.spead_recv_stream_destroy(handle);
    this.#doorbell?.close();
    this.#doorbell = null;
    this.#stopKeepAlive();
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const w of wakers) w();
  }

  /** Same as `close()` (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

