/**
 * The tutorial receivers' power sum (examples/tut_7, tut_9): the WebAssembly
 * SIMD kernel (examples/power_kernel.ts) against the plain JS loop
 * (examples/cli.ts meanPower), on samples in pre-faulted native memory as the
 * receiver's heaps are (send.allocateBuffer), 1 MiB and 64 MiB heaps. Medians
 * of --runs alternated passes. Not a test.
 *
 *   bun bench/power_kernel.ts [--runs N]
 *   deno run --allow-ffi --allow-env bench/power_kernel.ts [--runs N]
 */
import process from "node:process";
import { send } from "../mod.ts";
import { meanPower } from "../examples/cli.ts";
import { meanPowerWasm, preparePowerKernel } from "../examples/power_kernel.ts";

const argv = process.argv.slice(2);
const runsAt = argv.indexOf("--runs");
const runs = runsAt >= 0 ? Math.max(1, Math.min(21, Number(argv[runsAt + 1]) | 0)) : 5;
const runtime = "Bun" in globalThis
  ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** GB/s of `f` over `heaps`, each pass at least `minBytes` of samples. */
function rate(f: (s: Int8Array) => number, heaps: Int8Array[], minBytes: number): number {
  let bytes = 0;
  let sink = 0;
  const t0 = performance.now();
  while (bytes < minBytes) {
    for (const h of heaps) {
      sink += f(h);
      bytes += h.length;
    }
  }
  const t = performance.now() - t0;
  if (Number.isNaN(sink)) throw new Error("NaN power");
  return bytes / t / 1e6;
}

if (!preparePowerKernel()) throw new Error(`${runtime} lacks WebAssembly SIMD`);
console.log(`## Power kernel: WebAssembly SIMD vs the JS loop (${runtime}, ${navigator.hardwareConcurrency} CPUs)\n`);
console.log(`Samples in native send buffers (pre-faulted mmap, like the receiver's pooled heaps), two heaps alternated; GB/s = 1e9 samples/s; median of ${runs} alternated passes.\n`);
console.log("| heap size | JS loop GB/s | WASM SIMD GB/s | WASM / JS |");
console.log("|---|---:|---:|---:|");
for (const size of [1 << 20, 64 << 20]) {
  const bufs = [send.allocateBuffer(size), send.allocateBuffer(size)];
  const heaps = bufs.map((b, k) => {
    const s = new Int8Array(b.bytes.buffer, b.bytes.byteOffset, size);
    for (let i = 0; i < size; i++) s[i] = (i * 131 + k * 7) & 0xff;
    return s;
  });
  if (meanPowerWasm(heaps[0]) !== meanPower(heaps[0])) throw new Error("kernel and JS loop disagree");
  const js: number[] = [];
  const wasm: number[] = [];
  for (let r = 0; r < runs; r++) {
    js.push(rate(meanPower, heaps, 256 << 20));
    wasm.push(rate(meanPowerWasm, heaps, 1 << 30));
  }
  const [j, w] = [median(js), median(wasm)];
  console.log(`| ${size >> 20} MiB | ${j.toFixed(2)} | ${w.toFixed(2)} | ${(w / j).toFixed(1)} |`);
  for (const b of bufs) b.release();
}
