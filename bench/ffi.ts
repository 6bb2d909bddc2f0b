/**
 * FFI microbenchmarks: ns per call of the hot entry points and MB/s of
 * encoding / decoding 1 MiB heaps in memory, with spead2's figures
 * (bench/spead2_mem_bench.py) for the rows that have an equivalent. Not a test.
 *
 *   bun bench/ffi.ts
 *   deno run --allow-ffi --allow-env --allow-run --allow-read bench/ffi.ts
 */
import { spawnSync } from "node:child_process";
import { lib, native, Status } from "../ffi/mod.ts";
import { Descriptor, Flavour, recv, send } from "../mod.ts";
import { buildItemTable } from "../src/send/item_table.ts";

const S = native.symbols;
const runs = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** ns per call of fn, median of `runs` runs of n calls. */
function nsPerCall(n: number, fn: () => void): number {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    times.push(((performance.now() - t0) * 1e6) / n);
  }
  return median(times);
}

const rows: Array<[string, string]> = [];

rows.push(["trivial call (spead_library_version)", `${nsPerCall(2_000_000, () => S.spead_library_version()).toFixed(1)} ns`]);
// The rows below call the typed facade (ffi/mod.ts lib), as src/ does: its status check included.
rows.push(["trivial call through the facade (lib.libraryVersion)", `${nsPerCall(2_000_000, () => lib.libraryVersion()).toFixed(1)} ns`]);

{
  const s = new recv.Stream();
  const h = s.nativeHandle;
  const out = new Uint32Array(1);
  rows.push(["drain poll, empty ring (try_pop)", `${nsPerCall(1_000_000, () => lib.recvStreamTryPop(h, out)).toFixed(1)} ns`]);
  s.close();
}

// A small heap packetised into a caller buffer in one call.
const flavour = new Flavour();
{
  const heap = new send.Heap(flavour);
  heap.addImmediate(0x1600, 1234n);
  heap.addRaw(0x3300, new Uint8Array(1024));
  const table = buildItemTable(heap);
  const cnt = BigUint64Array.of(1n);
  const out = new Uint8Array(4096);
  const len = new Uint32Array(1);
  rows.push([
    "packetise 1 KiB heap into buffer (spead_heap_encode)",
    `${nsPerCall(200_000, () => lib.heapEncode(table.words, table.count, 40, 0, cnt, 1472, 0, out, out.length, len)).toFixed(1)} ns`,
  ]);
}

// Heap release: pop + describe + release of single-packet heaps from a buffer.
{
  const n = 20_000;
  const s = new send.BytesStream();
  for (let i = 0; i < n; i++) {
    const h = new send.Heap(flavour);
    h.addRaw(0x1000, new Uint8Array(64));
    s.sendHeap(h);
  }
  const bytes = s.getValue();
  const times: number[] = [];
  const popTimes: number[] = [];
  for (let r = 0; r < runs; r++) {
    const rx = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig({ heaps: 1024 }));
    rx.addBufferReader(bytes);
    const handles: number[] = [];
    const out = new Uint32Array(1);
    const tp = performance.now();
    while (handles.length < n) {
      if (lib.recvStreamPop(rx.nativeHandle, 1000, out) !== Status.ok) break;
      handles.push(out[0]);
    }
    popTimes.push(((performance.now() - tp) * 1e6) / handles.length);
    const t0 = performance.now();
    for (const hd of handles) lib.recvHeapRelease(hd);
    times.push(((performance.now() - t0) * 1e6) / handles.length);
    rx.close();
  }
  rows.push(["heap pop incl. reassembly (blocking pop)", `${median(popTimes).toFixed(1)} ns`]);
  rows.push(["heap release (spead_recv_heap_release)", `${median(times).toFixed(1)} ns`]);
}

// Exports that take or return records: descriptor encode/decode, native buffers.
{
  const d = new Descriptor({ id: 0x1600, name: "timestamp", description: "Index of the first sample", shape: [], format: [["u", 48]] });
  const raw = d.toRaw(flavour);
  rows.push(["descriptor encode (Descriptor.toRaw)", `${nsPerCall(50_000, () => d.toRaw(flavour)).toFixed(1)} ns`]);
  rows.push(["descriptor decode (Descriptor.fromRaw)", `${nsPerCall(50_000, () => Descriptor.fromRaw(raw, flavour)).toFixed(1)} ns`]);
  rows.push(["native buffer 4 KiB alloc + release (send.allocateBuffer)", `${nsPerCall(20_000, () => send.allocateBuffer(4096).release()).toFixed(1)} ns`]);
}

// 1 MiB heaps: encode and decode throughput in memory.
{
  const size = 1 << 20;
  const nHeaps = 64;
  const data = new Uint8Array(size).map((_, i) => i & 0xff);
  const encodeTimes: number[] = [];
  const decodeTimes: number[] = [];
  for (let r = 0; r < runs; r++) {
    const s = new send.BytesStream();
    const heap = new send.Heap(flavour);
    heap.addImmediate(0x1600, 0n);
    heap.addRaw(0x3300, data);
    const t0 = performance.now();
    for (let i = 0; i < nHeaps; i++) s.sendHeap(heap);
    encodeTimes.push((nHeaps * size) / 1e6 / ((performance.now() - t0) / 1e3));
    const bytes = s.getValue();
    const rx = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig({ heaps: 8 }));
    const t1 = performance.now();
    rx.addBufferReader(bytes);
    let got = 0;
    for (const h of rx) {
      got++;
      h.release();
    }
    decodeTimes.push((got * size) / 1e6 / ((performance.now() - t1) / 1e3));
    rx.close();
  }
  rows.push(["encode 1 MiB heaps (BytesStream, 1472-byte packets)", `${median(encodeTimes).toFixed(0)} MB/s`]);
  rows.push(["decode 1 MiB heaps (buffer reader -> heaps, incl. copy-in)", `${median(decodeTimes).toFixed(0)} MB/s`]);
}

// spead2's figures for the two rows it has an equivalent for (same machine, same run).
const spead2 = (() => {
  const py = decodeURIComponent(new URL("../.venv/bin/python", import.meta.url).pathname);
  const script = decodeURIComponent(new URL("./spead2_mem_bench.py", import.meta.url).pathname);
  const r = spawnSync(py, [script], { encoding: "utf8", timeout: 300_000 });
  if (r.status !== 0) return undefined;
  return JSON.parse(r.stdout) as { encode: number; decode: number; version: string };
})();
const theirs: Record<string, number | undefined> = {
  "encode 1 MiB heaps (BytesStream, 1472-byte packets)": spead2?.encode,
  "decode 1 MiB heaps (buffer reader -> heaps, incl. copy-in)": spead2?.decode,
};

const runtime = native.runtime === "bun"
  ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;
console.log(`\n${runtime}, spead2 ${spead2?.version ?? "(not available)"} (Python) — median of ${runs} runs`);
const w = Math.max(...rows.map((r) => r[0].length));
console.log(`| ${"operation".padEnd(w)} | ours | spead2 | ours / spead2 |`);
console.log(`|${"-".repeat(w + 2)}|---|---|---|`);
for (const [k, v] of rows) {
  const t = theirs[k];
  const ratio = t ? (parseFloat(v) / t).toFixed(2) : "n/a";
  console.log(`| ${k.padEnd(w)} | ${v} | ${t ? `${t.toFixed(0)} MB/s` : "no equivalent"} | ${ratio} |`);
}
