/**
 * Turns a send {@link Heap} into the item table of docs/ABI.md: 4 u64 words per
 * item. Addressed items are passed by address; those of at most STAGE_MAX
 * bytes are first copied into one staging buffer, so no address points into
 * memory the JS engine may move (V8 keeps small typed arrays on its own heap).
 * That copy is taken when the heap is submitted: later changes to such small
 * items do not reach a send already queued (large items are read while sent).
 *
 * Tables are cached per heap and refreshed in place when the same heap is sent
 * again (spead2's reused heaps, tutorials 10 and 11), unless a send of it is
 * still in flight.
 */
import { native } from "../../ffi/mod.ts";
import { SpeadError } from "../errors.ts";
import { bytesToImmediate, type Heap, type HeapEntry } from "./heap.ts";
import { type NativeBuffer, ownerOf } from "./buffer.ts";

/** Items at most this long are copied into the staging buffer. */
const STAGE_MAX = 4096;

/** An item table plus the buffers it points into, which must stay reachable while it is used. */
export interface ItemTable {
  readonly words: BigUint64Array;
  readonly count: number;
  /** Buffers referenced by address; keep them alive as long as the table is in use. */
  readonly keepAlive: readonly Uint8Array[];
  /** Sum of addressed item lengths. */
  readonly payloadBytes: number;
  /** Native buffers referenced by the table, pinned until {@link unpinItemTable}. */
  readonly pinned: readonly NativeBuffer[];
  /** Sends using this table that have not completed (a busy table is never refreshed). */
  inFlight: number;
}

interface Cached {
  version: number;
  table: ItemTable;
  stage: Uint8Array | undefined;
}

const cache = new WeakMap<Heap, Cached>();

/** Releases a table after use: unpins its native buffers and marks it idle. */
export function unpinItemTable(table: ItemTable): void {
  table.inFlight--;
  for (const b of table.pinned) b.unpin();
}

function checkLive(e: HeapEntry): void {
  if (e.bytes !== undefined && (e.bytes.buffer as { detached?: boolean }).detached === true) {
    throw new SpeadError("released", `item ${e.id} refers to a released (detached) buffer`);
  }
}

function stageSize(entries: readonly HeapEntry[]): number {
  let n = 0;
  for (const e of entries) {
    if (!e.immediate && e.bytes.byteLength > 0 && e.bytes.byteLength <= STAGE_MAX) n += e.bytes.byteLength;
  }
  return n;
}

/** Writes the per-send parts: immediates read from bytes, staged copies. Pins native buffers. */
function refresh(entries: readonly HeapEntry[], words: BigUint64Array, stage: Uint8Array | undefined): void {
  let stageOff = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    checkLive(e);
    if (e.immediate) {
      if (e.bytes !== undefined) words[i * 4 + 1] = bytesToImmediate(e.bytes);
      continue;
    }
    const len = e.bytes.byteLength;
    if (stage && len > 0 && len <= STAGE_MAX) {
      stage.set(e.bytes, stageOff);
      stageOff += len;
    }
  }
}

function build(heap: Heap): Cached {
  const entries = heap.entries;
  const words = new BigUint64Array(Math.max(1, entries.length) * 4);
  const stageBytes = stageSize(entries);
  // A fresh ArrayBuffer always has an off-heap backing store, so its address is stable.
  const stage = stageBytes > 0 ? new Uint8Array(new ArrayBuffer(stageBytes)) : undefined;
  const stageBase = stage ? native.addressOf(stage) : 0n;
  const keepAlive: Uint8Array[] = stage ? [stage] : [];
  const pinned: NativeBuffer[] = [];
  let stageOff = 0;
  let payloadBytes = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    checkLive(e);
    const w = i * 4;
    words[w] = BigInt(e.id);
    if (e.immediate) {
      words[w + 1] = e.value ?? 0n; // an immediate read from bytes is written by refresh()
      words[w + 2] = 0n;
      words[w + 3] = 1n;
      continue;
    }
    const len = e.bytes.byteLength;
    payloadBytes += len;
    if (len === 0) {
      words[w + 1] = 0n;
    } else if (stage && len <= STAGE_MAX) {
      words[w + 1] = stageBase + BigInt(stageOff);
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
  refresh(entries, words, stage);
  return { version: heap.version, table: { words, count: entries.length, keepAlive, payloadBytes, pinned, inFlight: 0 }, stage };
}

/**
 * The item table for one send of `heap`, marked in flight (and its native
 * buffers pinned) until {@link unpinItemTable}.
 */
export function buildItemTable(heap: Heap): ItemTable {
  let c = cache.get(heap);
  if (c && c.version === heap.version && c.table.inFlight === 0) {
    refresh(heap.entries, c.table.words, c.stage);
  } else {
    c = build(heap);
    cache.set(heap, c);
  }
  const t = c.table;
  t.inFlight++;
  for (const b of t.pinned) b.pin();
  return t;
}
