/**
 * Turns send {@link Heap}s into the item table of docs/ABI.md: 4 u64 words per
 * item, the heaps' items one after the other. Addressed items are passed by
 * address; those of at most STAGE_MAX bytes are first copied into one staging
 * buffer, so no address points into memory the JS engine may move (V8 keeps
 * small typed arrays on its own heap). That copy is taken when the heap is
 * submitted: later changes to such small items do not reach a send already
 * queued (large items are read while sent).
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
import { type NativeBuffer, ownerOf } from "./buffer.ts";

/** Items at most this long are copied into the staging buffer. */
const STAGE_MAX = 4096;

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
  readonly stage: Uint8Array | undefined;
  /** Immediates read from bytes when sent: the bytes and the u32 index of the value word's low half. */
  readonly immediates: ReadonlyArray<readonly [Uint8Array, number]>;
  /** Small items copied into the stage when sent: the bytes and their stage offset. */
  readonly staged: ReadonlyArray<readonly [Uint8Array, number]>;
  /** Each distinct ArrayBuffer the heaps refer to, with the id of an item using it (for the error). */
  readonly buffers: ReadonlyArray<readonly [ArrayBufferLike, number]>;
}

const cache = new WeakMap<Heap, PreparedTable>();

/** Releases a table after use: unpins its native buffers and marks it idle. */
export function unpinItemTable(table: ItemTable): void {
  table.inFlight--;
  for (const b of table.pinned) b.unpin();
}

function build(heaps: readonly Heap[]): PreparedTable {
  let nItems = 0;
  let stageBytes = 0;
  for (const heap of heaps) {
    for (const e of heap.entries) {
      nItems++;
      if (!e.immediate && e.bytes.byteLength > 0 && e.bytes.byteLength <= STAGE_MAX) stageBytes += e.bytes.byteLength;
    }
  }
  const words = new BigUint64Array(Math.max(1, nItems) * 4);
  // A fresh ArrayBuffer always has an off-heap backing store, so its address is stable.
  const stage = stageBytes > 0 ? new Uint8Array(new ArrayBuffer(stageBytes)) : undefined;
  const stageBase = stage ? native.addressOf(stage) : 0n;
  const keepAlive: Uint8Array[] = stage ? [stage] : [];
  const pinned: NativeBuffer[] = [];
  const immediates: Array<readonly [Uint8Array, number]> = [];
  const staged: Array<readonly [Uint8Array, number]> = [];
  const buffers = new Map<ArrayBufferLike, number>();
  const heapCounts: number[] = [];
  let stageOff = 0;
  let payloadBytes = 0;
  let i = 0;
  for (const heap of heaps) {
    heapCounts.push(heap.entries.length);
    for (const e of heap.entries) {
      if (e.bytes !== undefined && !buffers.has(e.bytes.buffer)) {
        checkLive(e.bytes.buffer, e.id); // before its address is taken
        buffers.set(e.bytes.buffer, e.id);
      }
      const w = i * 4;
      i++;
      words[w] = BigInt(e.id);
      if (e.immediate) {
        words[w + 1] = e.value ?? 0n; // an immediate read from bytes is written by refresh()
        words[w + 2] = 0n;
        words[w + 3] = 1n;
        if (e.bytes !== undefined) immediates.push([e.bytes, 2 * (w + 1)]);
        continue;
      }
      const len = e.bytes.byteLength;
      payloadBytes += len;
      if (len === 0) {
        words[w + 1] = 0n;
      } else if (stage && len <= STAGE_MAX) {
        words[w + 1] = stageBase + BigInt(stageOff);
        staged.push([e.bytes, stageOff]);
        stageOff += len;
      } else {
        void e.bytes.buffer; // makes V8 move an on-heap array off the heap before we take its address
        words[w + 1] = native.addressOf(e.bytes);
        keepAlive.push(e.bytes);
        const owner = ownerOf(e.bytes);
        if (owner) pinned.push(owner);
      }
      words[w + 2] = BigInt(len);
      words[w + 3] = 0n;
    }
  }
  const table = { words, count: nItems, heapCounts, keepAlive, payloadBytes, pinned, inFlight: 0 };
  return {
    heaps: [...heaps],
    versions: heaps.map((h) => h.version),
    table,
    words32: new Uint32Array(words.buffer),
    stage,
    immediates,
    staged,
    buffers: [...buffers],
  };
}

function checkLive(buffer: ArrayBufferLike, id: number): void {
  if ((buffer as { detached?: boolean }).detached === true) {
    throw new SpeadError("released", `item ${id} refers to a released (detached) buffer`);
  }
}

/** Writes the per-send parts: checks that no buffer was detached, immediates read from bytes, staged copies. */
function refresh(p: PreparedTable): void {
  for (const [buffer, id] of p.buffers) checkLive(buffer, id);
  const w32 = p.words32;
  for (const [b, at] of p.immediates) {
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
  const stage = p.stage;
  for (const [b, off] of p.staged) stage!.set(b, off);
}

function current(p: PreparedTable | undefined, heaps: readonly Heap[]): p is PreparedTable {
  if (p === undefined || p.table.inFlight !== 0 || p.heaps.length !== heaps.length) return false;
  for (let i = 0; i < heaps.length; i++) {
    if (p.heaps[i] !== heaps[i] || p.versions[i] !== heaps[i].version) return false;
  }
  return true;
}

/**
 * The item table for one send of `heaps` (all their items, in order), reusing
 * `previous` when it is for the same unchanged heaps and idle. It is marked in
 * flight (and its native buffers pinned) until {@link unpinItemTable}.
 */
export function prepareItemTable(heaps: readonly Heap[], previous?: PreparedTable): PreparedTable {
  const p = current(previous, heaps) ? previous : build(heaps);
  refresh(p);
  const t = p.table;
  t.inFlight++;
  for (const b of t.pinned) b.pin();
  return p;
}

/** The item table for one send of `heap`, cached per heap; see {@link prepareItemTable}. */
export function buildItemTable(heap: Heap): ItemTable {
  const p = prepareItemTable([heap], cache.get(heap));
  cache.set(heap, p);
  return p.table;
}
