/**
 * The tutorial receivers' power sum on WebAssembly SIMD (spead2's Python
 * tutorial uses numba, its C++ one AVX2, for the same reason: a plain loop is
 * slower than the data arrive). The kernel, examples/kernels/power.zig built by
 * scripts/build-wasm.sh, sums int8 squares 32 samples per step with
 * `i32x4.dot_i16x8_s`. WebAssembly reads only its own linear memory, so the
 * samples (a zero-copy lease of native memory) are copied through a 256 KiB
 * buffer there chunk by chunk, which stays in cache; the copy costs a fraction
 * of the sum. The result is the exact integer sum, so {@link meanPowerWasm}
 * equals examples/cli.ts `meanPower` to the last bit (tests/power_kernel.test.ts).
 */
import { meanPower } from "./cli.ts";
import { powerWasmBase64 } from "./kernels/power_wasm.ts";

interface PowerExports {
  memory: WebAssembly.Memory;
  chunkPtr(): number;
  chunkLen(): number;
  sumSquares(n: number): number;
}

interface Kernel {
  sumSquares(n: number): number;
  chunk: Int8Array;
}

/** The kernel's module bytes (examples/kernels/power.wasm). */
export function powerWasmBytes(): Uint8Array<ArrayBuffer> {
  const text = atob(powerWasmBase64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

let kernel: Kernel | null | undefined;

/** Instantiates the module once; null where the runtime lacks WebAssembly SIMD. */
function load(): Kernel | null {
  if (kernel !== undefined) return kernel;
  const bytes = powerWasmBytes();
  if (typeof WebAssembly === "undefined" || !WebAssembly.validate(bytes)) return (kernel = null);
  const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as PowerExports;
  // The module never grows its memory, so this view stays valid.
  kernel = { sumSquares: ex.sumSquares, chunk: new Int8Array(ex.memory.buffer, ex.chunkPtr(), ex.chunkLen()) };
  // Engines start WebAssembly in a baseline tier and recompile hot code later;
  // a few passes now move that cost before the first heap arrives.
  // (JavaScriptCore counts calls as well as loop iterations.)
  for (let i = 0; i < WARM_UP_CALLS; i++) ex.sumSquares(i % 32 === 0 ? kernel.chunk.length : 4096);
  return kernel;
}

const WARM_UP_CALLS = 256;

/**
 * Loads, compiles and warms up the kernel now rather than on the first heap
 * (a receiver calls it before it starts receiving). Returns whether the
 * WebAssembly kernel is available.
 */
export function preparePowerKernel(): boolean {
  return load() !== null;
}

/** Sum of the squared samples, exact (below 2^53, i.e. any heap under 512 TiB). */
export function sumSquaresWasm(samples: Int8Array): number {
  const k = load();
  if (k === null) return meanPower(samples) * samples.length;
  const step = k.chunk.length;
  let total = 0;
  for (let off = 0; off < samples.length; off += step) {
    const part = samples.subarray(off, Math.min(samples.length, off + step));
    k.chunk.set(part);
    total += k.sumSquares(part.length);
  }
  return total;
}

/**
 * Mean of the squared samples (the tutorials' `mean_power`) on the
 * WebAssembly kernel; NaN for no samples, as numpy's mean of an empty array.
 */
export function meanPowerWasm(samples: Int8Array): number {
  return sumSquaresWasm(samples) / samples.length;
}
