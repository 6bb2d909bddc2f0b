/** Heap encoding in one native call (send.BytesStream), and the cnt word both encoders pass. */
import { HeapEncodingView } from "../../ffi/abi.gen.ts";
import { lib } from "../../ffi/mod.ts";
import { SpeadError } from "../errors.ts";
import type { Heap } from "./heap.ts";
import { buildItemTable, type ItemTable, unpinItemTable } from "./item_table.ts";

/** The heap cnt as the one-word array the encoders take; refuses a cnt wider than the flavour. */
export function cntWord(cnt: bigint | number, heapAddressBits: number): BigUint64Array {
  const v = BigInt(cnt);
  if (v < 0n || v >= 1n << BigInt(heapAddressBits)) {
    throw new SpeadError("invalid_cnt", `heap cnt ${v} does not fit ${heapAddressBits} bits`);
  }
  return BigUint64Array.of(v);
}

/**
 * The arguments both encoders (spead_heap_encode, spead_packet_gen_create)
 * start with: the item table, the flavour, the cnt word, the packet size and
 * the repeat-pointers flag.
 */
export function encoderArgs(
  heap: Heap,
  table: ItemTable,
  cnt: bigint,
  maxPacketSize: number,
): [BigUint64Array, number, number, number, BigUint64Array, number, number] {
  const f = heap.flavour;
  const repeat = heap.repeatPointers ? 1 : 0;
  return [table.words, table.count, f.heapAddressBits, f.bugCompat, cntWord(cnt, f.heapAddressBits), maxPacketSize, repeat];
}

/** Encodes one heap into its concatenated packets in a single native call. */
export function encodeHeap(heap: Heap, cnt: bigint, maxPacketSize: number): Uint8Array {
  const table = buildItemTable(heap, true);
  try {
    return encodeTable(heap, table, cnt, maxPacketSize);
  } finally {
    unpinItemTable(table);
  }
}

/** Scratch for `spead_heap_encoded_size`'s result, read right after each call. */
const encoding = new HeapEncodingView();
const encodingBytes = encoding.bytes;

function encodeTable(heap: Heap, table: ItemTable, cnt: bigint, maxPacketSize: number): Uint8Array {
  const f = heap.flavour;
  lib.heapEncodedSize(
    table.words,
    table.count,
    f.heapAddressBits,
    maxPacketSize,
    heap.repeatPointers ? 1 : 0,
    encodingBytes,
    "encode heap (size)",
  );
  const total = Number(encoding.encoded_size);
  if (total > 0xffff_ffff) throw new SpeadError("capacity_exceeded", `encoded heap of ${total} bytes exceeds 4 GiB`);
  const out = new Uint8Array(total);
  const lenOut = new Uint32Array(1);
  lib.heapEncode(...encoderArgs(heap, table, cnt, maxPacketSize), out, total, lenOut, "encode heap");
  void table.keepAlive;
  return lenOut[0] === total ? out : out.subarray(0, lenOut[0]);
}
