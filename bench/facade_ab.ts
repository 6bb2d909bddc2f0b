/**
 * The typed facade's cost in one process: the raw symbol (`native.symbols`)
 * against the facade method (`lib`, ffi/abi.gen.ts) on the same stream,
 * interleaved in 21 blocks (alternating which goes first), medians. Rows:
 * blocking pop of 1-packet heaps from a buffer reader, heap release, and a
 * drain poll of an empty ring. Not a test.
 *
 *   bun bench/facade_ab.ts
 *   deno run --allow-ffi --allow-env bench/facade_ab.ts
 */
import { lib, native, Status } from "../ffi/mod.ts";
import { Flavour, recv, send } from "../mod.ts";
const S = native.symbols;
const flavour = new Flavour();
const n = 20_000;
const s = new send.BytesStream();
for (let i = 0; i < n; i++) { const h = new send.Heap(flavour); h.addRaw(0x1000, new Uint8Array(64)); s.sendHeap(h); }
const bytes = s.getValue();
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const res: Record<string, number[]> = { popRaw: [], popLib: [], relRaw: [], relLib: [], tryRaw: [], tryLib: [] };
for (let r = 0; r < 21; r++) {
  for (const mode of (r % 2 ? ["Raw", "Lib"] : ["Lib", "Raw"])) {
    const rx = new recv.Stream(new recv.StreamConfig(), new recv.RingStreamConfig({ heaps: 1024 }));
    rx.addBufferReader(bytes);
    const h = rx.nativeHandle;
    const out = new Uint32Array(1);
    const handles: number[] = [];
    let t = performance.now();
    if (mode === "Raw") { while (handles.length < n) { if (S.spead_recv_stream_pop(h, 1000, out) !== 0) break; handles.push(out[0]); } }
    else { while (handles.length < n) { if (lib.recvStreamPop(h, 1000, out) !== Status.ok) break; handles.push(out[0]); } }
    res["pop" + mode].push((performance.now() - t) * 1e6 / handles.length);
    t = performance.now();
    if (mode === "Raw") for (const x of handles) S.spead_recv_heap_release(x); else for (const x of handles) lib.recvHeapRelease(x);
    res["rel" + mode].push((performance.now() - t) * 1e6 / handles.length);
    t = performance.now();
    if (mode === "Raw") for (let i = 0; i < 200_000; i++) S.spead_recv_stream_try_pop(h, out); else for (let i = 0; i < 200_000; i++) lib.recvStreamTryPop(h, out);
    res["try" + mode].push((performance.now() - t) * 1e6 / 200_000);
    rx.close();
  }
}
for (const k of ["pop", "rel", "try"]) {
  const a = med(res[k + "Raw"]), b = med(res[k + "Lib"]);
  console.log(`${k}: raw ${a.toFixed(1)} ns, facade ${b.toFixed(1)} ns, facade/raw ${(b / a).toFixed(3)}`);
}
