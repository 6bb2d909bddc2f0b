/**
 * UDP send stream (spead2's `send.UdpStream` / `send.asyncio.UdpStream`).
 * A native I/O thread packetises queued heaps straight from the item buffers
 * (zero copy), sends batches of up to ~2 MiB (whole UDP GSO messages) per
 * sendmmsg (zig/send/udp.zig batchLimit), and paces
 * them with spead2's rate limiter. Completions come back through a bounded
 * ring that JS drains in batches; native threads never call JS except a Bun
 * doorbell.
 */
import { CntSequenceView, HeapRecordLayout, SendCompletionWords } from "../../ffi/abi.gen.ts";
import { lib, Status } from "../../ffi/mod.ts";
import { endpointRecord, endpointRecords } from "../endpoint.ts";
import { checkInstance, checkInteger, checkOptions, errnoName, SpeadError, statusName } from "../errors.ts";
import { statsReader } from "../native_stats.ts";
import { type NativeKind, NativeObject } from "../lifetime.ts";
import { ThreadPool } from "../thread_pool.ts";
import { WAIT_SLICE_MS } from "../waiter.ts";
import type { Heap } from "./heap.ts";
import { HeapReference } from "./bytes_stream.ts";
import { buildItemTable, directItemTable, type ItemTable, prepareItemTable, unpinItemTable } from "./item_table.ts";
import type { NativeBuffer } from "./buffer.ts";
import { HeapReferenceList } from "./heap_reference_list.ts";
import { GroupMode, StreamConfig } from "./stream_config.ts";
import { AdoptedSendStream, sendConfigRecord } from "./adopted.ts";

// Heap records are written through 32-bit halves in #submit: a little-endian host, which
// ffi/abi.gen.ts checks when it loads (every record view assumes it).
const AUTO_CNT = 0xffff_ffff_ffff_ffffn;
const POLL_RECORDS = 64;
// SendCompletion records as u64 word indices (generated from zig/abi/records.zig).
const COMPLETION = SendCompletionWords;

/** Options of {@link UdpStream} beyond the stream config; defaults are spead2's. */
export interface UdpStreamOptions {
  /** Socket send buffer (SO_SNDBUF) in bytes; default 512 KiB; 0 leaves the OS default. */
  bufferSize?: number;
  /** Local address to bind, or with `ttl` the IPv4 multicast interface. */
  interfaceAddress?: string;
  /** Multicast TTL / hop limit; makes this a multicast stream. */
  ttl?: number;
  /** IPv6 multicast interface index (with `ttl`). */
  interfaceIndex?: number;
  /** Never use UDP GSO (segmentation offload). */
  disableGso?: boolean;
  /** Pins the stream's I/O thread (spead2 passes a `ThreadPool` first; here it only carries the affinity). */
  threadPool?: ThreadPool;
}

/** Send counters by name (see docs/ABI.md). */
export type SendStats = Record<string, number>;

interface Pending {
  resolve(bytes: number): void;
  reject(err: Error): void;
  /** Buffers the native side points into until the completion. */
  keepAlive: readonly ItemTable[];
  /** Native buffers pinned for a send without a table ({@link directItemTable}); unpinned at the completion. */
  pinned?: readonly NativeBuffer[];
  /** The send's Promise (for asyncFlush); absent for sync sends. */
  promise?: Promise<number>;
}

const readSendStats = statsReader(lib.udpSendStreamStatName, lib.udpSendStreamStats, "stats");

const kind: NativeKind = {
  what: "send.UdpStream",
  stop: (h) => lib.udpSendStreamStop(h),
  destroy: lib.udpSendStreamDestroy,
  wait: { waitAsync: lib.nonblocking?.udpSendStreamWait, setNotify: lib.udpSendStreamSetNotify, arm: lib.udpSendStreamArm },
  closedMessage: "send stream has been closed",
  reportReclaimed: true,
};

function endpointList(endpoints: ReadonlyArray<readonly [string, number]>): Uint8Array {
  if (endpoints.length === 0) throw new SpeadError("invalid_argument", "UdpStream needs at least one endpoint");
  return endpointRecords(endpoints, "send.UdpStream endpoint");
}

// HeapRecord (ffi/abi.gen.ts) field indices in 32-bit, 64-bit and f64 units.
const REC_U32 = HeapRecordLayout.size / 4;
const REC_U64 = HeapRecordLayout.size / 8;
const REC_FIRST = HeapRecordLayout.first_item / 4;
const REC_COUNT = HeapRecordLayout.item_count / 4;
const REC_CNT = HeapRecordLayout.cnt / 8;
const REC_SUBSTREAM = HeapRecordLayout.substream_index / 4;
const REC_RATE = HeapRecordLayout.rate / 8;
const REC_BITS = HeapRecordLayout.heap_address_bits / 4;
const REC_REPEAT = HeapRecordLayout.repeat_pointers / 4;

/** `HeapRecord`s (ffi/abi.gen.ts) with their 32-bit and f64 views (little-endian host). */
interface RecordViews {
  readonly words: BigUint64Array;
  readonly w32: Uint32Array;
  readonly f64: Float64Array;
}

function recordViews(n: number): RecordViews {
  const words = new BigUint64Array(n * REC_U64);
  return { words, w32: new Uint32Array(words.buffer), f64: new Float64Array(words.buffer) };
}

/**
 * Writes record `i`: written through 32-bit views, so the per-heap fields need
 * no BigInt; the cnt and the rate take their own views.
 */
function writeHeapRecord(r: RecordViews, i: number, first: number, count: number, heap: Heap, cnt: bigint, sub: number, rate: number): void {
  const w32 = i * REC_U32;
  const w64 = i * REC_U64;
  r.w32[w32 + REC_FIRST] = first;
  r.w32[w32 + REC_COUNT] = count;
  r.words[w64 + REC_CNT] = cnt >= 0n ? cnt : AUTO_CNT;
  if (!Number.isInteger(sub) || sub < 0 || sub > 0xffff_ffff) {
    throw new SpeadError("invalid_argument", `substream index ${sub}`);
  }
  r.w32[w32 + REC_SUBSTREAM] = sub;
  r.f64[w64 + REC_RATE] = rate;
  r.w32[w32 + REC_BITS] = heap.flavour.heapAddressBits;
  r.w32[w32 + REC_REPEAT] = heap.repeatPointers ? 1 : 0;
}

/** Unpins the native buffers of a send made without a table (once). */
function unpinDirect(p: Pending): void {
  const pinned = p.pinned;
  if (pinned === undefined) return;
  p.pinned = undefined;
  for (const b of pinned) b.unpin();
}

/** `HeapRecord`s for `refs`, whose items follow each other in the item table. */
function heapRecords(refs: readonly HeapReference[], table: { readonly heapCounts: readonly number[] }): BigUint64Array {
  const r = recordViews(refs.length);
  let first = 0;
  for (let i = 0; i < refs.length; i++) {
    const ref = refs[i];
    const count = table.heapCounts[i];
    writeHeapRecord(r, i, first, count, ref.heap, ref.cnt, ref.substreamIndex, ref.rate);
    first += count;
  }
  return r.words;
}

/** Rewrites what a heap may change between sends of the same records (its repeatPointers flag). */
function refreshHeapRecords(recs: BigUint64Array, heaps: readonly Heap[]): void {
  const recs32 = new Uint32Array(recs.buffer);
  for (let i = 0; i < heaps.length; i++) recs32[i * REC_U32 + REC_REPEAT] = heaps[i].repeatPointers ? 1 : 0;
}

/** Opens a UDP send stream from `UdpStream`'s constructor arguments. */
function openUdp(
  a: ThreadPool | ReadonlyArray<readonly [string, number]> | readonly [string, number],
  b?: ReadonlyArray<readonly [string, number]> | readonly [string, number] | StreamConfig,
  c?: StreamConfig | UdpStreamOptions,
  d?: UdpStreamOptions,
): AdoptedSendStream {
  const spead2Form = a instanceof ThreadPool;
  const endpoints = (spead2Form ? b : a) as ReadonlyArray<readonly [string, number]> | readonly [string, number];
  const config = (spead2Form ? c : b) ?? new StreamConfig();
  const options: UdpStreamOptions = spead2Form ? { ...(d ?? {}), threadPool: a } : (c as UdpStreamOptions) ?? {};
  const form = "send.UdpStream(endpoints, config?, options?) or send.UdpStream(threadPool, endpoints, config?)";
  if (!Array.isArray(endpoints)) {
    throw new SpeadError("invalid_argument", `endpoints must be [host, port] pairs (${form})`);
  }
  const list = (typeof endpoints[0] === "string" ? [endpoints] : endpoints) as ReadonlyArray<
    readonly [string, number]
  >;
  const cfg = checkInstance("config", config, StreamConfig, `a send.StreamConfig (${form})`);
  checkOptions("options", options, `UdpStreamOptions ({ bufferSize, ttl, ... }) (${form})`);
  if (options.bufferSize !== undefined) checkInteger("bufferSize", options.bufferSize, 0, 0x7fff_ffff);
  if (options.ttl !== undefined) checkInteger("ttl", options.ttl, 0, 255);
  if (options.interfaceIndex !== undefined) checkInteger("interfaceIndex", options.interfaceIndex, 0, 0xffff_ffff);
  if (options.threadPool !== undefined) checkInstance("threadPool", options.threadPool, ThreadPool, "a ThreadPool");
  const ep = endpointList(list);
  const iface = endpointRecord(options.interfaceAddress, 0, "send.UdpStream interfaceAddress");
  const record = sendConfigRecord(cfg, { ...options, bufferSize: options.bufferSize ?? 512 * 1024 });
  const handle = lib.udpSendStreamCreate(ep, list.length, iface, record.view, "send.UdpStream");
  return new AdoptedSendStream(handle, cfg, list.length, kind.what);
}

/**
 * Sends heaps as UDP datagrams, one endpoint per substream.
 *
 * `asyncSendHeap()` queues a heap and returns a Promise of the bytes sent. The
 * heap's item buffers are **not copied**: keep them unchanged until the
 * Promise settles (spead2's rule). At most `config.maxHeaps` heaps may be in
 * flight; beyond that the Promise rejects with `SpeadError("queue_full")`, as
 * spead2 drops the heap.
 */
export class UdpStream extends NativeObject implements Disposable {
  /** The stream configuration it was created with. */
  readonly config: StreamConfig;
  /** Number of destinations (substream i sends to endpoint i). */
  readonly numSubstreams: number;
  #nextToken = 1n;
  readonly #pending = new Map<bigint, Pending>();
  readonly #records = new BigUint64Array(POLL_RECORDS * COMPLETION.size);
  readonly #recordsSigned = new BigInt64Array(this.#records.buffer);
  readonly #count = new Uint32Array(1);
  readonly #tokenWord = new BigUint64Array(1);
  /** The record of a one-heap send (the native side copies it during the call). */
  readonly #record = recordViews(1);
  /** The item table of a one-heap send without a table object (copied during the call too). */
  #direct = new BigUint64Array(4 * 8);
  #direct32 = new Uint32Array(this.#direct.buffer);
  /** Whether #pump is running (it waits while any send is pending). */
  #pumping = false;

  /**
   * @param endpoints `[host, port]` pairs (IP literals); endpoint i is substream i. A single pair is accepted too.
   */
  /** Opens the socket and starts the native I/O thread; a failed system call throws with its errno name. */
  constructor(
    endpoints: ReadonlyArray<readonly [string, number]> | readonly [string, number],
    config?: StreamConfig,
    options?: UdpStreamOptions,
  );
  /** spead2's positional form: `send.UdpStream(thread_pool, endpoints, config)`. */
  constructor(
    threadPool: ThreadPool,
    endpoints: ReadonlyArray<readonly [string, number]> | readonly [string, number],
    config?: StreamConfig,
    options?: UdpStreamOptions,
  );
  constructor(
    a: ThreadPool | ReadonlyArray<readonly [string, number]> | readonly [string, number] | AdoptedSendStream,
    b?: ReadonlyArray<readonly [string, number]> | readonly [string, number] | StreamConfig,
    c?: StreamConfig | UdpStreamOptions,
    d?: UdpStreamOptions,
  ) {
    const opened = a instanceof AdoptedSendStream ? a : openUdp(a, b, c, d);
    super(opened.handle, opened.what === kind.what ? kind : { ...kind, what: opened.what });
    this.config = opened.config;
    this.numSubstreams = opened.substreams;
  }

  /** Sets the automatic heap cnt sequence (next, step); step must not be 0. */
  setCntSequence(next: bigint | number, step: bigint | number): void {
    if (BigInt(step) === 0n) throw new SpeadError("invalid_argument", "cnt sequence step must not be 0");
    const sequence = new CntSequenceView();
    sequence.next = BigInt(next);
    sequence.step = BigInt(step);
    lib.udpSendStreamSetCntSequence(this.nativeHandle, sequence.bytes, "setCntSequence");
  }

  /**
   * Queues one heap. `cnt` < 0 takes the next automatic cnt; `rate` < 0 uses
   * the stream's rate (0 = unlimited for this heap). Resolves to the bytes sent.
   */
  asyncSendHeap(heap: Heap, cnt: bigint | number = -1, substreamIndex = 0, rate = -1): Promise<number> {
    let entry: Pending | undefined;
    const promise = new Promise<number>((resolve, reject) => {
      entry = { resolve, reject, keepAlive: [] };
      this.#submitOne(heap, cnt, substreamIndex, rate, entry);
    });
    entry!.promise = promise;
    return promise;
  }

  /**
   * Queues one heap: the per-heap path of tutorials 2-8 (a new heap each time),
   * without the group's arrays: its table's words go to the native side as
   * they are, its record through a scratch record.
   */
  #submitOne(heap: Heap, cnt: bigint | number, substreamIndex: number, rate: number, entry: Pending): void {
    const h = this.nativeHandle;
    const c = BigInt(cnt); // as HeapReference converts it
    const itemCount = heap.entries.length;
    if (itemCount * 4 > this.#direct.length) {
      this.#direct = new BigUint64Array(itemCount * 8);
      this.#direct32 = new Uint32Array(this.#direct.buffer);
    }
    const pinned: NativeBuffer[] = [];
    if (directItemTable(heap, this.#direct, this.#direct32, pinned) >= 0) {
      // Written before anything is pinned: a bad substream or rate throws with nothing to undo.
      writeHeapRecord(this.#record, 0, 0, itemCount, heap, c, substreamIndex, rate);
      for (const b of pinned) b.pin();
      entry.pinned = pinned;
      this.#queue(h, this.#record.words, 1, this.#direct, itemCount, GroupMode.SERIAL, [], entry);
      return;
    }
    const table = buildItemTable(heap);
    try {
      writeHeapRecord(this.#record, 0, 0, table.count, heap, c, substreamIndex, rate);
    } catch (e) {
      unpinItemTable(table);
      throw e;
    }
    this.#queue(h, this.#record.words, 1, table.words, table.count, GroupMode.SERIAL, [table], entry);
  }

  /**
   * Queues a group of heaps, all or none, sent in `mode` order; one Promise
   * for the group, resolving to the bytes sent.
   */
  asyncSendHeaps(heaps: ReadonlyArray<HeapReference | Heap> | HeapReferenceList, mode: GroupMode = GroupMode.ROUND_ROBIN): Promise<number> {
    let entry: Pending | undefined;
    const promise = new Promise<number>((resolve, reject) => {
      entry = { resolve, reject, keepAlive: [] };
      this.#submit(heaps, mode, entry);
    });
    entry!.promise = promise;
    return promise;
  }

  /** Queues a group; `entry` is settled when its completion record is drained. */
  #submit(heaps: ReadonlyArray<HeapReference | Heap> | HeapReferenceList, mode: GroupMode, entry: Pending): void {
    const h = this.nativeHandle;
    const n = heaps.length;
    if (n === 0) throw new SpeadError("invalid_argument", "asyncSendHeaps needs at least one heap");
    let tables: ItemTable[];
    let items: BigUint64Array;
    let itemCount: number;
    let recs: BigUint64Array;
    if (heaps instanceof HeapReferenceList) {
      // Converted once; a resend refreshes only what changes per send.
      const prev = heaps.prepared;
      const p = prepareItemTable(heaps.heaps, prev?.table);
      tables = [p.table];
      try {
        if (prev === undefined || prev.table !== p) heaps.prepared = { table: p, records: heapRecords(heaps.references, p.table) };
        else refreshHeapRecords(prev.records, heaps.heaps);
      } catch (e) {
        unpinItemTable(p.table);
        throw e;
      }
      recs = heaps.prepared!.records;
      items = p.table.words;
      itemCount = p.table.count;
    } else {
      const refs = heaps.map((x) => (x instanceof HeapReference ? x : new HeapReference(x)));
      tables = refs.map((r) => buildItemTable(r.heap));
      itemCount = 0;
      for (const t of tables) itemCount += t.count;
      items = new BigUint64Array(Math.max(1, itemCount) * 4);
      let first = 0;
      for (const t of tables) {
        if (t.count > 0) items.set(t.words.subarray(0, t.count * 4), first * 4);
        first += t.count;
      }
      try {
        recs = heapRecords(refs, { heapCounts: tables.map((t) => t.count) });
      } catch (e) {
        for (const t of tables) unpinItemTable(t);
        throw e;
      }
    }
    this.#queue(h, recs, n, items, itemCount, mode, tables, entry);
  }

  /** Hands a group to the native queue; on failure unpins its tables and throws. */
  #queue(
    h: number,
    recs: BigUint64Array,
    n: number,
    items: BigUint64Array,
    itemCount: number,
    mode: GroupMode,
    tables: ItemTable[],
    entry: Pending,
  ): void {
    const token = this.#nextToken++;
    this.#tokenWord[0] = token;
    try {
      lib.udpSendStreamSend(h, recs, n, items, itemCount, mode === GroupMode.SERIAL ? 1 : 0, this.#tokenWord, null, "asyncSendHeaps");
    } catch (err) {
      for (const t of tables) unpinItemTable(t);
      unpinDirect(entry);
      throw err;
    }
    entry.keepAlive = tables;
    this.#pending.set(token, entry);
    if (!this.#pumping) void this.#pump();
  }

  /** Drains completions into their Promises while any send is pending, waiting between drains. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#pending.size > 0 && !this.isClosed) {
        const going = await this.waitReady();
        this.#drainRecords();
        if (!going) break;
      }
    } catch {
      // A wait that failed (the stream went away under it) ends the pump, as a stopped one
      // does: close() settles what is still pending.
    } finally {
      this.#pumping = false;
    }
  }

  /** Moves completion records into their Promises. */
  #drainRecords(): void {
    const handle = this.rawHandle;
    if (handle === 0) return;
    for (;;) {
      lib.udpSendStreamPoll(handle, this.#records, POLL_RECORDS, this.#count, "poll");
      const n = this.#count[0];
      for (let i = 0; i < n; i++) {
        const w = i * COMPLETION.size;
        const token = this.#records[w + COMPLETION.token];
        const bytes = Number(this.#records[w + COMPLETION.bytes_sent]);
        const status = Number(this.#recordsSigned[w + COMPLETION.status]);
        const errno = Number(this.#records[w + COMPLETION.errno]);
        const p = this.#pending.get(token);
        if (!p) continue;
        this.#pending.delete(token);
        for (const t of p.keepAlive) unpinItemTable(t);
        unpinDirect(p);
        if (status === Status.ok) p.resolve(bytes);
        else {
          p.reject(
            new SpeadError(
              statusName(status),
              `heap send failed after ${bytes} bytes`,
              status,
              errno ? { errno: errnoName(errno), errnoNumber: errno, syscall: "sendmmsg" } : undefined,
            ),
          );
        }
      }
      if (n < POLL_RECORDS) return;
    }
  }

  /** Sends one heap and blocks until it is sent (spead2's sync `send_heap`). Returns bytes sent. */
  sendHeap(heap: Heap, cnt: bigint | number = -1, substreamIndex = 0, rate = -1): number {
    return this.#sendSync([new HeapReference(heap, { cnt, substreamIndex, rate })], GroupMode.SERIAL);
  }

  /** Sends a group and blocks until it is sent (spead2's sync `send_heaps`). */
  sendHeaps(heaps: ReadonlyArray<HeapReference | Heap> | HeapReferenceList, mode: GroupMode = GroupMode.ROUND_ROBIN): number {
    return this.#sendSync(heaps, mode);
  }

  #sendSync(heaps: ReadonlyArray<HeapReference | Heap> | HeapReferenceList, mode: GroupMode): number {
    let outcome: { ok: true; v: number } | { ok: false; e: Error } | undefined;
    this.#submit(heaps, mode, {
      resolve: (v) => (outcome = { ok: true, v }),
      reject: (e) => (outcome = { ok: false, e }),
      keepAlive: [],
    });
    // Bounded: flush returns once the group completed; the record is then pollable.
    for (let i = 0; outcome === undefined && i < 1_000_000; i++) {
      this.flush();
      this.#drainRecords();
      if (outcome === undefined) lib.udpSendStreamWait(this.nativeHandle, WAIT_SLICE_MS);
    }
    if (outcome === undefined) throw new SpeadError("invalid_state", "send completed without a record");
    if (!outcome.ok) throw outcome.e;
    return outcome.v;
  }

  /** Blocks until every heap queued so far has been sent. */
  flush(timeoutMs = Infinity): void {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const slice = Math.max(0, Math.min(1000, deadline - Date.now()));
      if (lib.udpSendStreamFlush(this.nativeHandle, slice, "flush") === Status.ok) return;
      if (Date.now() >= deadline) throw new SpeadError("empty", "flush timed out");
    }
  }

  /** Resolves once every heap queued so far has been sent. */
  async asyncFlush(): Promise<void> {
    await Promise.allSettled([...this.#pending.values()].map((p) => p.promise));
  }


  /** Send counters (heaps, packets, bytes, batches, gso_messages, ...). */
  get stats(): SendStats {
    return readSendStats(this.nativeHandle);
  }

  /**
   * Stops the I/O thread and frees the stream. Heaps not yet sent are
   * abandoned and their Promises reject with `stopped`; call `flush()` first
   * to send everything. Idempotent.
   */
  override close(): void {
    super.close();
  }

  /** Stops the I/O thread and settles the sends it finished. */
  protected override beforeClose(): void {
    this.stopNative();
    this.#drainRecords();
  }

  /** Rejects the sends that can no longer complete. */
  protected override afterDestroy(): void {
    for (const p of this.#pending.values()) {
      for (const t of p.keepAlive) unpinItemTable(t);
      unpinDirect(p);
      p.reject(new SpeadError("stopped", "send stream closed"));
    }
    this.#pending.clear();
  }
}
