/**
 * Turns a send {@link Heap} into the item table of docs/ABI.md: 4 u64 words per
 * item. Addressed items are passed by address; small ones are first copied
 * into one staging buffer so that no address points into memory the JS engine
 * may move (V8 keeps small typed arrays on its own heap).
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
  readonly count: number;
  /** Buffers referenced by address; keep them alive as long as the table is in use. */
  readonly keepAlive: readonly Uint8Array[];
  /** Sum of addressed item lengths. */
  readonly payloadBytes: number;
  /** Native buffers referenced by the table, pinned until {@link unpinItemTable}. */
  readonly pinned: readonly NativeBuffer[];
}

/** Lets the native buffers of a table be freed again (call once the native side is done). */
export function unpinItemTable(table: ItemTable): void {
  for (const b of table.pinned) b.unpin();
}

export function buildItemTable(heap: Heap): ItemTable {
  const entries = heap.entries;
  const words = new BigUint64Array(Math.max(1, entries.length) * 4);
  let stageBytes = 0;
  for (const e of entries) {
    if (!e.immediate && e.bytes.byteLength > 0 && e.bytes.byteLength <= STAGE_MAX) stageBytes += e.bytes.byteLength;
  }
  // A fresh ArrayBuffer always has an off-heap backing store, so its address is stable.
  const stage = stageBytes > 0 ? new Uint8Array(new ArrayBuffer(stageBytes)) : undefined;
  const stageBase = stage ? native.addressOf(stage) : 0n;
  const keepAlive: Uint8Array[] = stage ? [stage] : [];
  let stageOff = 0;
  let payloadBytes = 0;
  const pinned: NativeBuffer[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const w = i * 4;
    words[w] = BigInt(e.id);
    if (e.immediate) {
      words[w + 1] = e.value;
      words[w + 2] = 0n;
      words[w + 3] = 1n;
      continue;
    }
    if ((e.bytes.buffer as { detached?: boolean }).detached === true) {
      throw new SpeadError("released", `item ${e.id} refers to a released (detached) buffer`);
    }
    const len = e.bytes.byteLength;
    payloadBytes += len;
    if (len === 0) {
      words[w + 1] = 0n;
    } else if (stage && len <= STAGE_MAX) {
      stage.set(e.bytes, stageOff);
      words[w + 1] = stageBase + BigInt(stageOff);
      stageOff += len;
    } else {
      void e.bytes.buffer; // makes V8 move an on-heap array off the heap before we take its address
      words[w + 1] = native.addressOf(e.bytes);
      keepAlive.push(e.bytes);
      const owner = ownerOf(e.bytes);
      if (owner) {
        owner.pin();
        pinned.push(owner);
      }
    }
    words[w + 2] = BigInt(len);
    words[w + 3] = 0n;
  }
  return { words, count: entries.length, keepAlive, payloadBytes, pinned };
}
