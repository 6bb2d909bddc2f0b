/**
 * Receive streams (spead2's `recv.Stream` / `recv.asyncio.Stream`). Readers
 * run on native threads and reassemble heaps into a bounded ring; JS drains the
 * ring. Native threads never call JS: under Bun a threadsafe doorbell wakes the
 * event loop, under Deno a nonblocking wait call resolves a Promise.
 */
import { lib, Status } from "../../ffi/mod.ts";
import { checkInstance, Empty, fail, untilStopped, untilStoppedSync } from "../errors.ts";
import { statsReader } from "../native_stats.ts";
import { NativeObject } from "../lifetime.ts";
import { streamKind } from "./stream_kind.ts";
import { ThreadPool } from "../thread_pool.ts";
import { RingStreamConfig, StreamConfig } from "./config.ts";
import { configRecord } from "./config_record.ts";
import type { Heap } from "./heap.ts";
import { heapBatch, wrapHeap } from "./heap_wrap.ts";
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

/** Most heaps one getBatch call takes (the native pop_batch limit). */
const POP_BATCH_MAX = 4096;

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

const readStreamStats = statsReader(lib.recvStreamStatName, lib.recvStreamStats, "stats");


/**
 * A stream of received heaps. Add readers, then take heaps with `get()`
 * (async), `getNowait()`, `for await (const heap of stream)` or the blocking
 * `for (const heap of stream)`. Each heap is a lease to `release()`.
 */
export class Stream extends NativeObject implements AsyncIterable<Heap>, Iterable<Heap>, Disposable {
  /** The stream configuration it was created with. */
  readonly config: StreamConfig;
  /** The ring configuration it was created with. */
  readonly ringConfig: RingStreamConfig;
  readonly #out = new Uint32Array(1);
  #batch = new Uint32Array(0);

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
    const streamConfig = checkInstance("config", config, StreamConfig, `a recv.StreamConfig (${form})`);
    const ring = checkInstance("ringConfig", ringConfig, RingStreamConfig, `a recv.RingStreamConfig (${form})`);
    if (options.threadPool !== undefined) checkInstance("threadPool", options.threadPool, ThreadPool, "a ThreadPool");
    const record = configRecord(streamConfig, ring, options.threadPool?.nextCore() ?? -1);
    super(lib.recvStreamCreate(record, "recv.Stream"), streamKind);
    this.config = streamConfig;
    this.ringConfig = ring;
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
   * and friends), as spead2's memory reader does. A file that shrinks while it
   * is read (which would make a plain mapping fault the process with SIGBUS)
   * stops the reader: what went reads as zeros (so the heap being assembled at
   * the cut may hold zeros), and `stats.files_shrunk` counts it.
   *
   * @param path the file; throws `SpeadError` (`system_error`, with the errno)
   *   when it cannot be opened or mapped, `invalid_argument` when it is not a
   *   regular file
   */
  addFileReader(path: string): void {
    addFileReaderTo(this.nativeHandle, path);
  }

  /**
   * Replays a pcap capture of SPEAD over UDP (spead2's
   * `add_udp_pcap_file_reader`; a file `tcpdump -w` or `tcpdump -i any -w`
   * writes), one packet per UDP datagram, and stops the stream at its end. The
   * file is mapped read-only by the native reader, as in {@link addFileReader}.
   *
   * Read: classic pcap in either byte order, micro- or nanosecond timestamps,
   * and pcapng (Wireshark's default; any sections and interfaces); link types Ethernet (up to two VLAN tags), Linux cooked v1/v2 and raw IP;
   * unfragmented IPv4 and IPv6 UDP datagrams. Frames that hold no such
   * datagram are passed over and counted in `stats.capture_frames_not_udp`,
   * frames the capture cut short (snap length, or a file that ends inside a
   * record) in `capture_frames_truncated`, datagrams to other ports in
   * `capture_frames_filtered`; each datagram is then checked as
   * {@link addUdpReader} checks one (`packets_rejected_*`).
   *
   * @param path the capture; throws `SpeadError` (`malformed`) when it is
   *   neither pcap nor pcapng, or a classic capture of another link type,
   *   `system_error` (with the errno) when it cannot be opened or mapped
   * @param options `port`: keep only datagrams to this destination port
   */
  addUdpPcapFileReader(path: string, options?: PcapFileReaderOptions): void {
    addPcapFileReaderTo(this.nativeHandle, path, options);
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

  /**
   * Receives SPEAD over TCP (spead2's `add_tcp_reader`): a native thread
   * listens on `port`, accepts one connection (the listening socket is then
   * closed), and feeds the packets that arrive back to back on it to the
   * stream; the stream stops when the peer closes the connection. Port 0
   * picks a free port (the returned info says which).
   *
   * Bad bytes are counted, never fatal, and the reader looks for the next
   * packet as spead2's does: bytes that are not a SPEAD header are passed over
   * 8 at a time (`stats.packets_rejected_bad_magic` and friends), a packet
   * longer than `maxSize` is skipped (`packets_rejected_oversize`), and a
   * packet the peer did not finish before closing counts in
   * `packets_rejected_truncated`.
   *
   * @param port the port to listen on (0: any free port)
   * @param options `bindHostname`, `maxSize`, `bufferSize`; throws
   *   `SpeadError` (`system_error`, with the errno) when the port is taken
   */
  addTcpReader(port: number, options?: TcpReaderOptions): TcpReaderInfo {
    return addTcpReaderTo(this.nativeHandle, port, options);
  }

  /** Returns the next heap if one is ready; throws `Empty`, or `Stopped` once stopped and drained. */
  getNowait(): Heap {
    const st = lib.recvStreamTryPop(this.nativeHandle, this.#out);
    if (st === Status.ok) return wrapHeap(this.#out[0]);
    return fail(st, "getNowait");
  }

  /** Blocks the thread until a heap is ready (sync API); throws `Stopped` at the end. */
  getBlocking(timeoutMs = Infinity): Heap {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const slice = Math.max(0, Math.min(1000, deadline - Date.now()));
      const st = lib.recvStreamPop(this.nativeHandle, slice, this.#out);
      if (st === Status.ok) return wrapHeap(this.#out[0]);
      if (st === Status.stopped) fail(st, "get");
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
      const st = lib.recvStreamTryPop(this.nativeHandle, this.#out);
      if (st === Status.ok) return wrapHeap(this.#out[0]);
      if (st === Status.stopped) fail(st, "get");
      await this.waitReady();
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
      const st = lib.recvStreamPopBatch(this.nativeHandle, 0, this.#batch, max, this.#out);
      if (st === Status.ok) {
        const n = this.#out[0];
        // One leak-finalizer registration for the batch, not one per heap.
        const batch = heapBatch(this.#batch.subarray(0, n));
        const heaps = new Array<Heap>(n);
        for (let i = 0; i < n; i++) heaps[i] = wrapHeap(batch.handles[i], batch, i);
        return heaps;
      }
      if (st === Status.stopped) fail(st, "getBatch");
      await this.waitReady();
    }
  }

  /** Heaps as they arrive (`for await`); ends once the stream has stopped and is drained. */
  [Symbol.asyncIterator](): AsyncGenerator<Heap, void, undefined> {
    return untilStopped(() => this.get());
  }

  /**
   * Iterates in batches: each step is a {@link getBatch} of up to `max` heaps;
   * ends when the stream has stopped and every heap has been taken.
   */
  batches(max?: number): AsyncGenerator<Heap[], void, undefined> {
    return untilStopped(() => this.getBatch(max));
  }

  /** Heaps already in the ring, without waiting; ends when none is ready. */
  [Symbol.iterator](): Generator<Heap, void, undefined> {
    return untilStoppedSync(() => this.getBlocking());
  }

  /** Current statistics (spead2's names; see docs/ABI.md for our extra counters). */
  get stats(): StreamStats {
    return readStreamStats(this.nativeHandle) as StreamStats;
  }

  /** Stops readers and flushes partial heaps; heaps already in the ring can still be taken. */
  stop(): void {
    this.stopNative();
  }

  /** Stops the stream and frees it; heaps still in the ring are freed, heaps already taken stay valid. */
  override close(): void {
    super.close();
  }
}
