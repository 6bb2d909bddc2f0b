import { lib } from "../../ffi/mod.ts";
import { SpeadError } from "../errors.ts";
import type { Heap } from "./heap.ts";
import { cntWord } from "./encode.ts";
import { buildItemTable, type ItemTable, unpinItemTable } from "./item_table.ts";
import { StreamConfig } from "./stream_config.ts";

const finalizer = new FinalizationRegistry<number>((handle) => {
  try {
    lib.packetGenDestroy(handle);
  } catch {
    // a finalizer has nobody to report to
  }
});


/**
 * Splits one heap into packets exactly as spead2 does (spead2's
 * `send.PacketGenerator`). Iterating yields each packet as a fresh Uint8Array.
 */
export class PacketGenerator implements Iterable<Uint8Array> {
  readonly #heap: Heap;
  readonly #cnt: bigint;
  readonly #maxPacketSize: number;

  /** Packets of `heap` with heap cnt `cnt`, each at most `maxPacketSize` bytes. */
  constructor(heap: Heap, cnt: bigint | number, maxPacketSize: number = StreamConfig.DEFAULT_MAX_PACKET_SIZE) {
    if (!Number.isInteger(maxPacketSize) || maxPacketSize < 0 || maxPacketSize > 0xffff_ffff) {
      throw new SpeadError("invalid_argument", `maxPacketSize ${maxPacketSize}`);
    }
    cntWord(cnt, heap.flavour.heapAddressBits);
    this.#heap = heap;
    this.#cnt = BigInt(cnt);
    this.#maxPacketSize = maxPacketSize;
  }

  /** Yields each packet in turn (a fresh buffer each time). */
  *[Symbol.iterator](): Generator<Uint8Array, void, undefined> {
    const f = this.#heap.flavour;
    const table: ItemTable = buildItemTable(this.#heap);
    let handle: number;
    try {
      handle = lib.packetGenCreate(
        table.words,
        table.count,
        f.heapAddressBits,
        f.bugCompat,
        cntWord(this.#cnt, f.heapAddressBits),
        this.#maxPacketSize,
        this.#heap.repeatPointers ? 1 : 0,
        "PacketGenerator",
      );
    } catch (err) {
      unpinItemTable(table);
      throw err;
    }
    const token = {};
    // The table's buffers are referenced by the native generator until destroy.
    const keep = { table, token };
    finalizer.register(keep, handle, token);
    const out = new Uint8Array((this.#maxPacketSize & ~7) || 8);
    const lenOut = new Uint32Array(1);
    try {
      for (;;) {
        lib.packetGenNext(handle, out, out.byteLength, lenOut, "PacketGenerator.next");
        const len = lenOut[0];
        if (len === 0) return;
        yield out.slice(0, len);
      }
    } finally {
      finalizer.unregister(token);
      lib.packetGenDestroy(handle);
      unpinItemTable(keep.table);
    }
  }
}
