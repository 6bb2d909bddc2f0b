/** Send side against the byte vectors of docs/PROTOCOL.md §11 and the tutorial packet counts. */
import { describe, expect, test } from "bun:test";
import { Flavour, send, SpeadError } from "../mod.ts";
import { hex, toHex } from "./helpers.ts";

const F48 = new Flavour(4, 64, 48, 0);
const CNT = 0x123456n;
const HEADER48 = "53 04 02 06 00 00";
const specials = (len: number, off: number, plen: number) =>
  `80 01 00 00 00 12 34 56  80 02 ${be48(len)}  80 03 ${be48(off)}  80 04 ${be48(plen)}`;
function be48(v: number): string {
  return v.toString(16).padStart(12, "0").replace(/(..)/g, "$1 ");
}

function packets(heap: send.Heap, cnt: bigint, size: number): Uint8Array[] {
  return [...new send.PacketGenerator(heap, cnt, size)];
}

describe("packetiser byte vectors (64-48)", () => {
  test("V1 empty heap: one 49-byte packet with a NULL pointer and one padding byte", () => {
    const p = packets(new send.Heap(F48), CNT, 1500);
    expect(p).toHaveLength(1);
    expect(toHex(p[0])).toBe(toHex(hex(`${HEADER48} 00 05 ${specials(1, 0, 1)} 00 00 00 00 00 00 00 00 00`)));
  });

  test("V2 end-of-stream and start heaps: 57 bytes, control pointer before NULL", () => {
    for (const [ctrl, add] of [[2, (h: send.Heap) => h.addEnd()], [0, (h: send.Heap) => h.addStart()]] as const) {
      const h = new send.Heap(F48);
      add(h);
      const p = packets(h, CNT, 1500);
      expect(p).toHaveLength(1);
      expect(toHex(p[0])).toBe(
        toHex(hex(`${HEADER48} 00 06 ${specials(1, 0, 1)} 80 06 ${be48(ctrl)} 00 00 00 00 00 00 00 00 00`)),
      );
    }
  });

  test("V3 small fixed-size item becomes a right-aligned immediate", () => {
    const h = new send.Heap(F48);
    h.addRaw(0x2345, Uint8Array.of(0x76, 0x54), true);
    const p = packets(h, CNT, 1500);
    expect(toHex(p[0])).toBe(
      toHex(hex(`${HEADER48} 00 06 ${specials(1, 0, 1)} a3 45 00 00 00 00 76 54 00 00 00 00 00 00 00 00 00`)),
    );
  });

  test("V4 repeat_pointers: two 72-byte packets each with all pointers", () => {
    const h = new send.Heap(F48);
    h.addRaw(0x2345, Uint8Array.from({ length: 32 }, (_, i) => i));
    h.addRaw(0x2346, hex("00 00 de ad be ef"), true);
    h.repeatPointers = true;
    const p = packets(h, CNT, 72);
    expect(p.map((x) => x.byteLength)).toEqual([72, 72]);
    const ptrs = "23 45 00 00 00 00 00 00 a3 46 00 00 de ad be ef";
    const pay0 = Array.from({ length: 16 }, (_, i) => i.toString(16).padStart(2, "0")).join("");
    const pay1 = Array.from({ length: 16 }, (_, i) => (i + 16).toString(16).padStart(2, "0")).join("");
    expect(toHex(p[0])).toBe(toHex(hex(`${HEADER48} 00 06 ${specials(32, 0, 16)} ${ptrs} ${pay0}`)));
    expect(toHex(p[1])).toBe(toHex(hex(`${HEADER48} 00 06 ${specials(32, 16, 16)} ${ptrs} ${pay1}`)));
  });

  test("repeat_pointers that do not fit is an error", () => {
    const h = new send.Heap(F48);
    for (let i = 0; i < 8; i++) h.addRaw(0x1000 + i, new Uint8Array(16));
    h.repeatPointers = true;
    expect(() => packets(h, 1n, 64)).toThrow("packet_too_small");
  });
});

function heapCnt(packet: Uint8Array): bigint {
  // First pointer is HEAP_CNT (our packetiser's order); 48-bit value.
  const v = new DataView(packet.buffer, packet.byteOffset + 8, 8).getBigUint64(0);
  return v & 0xffff_ffff_ffffn;
}

function split(stream: Uint8Array, hab = 48): Uint8Array[] {
  const shift = BigInt(hab);
  const mask = (1n << shift) - 1n;
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < stream.byteLength) {
    const dv = new DataView(stream.buffer, stream.byteOffset + off);
    const n = dv.getUint16(6);
    let plen = 0;
    for (let i = 0; i < n; i++) {
      const ptr = dv.getBigUint64(8 + 8 * i);
      if (((ptr >> shift) & ((1n << (63n - shift)) - 1n)) === 4n) plen = Number(ptr & mask);
    }
    const size = 8 + 8 * n + plen;
    out.push(stream.subarray(off, off + size));
    off += size;
  }
  return out;
}

describe("streams", () => {
  test("V6 group modes at 88-byte packets: ROUND_ROBIN and SERIAL order", () => {
    const mk = (n: number) => {
      const h = new send.Heap(F48);
      h.addRaw(0x1000, new Uint8Array(n));
      return h;
    };
    const sizes = (mode: send.GroupMode) => {
      const s = new send.BytesStream(new send.StreamConfig({ maxPacketSize: 88 }));
      s.sendHeaps([8, 72, 136].map((n) => new send.HeapReference(mk(n))), mode);
      return split(s.getValue()).map((p) => {
        const dv = new DataView(p.buffer, p.byteOffset);
        return [Number(heapCnt(p)), Number(dv.getBigUint64(8 + 16) & 0xffffn), p.byteLength - 8 - 8 * dv.getUint16(6)];
      });
    };
    expect(sizes(send.GroupMode.ROUND_ROBIN)).toEqual([
      [1, 0, 8],
      [2, 0, 40],
      [3, 0, 40],
      [2, 40, 32],
      [3, 40, 48],
      [3, 88, 48],
    ]);
    expect(sizes(send.GroupMode.SERIAL)).toEqual([
      [1, 0, 8],
      [2, 0, 40],
      [2, 40, 32],
      [3, 0, 40],
      [3, 40, 48],
      [3, 88, 48],
    ]);
  });

  test("V7 cnt sequence: explicit cnt does not advance, wrap at 2^48", () => {
    const s = new send.BytesStream();
    const h = new send.Heap(F48);
    s.sendHeap(h);
    s.setCntSequence(0x1111111111n, 0x1234512345n);
    s.sendHeap(h);
    s.sendHeap(h, 0x9876543210abn);
    s.sendHeap(h);
    s.setCntSequence(2n ** 48n - 1n, 1n);
    s.sendHeap(h);
    s.sendHeap(h);
    expect(split(s.getValue()).map(heapCnt)).toEqual([
      1n,
      0x1111111111n,
      0x9876543210abn,
      0x2345623456n,
      2n ** 48n - 1n,
      0n,
    ]);
  });

  test("explicit cnt beyond the flavour is invalid_cnt; step 0 is refused", () => {
    const s = new send.BytesStream();
    expect(() => s.sendHeap(new send.Heap(F48), 2n ** 48n)).toThrow("invalid_cnt");
    expect(() => s.setCntSequence(1, 0)).toThrow("invalid_argument");
    expect(() => s.sendHeaps([])).toThrow("invalid_argument");
  });
});

describe("tutorial packet counts", () => {
  const tutorialHeap = (flavour: Flavour, size: number, ts: bigint) => {
    const h = new send.Heap(flavour);
    h.addImmediate(0x1600, ts);
    h.addRaw(0x3300, new Uint8Array(size));
    return h;
  };

  test("tut 2: ten 1 MiB heaps plus an end heap at 1472 bytes -> 7331 packets", () => {
    const f = new Flavour();
    const s = new send.BytesStream();
    for (let i = 0; i < 10; i++) s.sendHeap(tutorialHeap(f, 1 << 20, BigInt(i) << 20n));
    const end = new send.Heap(f);
    end.addEnd();
    s.sendHeap(end);
    const all = split(s.getValue(), 40);
    expect(all).toHaveLength(7331);
    expect(Math.max(...all.map((p) => p.byteLength))).toBe(1472);
  });

  test("tut 11: 16384-byte heap at -p 9000 -> 9000 + 7480; 8192 -> one 8248-byte packet", () => {
    const f = new Flavour();
    expect(packets(tutorialHeap(f, 16384, 0n), 1n, 9000).map((p) => p.byteLength)).toEqual([9000, 7480]);
    expect(packets(tutorialHeap(f, 8192, 0n), 1n, 9000).map((p) => p.byteLength)).toEqual([8248]);
  });

  test("max packet size is rounded down to a multiple of 8 (8972 -> 8968)", () => {
    const sizes = packets(tutorialHeap(new Flavour(), 100000, 0n), 1n, 8972).map((p) => p.byteLength);
    expect(sizes[0]).toBe(8968);
  });
});

describe("bad input from JS", () => {
  test("ids and immediates that do not fit are refused in JS, not in native code", () => {
    const h = new send.Heap(F48);
    expect(() => h.addImmediate(0x8000, 1)).toThrow("invalid_argument");
    expect(() => h.addImmediate(1, 2n ** 48n)).toThrow("invalid_argument");
    expect(() => h.addRaw(-1, new Uint8Array(1))).toThrow("invalid_argument");
  });

  test("max packet size below 56 is packet_too_small", () => {
    expect(() => packets(new send.Heap(F48), 1n, 55)).toThrow("packet_too_small");
    try {
      packets(new send.Heap(F48), 1n, 48);
    } catch (err) {
      expect(err).toBeInstanceOf(SpeadError);
      expect((err as SpeadError).code).toBe("packet_too_small");
    }
  });
});
