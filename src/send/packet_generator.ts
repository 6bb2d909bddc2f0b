import { lib } from "../../ffi/mod.ts";
import { SpeadError } from "../errors.ts";
import { type NativeKind, NativeObject } from "../lifetime.ts";
import type { Heap } from "./heap.ts";
import { cntWord, encoderArgs } from "./encode.ts";
import { buildItemTable, type ItemTable, unpinItemTable } from "./item_table.ts";
import { StreamConfig } from "./stream_config.ts";

const kind: NativeKind = { what: "send.PacketGenerator", destroy: lib.packetGenDestroy, closedMessage: "packet generator has finished" };

/** One native packet generator over an item table whose buffers it references until destroyed. */
class NativePacketGenerator extends NativeObject {
  readonly #table: ItemTable;

  constructor(heap: Heap, table: ItemTable, cnt: bigint, maxPacketSize: number) {
    super(lib.packetGenCreate(...encoderArgs(heap, table, cnt, maxPacketSize), "PacketGenerator"), kind);
    this.#table = table;
  }

  protected override afterDestroy(): void {
    unpinItemTable(this.#table);
  }
}

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
    const table: ItemTable = buildItemTable(this.#heap);
    let generator: NativePacketGenerator;
    try {
      generator = new NativePacketGenerator(this.#heap, table, this.#cnt, this.#maxPacketSize);
    } catch (err) {
      unpinItemTable(table);
      throw err;
    }
    const out = new Uint8Array((this.#maxPacketSize & ~7) || 8);
    const lenOut = new Uint32Array(1);
    try {
      for (;;) {
        lib.packetGenNext(generator.nativeHandle, out, out.byteLength, lenOut, "PacketGenerator.next");
        const len = lenOut[0];
        if (len === 0) return;
        yield out.slice(0, len);
      }
    } finally {
      generator.close();
    }
  }
}
