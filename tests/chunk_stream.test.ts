/** Chunk streams: declared rules, C place functions, leases, stats, bad rules, interop with spead2. */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { Flavour, MEMCPY_NONTEMPORAL, MEMCPY_STD, recv, send, SpeadError } from "../mod.ts";
import { concat, python, root } from "./helpers.ts";

const F40 = new Flavour();
const HEAP_LENGTH_ID = 2;

/** One heap of tutorial 11's items as packets: timestamp (immediate) and adc_samples. */
function tutHeap(cnt: bigint, timestamp: bigint, samples: Uint8Array, extra: Array<[number, bigint]> = [], size = 1472) {
  const h = new send.Heap(F40);
  h.addImmediate(0x1600, timestamp);
  for (const [id, v] of extra) h.addImmediate(id, v);
  h.addRaw(0x3300, samples);
  return [...new send.PacketGenerator(h, cnt, size)];
}

const fill = (n: number, v: number) => new Uint8Array(n).fill(v & 0xff);

function tut12Rule(heapSize: number, chunkHeaps: number): recv.PlaceRule {
  return new recv.PlaceRule({ heapBytes: heapSize, timestamp: { item: 0x1600, step: heapSize, heaps: chunkHeaps } });
}

interface Rig {
  stream: recv.ChunkRingStream;
  dataRing: recv.ChunkRingbuffer;
  freeRing: recv.ChunkRingbuffer;
  close(): void;
}

function rig(
  config: recv.ChunkStreamConfig,
  makeChunk: () => recv.Chunk,
  nChunks = 4,
  streamOptions: recv.StreamConfigOptions = {},
  prefill = nChunks,
): Rig {
  const dataRing = new recv.ChunkRingbuffer(nChunks);
  const freeRing = new recv.ChunkRingbuffer(nChunks);
  const stream = new recv.ChunkRingStream(new recv.StreamConfig(streamOptions), config, dataRing, freeRing);
  for (let i = 0; i < prefill; i++) stream.addFreeChunk(makeChunk());
  return {
    stream,
    dataRing,
    freeRing,
    close() {
      stream.close();
      dataRing.close();
      freeRing.close();
    },
  };
}

/** Snapshot of a chunk's id, present flags and data, then hands it back. */
function snapshot(r: Rig, chunk: recv.Chunk) {
  const s = { id: chunk.chunkId, present: Array.from(chunk.present), data: chunk.data.slice(), extra: chunk.extra?.slice() };
  r.stream.addFreeChunk(chunk);
  return s;
}

async function drain(r: Rig) {
  const out = [];
  for await (const chunk of r.dataRing) out.push(snapshot(r, chunk));
  return out;
}

describe("recv.ChunkRingStream with a declared rule (tutorial 12)", () => {
  test("heaps land at their timestamp's place; missing heaps stay absent; too-old and rejected heaps are counted", async () => {
    const heapSize = 512;
    const chunkHeaps = 4;
    const parts: Uint8Array[] = [];
    let cnt = 1n;
    for (let i = 0; i < 12; i++) {
      if (i === 5 || i === 6) continue;
      parts.push(...tutHeap(cnt++, BigInt(i * heapSize), fill(heapSize, i * 3 + 1)));
    }
    parts.push(...tutHeap(cnt++, BigInt(1 * heapSize), fill(heapSize, 99))); // late: chunk 0 is gone
    parts.push(...tutHeap(cnt++, 12n * BigInt(heapSize), fill(100, 7))); // wrong length
    const rule = tut12Rule(heapSize, chunkHeaps);
    expect(rule.heapsPerChunk).toBe(chunkHeaps);
    expect(rule.chunkBytes).toBe(chunkHeaps * heapSize);
    expect(rule.items).toEqual([0x1600n]);
    const r = rig(new recv.ChunkStreamConfig({ place: rule, maxChunks: 1 }), () => rule.makeChunk(), 4, { maxHeaps: 2 });
    r.stream.addBufferReader(concat(parts));
    const chunks = await drain(r);
    expect(chunks.map((c) => c.id)).toEqual([0n, 1n, 2n]);
    for (const c of chunks) {
      for (let k = 0; k < chunkHeaps; k++) {
        const i = Number(c.id) * chunkHeaps + k;
        const missing = i === 5 || i === 6;
        expect(c.present[k]).toBe(missing ? 0 : 1);
        if (!missing) expect(c.data.subarray(k * heapSize, (k + 1) * heapSize)).toEqual(fill(heapSize, i * 3 + 1));
      }
    }
    const st = r.stream.stats;
    expect(st.too_old_heaps).toBe(1);
    expect(st.rejected_heaps).toBe(1);
    expect(st.heaps).toBe(12);
    expect(st.packets).toBeGreaterThanOrEqual(12);
    r.close();
  });

  test("memcpy MEMCPY_NONTEMPORAL places the same bytes as MEMCPY_STD", async () => {
    const heapSize = 6000; // five packets of 1472 bytes: copies at every destination alignment
    const chunkHeaps = 4;
    const samples = (i: number) => Uint8Array.from({ length: heapSize }, (_, k) => (k * 13 + i * 7) & 0xff);
    const packets = concat(Array.from({ length: 10 }, (_, i) => tutHeap(BigInt(i + 1), BigInt(i * heapSize), samples(i))).flat());
    const rule = tut12Rule(heapSize, chunkHeaps);
    const run = async (memcpy: number) => {
      const r = rig(new recv.ChunkStreamConfig({ place: rule, maxChunks: 2 }), () => rule.makeChunk(), 4, { memcpy });
      r.stream.addBufferReader(packets);
      const chunks = await drain(r);
      r.close();
      return chunks;
    };
    const std = await run(MEMCPY_STD);
    expect(std.map((c) => c.id)).toEqual([0n, 1n, 2n]);
    for (let i = 0; i < 10; i++) {
      const c = std[Math.floor(i / chunkHeaps)];
      const k = i % chunkHeaps;
      expect(c.present[k]).toBe(1);
      expect(c.data.subarray(k * heapSize, (k + 1) * heapSize)).toEqual(samples(i));
    }
    expect(await run(MEMCPY_NONTEMPORAL)).toEqual(std);
  });

  test("chunks are leases: views detach when handed back, release frees, library-held chunks refuse access", async () => {
    const rule = tut12Rule(256, 2);
    const chunk = rule.makeChunk();
    const data = chunk.data;
    data[0] = 5;
    expect(chunk.isHeld).toBe(true);
    expect(chunk.chunkId).toBe(-1n);
    const r = rig(new recv.ChunkStreamConfig({ place: rule }), () => rule.makeChunk(), 1, {}, 0);
    r.stream.addFreeChunk(chunk);
    expect(data.byteLength).toBe(0); // detached, not a window on memory the stream now writes
    expect(chunk.isHeld).toBe(false);
    expect(() => chunk.data).toThrow(SpeadError);
    expect(() => chunk.release()).toThrow(SpeadError);
    r.stream.addBufferReader(concat([...tutHeap(1n, 0n, fill(256, 9)), ...tutHeap(2n, 256n, fill(256, 8))]));
    const got = await r.dataRing.get();
    expect(got).toBe(chunk); // the same object comes back
    expect(Array.from(got.present)).toEqual([1, 1]);
    expect(got.data[0]).toBe(9);
    const view = got.present;
    got.release();
    expect(view.byteLength).toBe(0);
    expect(got.isReleased).toBe(true);
    expect(() => got.data).toThrow(SpeadError);
    got.release(); // idempotent
    r.close();
  });

  test("stop while JS holds chunks and a reader waits for a free chunk", async () => {
    const rule = tut12Rule(256, 1);
    const r = rig(new recv.ChunkStreamConfig({ place: rule, maxChunks: 1 }), () => rule.makeChunk(), 2);
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 8; i++) parts.push(...tutHeap(BigInt(i + 1), BigInt(i * 256), fill(256, i)));
    r.stream.addBufferReader(concat(parts));
    const held = [await r.dataRing.get()];
    for (let i = 0; i < 200 && r.dataRing.qsize() === 0; i++) await new Promise((res) => setTimeout(res, 5));
    held.push(await r.dataRing.get());
    // Both chunks are with JS: the reader is blocked on the empty free ring.
    r.stream.stop();
    expect(held.map((c) => c.chunkId)).toEqual([0n, 1n]);
    expect(held[1].data[0]).toBe(1);
    const rest = [];
    for await (const c of r.dataRing) rest.push(c);
    expect(rest).toEqual([]);
    for (const c of held) c.release();
    r.close();
  });
});

describe("recv.PlaceRule", () => {
  test("the correlator rule: timestamp x antenna with strides, item values copied into extra", async () => {
    const heapSize = 128;
    const nAnts = 3;
    const rule = new recv.PlaceRule({
      heapBytes: heapSize,
      timestamp: { item: 0x1600, step: 1000, heaps: 2 },
      axes: [{ item: 0x4101, count: nAnts }],
      extra: { bytesPerHeap: 16, fields: [{ item: 0x4101, offset: 0, width: 2 }, { item: 0x1600, offset: 8, width: 8 }] },
    });
    expect(rule.heapsPerChunk).toBe(6);
    expect(rule.extraBytes).toBe(96);
    expect(rule.items).toEqual([0x1600n, 0x4101n]);
    const parts: Uint8Array[] = [];
    let cnt = 1n;
    for (let t = 0; t < 4; t++) {
      for (let ant = nAnts - 1; ant >= 0; ant--) {
        if (t === 2 && ant === 0) continue;
        parts.push(...tutHeap(cnt++, BigInt(t * 1000), fill(heapSize, t * 16 + ant), [[0x4101, BigInt(ant)]]));
      }
    }
    parts.push(...tutHeap(cnt++, 1000n, fill(heapSize, 1), [[0x4101, 9n]])); // antenna out of range
    parts.push(...tutHeap(cnt++, 1500n, fill(heapSize, 1), [[0x4101, 1n]])); // not on a time step
    const r = rig(new recv.ChunkStreamConfig({ place: rule }), () => rule.makeChunk(), 4, { maxHeaps: 4 });
    r.stream.addBufferReader(concat(parts));
    const chunks = await drain(r);
    expect(chunks.map((c) => c.id)).toEqual([0n, 1n]);
    for (const c of chunks) {
      const extra = new DataView(c.extra!.buffer);
      for (let tt = 0; tt < 2; tt++) {
        for (let ant = 0; ant < nAnts; ant++) {
          const t = Number(c.id) * 2 + tt;
          const index = tt * nAnts + ant;
          const missing = t === 2 && ant === 0;
          expect(c.present[index]).toBe(missing ? 0 : 1);
          if (missing) continue;
          expect(c.data[index * heapSize]).toBe(t * 16 + ant);
          expect(extra.getUint16(index * 16, true)).toBe(ant);
          expect(extra.getBigUint64(index * 16 + 8, true)).toBe(BigInt(t * 1000));
        }
      }
    }
    expect(r.stream.stats.rejected_heaps).toBe(2);
    r.close();
  });

  test("bad rules are refused at construction with a clear error", () => {
    const ts = { item: 0x1600, step: 1024, heaps: 8 };
    const bad: recv.PlaceRuleOptions[] = [
      { heapBytes: 0, timestamp: ts },
      { heapBytes: 1024, timestamp: { ...ts, step: 0 } },
      { heapBytes: 1024, timestamp: { ...ts, heaps: 0 } },
      { heapBytes: 1024, timestamp: ts, axes: [{ item: 0x4101, count: 4, stride: 2 ** 52 }], heapsPerChunk: 16 },
      { heapBytes: 1024, timestamp: { ...ts, stride: 2 ** 53 - 1 } },
      { heapBytes: 1024, timestamp: ts, heapsPerChunk: 4 },
      { heapBytes: 1024, timestamp: ts, extra: { bytesPerHeap: 4, fields: [{ item: 0x1600, offset: 0, width: 8 }] } },
      { heapBytes: 1024, heapLength: 2048, timestamp: ts },
      { heapBytes: 2 ** 40, timestamp: { ...ts, heaps: 1 << 20 } },
    ];
    for (const options of bad) {
      let err: unknown;
      try {
        new recv.PlaceRule(options);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SpeadError);
      expect((err as SpeadError).code).toBe("invalid_argument");
    }
    const rule = tut12Rule(1024, 8);
    expect(() => new recv.ChunkStreamConfig({ place: rule, maxChunks: 0 })).toThrow(SpeadError);
    expect(() => new recv.ChunkStreamConfig({ place: rule, items: [1] })).toThrow(SpeadError);
    expect(() => new recv.Chunk({ data: 0, present: 1 })).toThrow(SpeadError);
  });
});

describe("recv.PlaceFunction (a C place function built with zig cc)", () => {
  // Built and removed by subprocesses, so Deno needs no --allow-write.
  const dir = `${tmpdir()}/spead-place-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
  const lib = `${dir}/place.so`;
  spawnSync("mkdir", ["-p", dir]);
  const built = spawnSync(`${root}/scripts/zig`, ["cc", "-shared", "-fPIC", "-O2", "-o", lib, `${root}/tests/chunk/place_tut12.c`], {
    encoding: "utf8",
  });

  test("gives the same chunks as the declared rule, and out-of-bounds placements are refused", async () => {
    try {
      expect(built.status, built.stderr).toBe(0);
      const heapSize = 1024;
      const chunkHeaps = 4;
      const parts: Uint8Array[] = [];
      for (let i = 0; i < 14; i++) {
        if (i === 3) continue;
        parts.push(...tutHeap(BigInt(i + 1), BigInt(i * heapSize), fill(heapSize, 200 - i), [], 600));
      }
      const bytes = concat(parts);
      const rule = tut12Rule(heapSize, chunkHeaps);
      const sizes = BigInt64Array.of(BigInt(heapSize), BigInt(heapSize * chunkHeaps));
      const fn = recv.PlaceFunction.load(lib, "place_tut12", sizes);
      const results = [];
      for (const place of [rule, fn]) {
        const config = place instanceof recv.PlaceRule
          ? new recv.ChunkStreamConfig({ place })
          : new recv.ChunkStreamConfig({ place, items: [HEAP_LENGTH_ID, 0x1600] });
        const r = rig(config, () => rule.makeChunk(), 4);
        r.stream.addBufferReader(bytes);
        results.push(await drain(r));
        r.close();
      }
      expect(results[0].length).toBe(4);
      expect(results[1]).toEqual(results[0]);
      expect(results[0][0].present).toEqual([1, 1, 1, 0]);

      const evil = recv.PlaceFunction.load(lib, "place_out_of_bounds");
      const r = rig(new recv.ChunkStreamConfig({ place: evil, items: [0x1600] }), () => rule.makeChunk(), 2);
      r.stream.addBufferReader(bytes);
      const chunks = await drain(r);
      for (const c of chunks) expect(c.present).toEqual([0, 0, 0, 0]);
      expect(r.stream.stats.rejected_heaps).toBe(13);
      r.close();
      expect(() => recv.PlaceFunction.load(lib, "no_such_symbol")).toThrow(SpeadError);
      expect(() => recv.PlaceFunction.load(`${dir}/missing.so`, "place_tut12")).toThrow(SpeadError);
    } finally {
      spawnSync("rm", ["-rf", dir]);
    }
  });
});

describe("interop: spead2 sends tutorial 11's heaps over UDP to a chunk stream", () => {
  test("every heap at its place with its bytes; missing absent; late and descriptor heaps counted", async () => {
    const heapSize = 8192;
    const chunkHeaps = 8;
    const nHeaps = 64;
    const rule = tut12Rule(heapSize, chunkHeaps);
    const r = rig(new recv.ChunkStreamConfig({ place: rule, maxChunks: 2 }), () => rule.makeChunk(), 8, { maxHeaps: 4 });
    const info = r.stream.addUdpReader(0, { bindHostname: "127.0.0.1" });
    const { spawn } = await import("node:child_process");
    const child = spawn(python, [
      `${root}/tests/interop/chunk_send.py`,
      "-n",
      String(nHeaps),
      "-H",
      String(heapSize),
      "--skip",
      "9,30,31",
      "--late",
      "2",
      "127.0.0.1",
      String(info.port),
    ], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
    const exited = new Promise<number | null>((res) => child.on("close", res));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      r.stream.stop();
    }, 30_000);
    try {
      const chunks = await drain(r);
      expect(await exited, err).toBe(0);
      expect(chunks.map((c) => Number(c.id))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      for (const c of chunks) {
        for (let k = 0; k < chunkHeaps; k++) {
          const i = Number(c.id) * chunkHeaps + k;
          const absent = i === 0 || i === 9 || i === 30 || i === 31; // heap 0 carries descriptors
          expect(c.present[k]).toBe(absent ? 0 : 1);
          if (!absent) {
            const row = c.data.subarray(k * heapSize, (k + 1) * heapSize);
            expect(row.every((b) => b === ((i * 3 + 1) & 0xff))).toBe(true);
          }
        }
      }
      const st = r.stream.stats;
      // Rejected: heap 0 (its descriptors make it longer) and the end-of-stream heap
      // (no timestamp), as spead2's tutorial callback would.
      expect(st.rejected_heaps).toBe(2);
      expect(st.too_old_heaps).toBe(1);
      expect(st.heaps).toBe(nHeaps - 3 + 1);
    } finally {
      clearTimeout(timer);
      child.kill("SIGKILL");
      r.close();
    }
  });
});
