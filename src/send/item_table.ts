/**
 * Turns send {@link Heap}s into the item table of docs/ABI.md: 4 u64 words per
 * item, the heaps' items one after the other, addressed items by address.
 *
 * Which memory native code may read (issue #8):
 * - memory from {@link allocateBuffer} (a {@link NativeBuffer}) is read in
 *   place (zero copy), pinned until the send completes: JS cannot free it;
 * - every other item (JS typed arrays, whose ArrayBuffer the program may
 *   detach with `transfer()` or `postMessage` at any time, or the engine may
 *   free at exit) is copied at submit into native staging memory that the
 *   send holds until it completes, so later changes or a detach never reach a
 *   send already queued. Staging buffers are recycled (module-wide, bounded),
 *   so a steady stream of sends maps no new memory.
 * Tables for a synchronous use (native calls made before JS runs again, as in
 * `encodeHeap`) copy only items of at most STAGE_MAX bytes, into one internal
 * buffer (so no address points into memory the JS engine may move: V8 keeps
 * small typed arrays on its own heap); larger ones are read in place.
 *
 * Tables are cached (per heap, or per `HeapReferenceList` for a group) and
 * refreshed in place when the same heaps are sent again (spead2's reused
 * heaps, tutorials 10 and 11), unless a send of the table is still in flight.
 * A refresh does only the per-send work, planned when the table was built:
 * a detach check per distinct buffer, the immediates read from bytes, the
 * staged copies, and pinning the native buffers.
 */
import { native } from "../../ffi/mod.ts";
import { SpeadError } from "../errors.ts";
import type { Heap } from "./heap.ts";
import { allocateBuffer, type NativeBuffer } from "./buffer.ts";
import { ownerOf } from "./buffer_owners.ts";

/** Synchronous tables: items at most this long are copied into the internal stage. */
const STAGE_MAX = 4096;
/** Free staging memory kept for reuse, in all (beyond it, staging buffers are unmapped at once). */
const STAGE_FREE_MAX_BYTES = 256 << 20;
/** Free staging buffers kept per size class. */
const STAGE_FREE_PER_CLASS = 4;

/** An item table plus the buffers it points into, which must stay reachable while it is used. */
export interface ItemTable {
  readonly words: BigUint64Array;
  /** Items of all heaps. */
  readonly count: number;
  /** Items of each heap, in order (they sum to `count`). */
  readonly heapCounts: readonly number[];
  /** Buffers referenced by address; keep them alive as long as the table is in use. */
  readonly keepAlive: readonly Uint8Array[];
  /** Sum of addressed item lengths. */
  readonly payloadBytes: number;
  /** Native buffers referenced by the table, pinned until {@link unpinItemTable}. */
  readonly pinned: readonly NativeBuffer[];
  /** Sends using this table that have not completed (a busy table is never refreshed). */
  inFlight: number;
}

/** A built table and what each send of it must redo. */
export interface PreparedTable {
  readonly heaps: readonly Heap[];
  readonly versions: readonly number[];
  readonly table: ItemTable;
  /** The table's words as u32 halves (little-endian host: even index = low half). */
  readonly words32: Uint32Array;
  /** Built for synchronous use (see {@link prepareItemTable}). */
  readonly sync: boolean;
  /** Synchronous tables: the internal stage of the small items (never exposed, so never detached). */
  readonly stage: Uint8Array | undefined;
  /** Asynchronous tables: bytes of the native stage, held from a send's submit to its completion. */
  readonly nativeStageBytes: number;
  nativeStage: NativeBuffer | undefined;
  /** Address the staged items' words point at (-1: not written yet). */
  stageBase: number;
  /** Immediates read from bytes when sent: the bytes and the u32 index of the value word's low half. */
  readonly immediates: ReadonlyArray<readonly [Uint8Array, number]>;
  /** Items copied into the stage when sent: the bytes, their stage offset, the u32 index of their address word. */
  readonly staged: ReadonlyArray<readonly [Uint8Array, number, number]>;
  /** Each distinct ArrayBuffer the heaps refer to, with the id of an item using it (for the error). */
  readonly buffers: ReadonlyArray<readonly [ArrayBufferLike, number]>;
}

const cache = new WeakMap<Heap, PreparedTable>();
const syncCache = new WeakMap<Heap, PreparedTable>();
/** The prepared table of each table (for recycling its native stage). */
const preparedOf = new WeakMap<ItemTable, PreparedTable>();

// -- native staging buffers --------------------------------------------------

const stageFree = new Map<number, NativeBuffer[]>();
let stageFreeBytes = 0;

/** Size class of a staging request: whole pages up to 64 KiB, then 8 classes per power of two. */
function stageClass(n: number): number {
  if (n <= 65536) return Math.ceil(n / 4096) * 4096;
  const step = 2 ** (Math.floor(Math.log2(n)) - 3);
  return Math.ceil(n / step) * step;
}

function takeStage(bytes: number): NativeBuffer {
  const size = stageClass(bytes);
  const b = stageFree.get(size)?.pop();
  if (b) {
    stageFreeBytes -= size;
    return b;
  }
  return allocateBuffer(size);
}

function giveStage(b: NativeBuffer): void {
  const size = b.bytes.byteLength;
  let list = stageFree.get(size);
  if (!list) stageFree.set(size, list = []);
  if (list.length >= STAGE_FREE_PER_CLASS || stageFreeBytes + size > STAGE_FREE_MAX_BYTES) {
    b.release();
    return;
  }
  list.push(b);
  stageFreeBytes += size;
}

/** Whether a non-immediate item is copied into the stage (rather than read in place). */
function isStaged(bytes: Uint8Array, sync: boolean): boolean {
  const len = bytes.byteLength;
  if (len === 0) return false;
  return sync ? len <= STAGE_MAX && ownerOf(bytes) === undefined : ownerOf(bytes) === undefined;
}

/** Releases a table after use: unpins its native buffers, recycles its native stage, marks it idle. */
export function unpinItemTable(table: ItemTable): void {
  table.inFlight--;
  for (const b of table.pinned) b.unpin();
  if (table.inFlight === 0) {
    const p = preparedOf.get(table);
    if (p?.nativeStage) {
      giveStage(p.nativeStage);
      p.nativeStage = undefined;
    }
  }
}

function build(heaps: readonly Heap[], sync: boolean): PreparedTable {
  let itemCount = 0;
  let stageBytes = 0;
  for (const heap of heaps) {
    for (const e of heap.entries) {
      itemCount++;
      if (!e.immediate && isStaged(e.bytes, sync)) stageBytes += e.bytes.byteLength;
    }
  }
  const words = new BigUint64Array(Math.max(1, itemCount) * 4);
  // The words are written as u32 halves (little-endian host, checked in ffi/abi.gen.ts): no BigInt per word.
  const w32 = new Uint32Array(words.buffer);
  // A fresh ArrayBuffer always has an off-heap backing store, so its address is stable.
  const stage = sync && stageBytes > 0 ? new Uint8Array(new ArrayBuffer(stageBytes)) : undefined;
  const stageBase = stage ? native.addressOf(stage) : 0n;
  const keepAlive: Uint8Array[] = stage ? [stage] : [];
  const pinned: NativeBuffer[] = [];
  const immediates: Array<readonly [Uint8Array, number]> = [];
  const staged: Array<readonly [Uint8Array, number, number]> = [];
  const buffers: Array<readonly [ArrayBufferLike, number]> = [];
  const heapCounts: number[] = [];
  let stageOff = 0;
  let payloadBytes = 0;
  let i = 0;
  for (const heap of heaps) {
    heapCounts.push(heap.entries.length);
    for (const e of heap.entries) {
      if (e.bytes !== undefined && !hasBuffer(buffers, e.bytes.buffer)) {
        checkLive(e.bytes.buffer, e.id); // before its address is taken
        buffers.push([e.bytes.buffer, e.id]);
      }
      const w = i * 4;
      const h = 2 * w;
      i++;
      w32[h] = e.id % 2 ** 32; // exact for any integer (a power-of-two split)
      w32[h + 1] = Math.floor(e.id / 2 ** 32);
      if (e.immediate) {
        if (e.value !== undefined) words[w + 1] = e.value;
        else immediates.push([e.bytes, h + 2]); // read from the bytes by refresh()
        w32[h + 6] = 1;
        continue;
      }
      const len = e.bytes.byteLength;
      payloadBytes += len;
      if (len === 0) {
        // address 0, length 0
      } else if (isStaged(e.bytes, sync)) {
        words[w + 1] = stageBase + BigInt(stageOff); // async: rewritten by refresh() once the stage is known
        staged.push([e.bytes, stageOff, h + 2]);
        stageOff += len;
      } else {
        void e.bytes.buffer; // makes V8 move an on-heap array off the heap before we take its address
        words[w + 1] = native.addressOf(e.bytes);
        keepAlive.push(e.bytes);
        const owner = ownerOf(e.bytes);
        // Pinned once per send however many items it backs (tutorial 11: 64 heaps over one buffer).
        if (owner && !pinned.includes(owner)) pinned.push(owner);
      }
      w32[h + 4] = len % 2 ** 32;
      w32[h + 5] = Math.floor(len / 2 ** 32);
    }
  }
  const table = { words, count: itemCount, heapCounts, keepAlive, payloadBytes, pinned, inFlight: 0 };
  const prepared: PreparedTable = {
    heaps: heaps.slice(),
    versions: heaps.map((h) => h.version),
    table,
    words32: w32,
    sync,
    stage,
    nativeStageBytes: sync ? 0 : stageBytes,
    nativeStage: undefined,
    stageBase: -1,
    immediates,
    staged,
    buffers,
  };
  preparedOf.set(table, prepared);
  return prepared;
}

/** Whether `list` already holds `buffer` (a group refers to few distinct buffers). */
function hasBuffer(list: ReadonlyArray<readonly [ArrayBufferLike, number]>, buffer: ArrayBufferLike): boolean {
  for (let k = 0; k < list.length; k++) if (list[k][0] === buffer) return true;
  return false;
}

function checkLive(buffer: ArrayBufferLike, id: number): void {
  if ((buffer as { detached?: boolean }).detached === true) {
    throw new SpeadError("released", `item ${id} refers to a released (detached) buffer`);
  }
}

/** Writes the per-send parts: checks that no buffer was detached, immediates read from bytes, staged copies. */
function refresh(p: PreparedTable): void {
  // Indexed loops: this runs once per send, often before the JIT has optimised it.
  const buffers = p.buffers;
  for (let i = 0; i < buffers.length; i++) checkLive(buffers[i][0], buffers[i][1]);
  const w32 = p.words32;
  const immediates = p.immediates;
  for (let i = 0; i < immediates.length; i++) {
    const b = immediates[i][0];
    const at = immediates[i][1];
    // Big-endian bytes (at most 8) into the value word's two u32 halves, without BigInt.
    const n = b.length;
    let lo = 0;
    let hi = 0;
    for (let k = 0; k < n; k++) {
      hi = ((hi << 8) | (lo >>> 24)) >>> 0;
      lo = ((lo << 8) | b[k]) >>> 0;
    }
    w32[at] = lo;
    w32[at + 1] = hi;
  }
  if (p.nativeStageBytes > 0) {
    if (!p.nativeStage) p.nativeStage = takeStage(p.nativeStageBytes);
    const dest = p.nativeStage.bytes;
    const base = Number(native.addressOf(dest));
    if (base !== p.stageBase) {
      for (const [, off, at] of p.staged) {
        const address = base + off; // below 2^53: exact
        w32[at] = address % 2 ** 32;
        w32[at + 1] = Math.floor(address / 2 ** 32);
      }
      p.stageBase = base;
    }
    for (const [b, off] of p.staged) dest.set(b, off);
    return;
  }
  const stage = p.stage;
  for (const [b, off] of p.staged) stage!.set(b, off);
}

/** @internal Native staging memory kept for reuse (tests). */
export function stagingFreeBytes(): number {
  return stageFreeBytes;
}

function current(p: PreparedTable | undefined, heaps: readonly Heap[], sync: boolean): p is PreparedTable {
  if (p === undefined || p.table.inFlight !== 0 || p.heaps.length !== heaps.length) return false;
  if (p.sync !== sync) return false;
  for (let i = 0; i < heaps.length; i++) {
    if (p.heaps[i] !== heaps[i] || p.versions[i] !== heaps[i].version) return false;
  }
  return true;
}

/**
 * The item table for one send of `heaps` (all their items, in order), reusing
 * `previous` when it is for the same unchanged heaps and idle. It is marked in
 * flight (its native buffers pinned, its native stage held) until
 * {@link unpinItemTable}. `sync`: the table is used only by native calls made
 * before JS runs again, so large JS items need not be copied.
 */
export function prepareItemTable(heaps: readonly Heap[], previous?: PreparedTable, sync = false): PreparedTable {
  const p = current(previous, heaps, sync) ? previous : build(heaps, sync);
  refresh(p);
  const t = p.table;
  t.inFlight++;
  for (const b of t.pinned) b.pin();
  return p;
}

/**
 * The item table of a heap whose items are all immediates with a value or
 * non-empty bytes in {@link NativeBuffer}s (tutorial 8's fresh heap per send: a
 * timestamp and a sample buffer), written into `words` (4 u64 per item, as
 * u32 halves: a little-endian host, checked in ffi/abi.gen.ts) for a call
 * that copies the table (`spead_udp_send_stream_send` does): no table object,
 * no cache entry, no BigInt per address. Returns the item count and adds the
 * distinct native buffers to `pinned` (the caller pins them until the send
 * completes), or returns -1 (nothing written to `pinned`) for any other heap,
 * or when `words` is too short (`count * 4` words are needed).
 */
export function directItemTable(heap: Heap, words: BigUint64Array, w32: Uint32Array, pinned: NativeBuffer[]): number {
  const entries = heap.entries;
  const n = entries.length;
  if (n * 4 > words.length) return -1;
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    // Empty bytes may be a released (detached) view: the table path says so.
    if (e.immediate ? e.value === undefined : e.bytes.byteLength === 0 || ownerOf(e.bytes) === undefined) return -1;
  }
  const first = pinned.length;
  for (let i = 0; i < n; i++) {
    const e = entries[i];
    const h = 8 * i;
    w32[h] = e.id % 2 ** 32;
    w32[h + 1] = Math.floor(e.id / 2 ** 32);
    if (e.immediate) {
      words[4 * i + 1] = e.value!;
      w32[h + 4] = 0;
      w32[h + 5] = 0;
      w32[h + 6] = 1;
      w32[h + 7] = 0;
      continue;
    }
    const len = e.bytes.byteLength;
    const owner = ownerOf(e.bytes)!; // a live buffer: release() removes it from the owners
    const address = owner.address + e.bytes.byteOffset;
    let seen = false;
    for (let k = first; k < pinned.length; k++) if (pinned[k] === owner) seen = true;
    if (!seen) pinned.push(owner);
    w32[h + 2] = address % 2 ** 32;
    w32[h + 3] = Math.floor(address / 2 ** 32);
    w32[h + 4] = len % 2 ** 32;
    w32[h + 5] = Math.floor(len / 2 ** 32);
    w32[h + 6] = 0;
    w32[h + 7] = 0;
  }
  return n;
}

/** The item table for one send of `heap`, cached per heap; see {@link prepareItemTable}. */
export function buildItemTable(heap: Heap, sync = false): ItemTable {
  const c = sync ? syncCache : cache;
  const p = prepareItemTable([heap], c.get(heap), sync);
  c.set(heap, p);
  return p.table;
}
