/**
 * The WebAssembly SIMD power kernel of the tutorial receivers
 * (examples/power_kernel.ts, examples/kernels/power.zig): its result equals the
 * plain JS loop (examples/cli.ts meanPower) exactly, and the checked-in
 * embedding is the checked-in .wasm file.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { meanPower } from "../examples/cli.ts";
import { meanPowerWasm, powerWasmBytes, sumSquaresWasm, preparePowerKernel } from "../examples/power_kernel.ts";
import { root } from "./helpers.ts";

/** Deterministic int8 samples (xorshift32). */
function samples(n: number, seed: number): Int8Array {
  const out = new Int8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function plainSum(s: Int8Array): number {
  let t = 0;
  for (let i = 0; i < s.length; i++) t += s[i] * s[i];
  return t;
}

describe("WebAssembly power kernel", () => {
  test("this runtime has WebAssembly SIMD", () => {
    expect(preparePowerKernel()).toBe(true);
  });

  test("the embedded module is examples/kernels/power.wasm", () => {
    const file = new Uint8Array(readFileSync(`${root}/examples/kernels/power.wasm`));
    expect(file.length).toBeGreaterThan(8);
    expect(Array.from(powerWasmBytes())).toEqual(Array.from(file));
  });

  test("the checked-in module is what scripts/build-wasm.sh builds from examples/kernels/power.zig", () => {
    const r = spawnSync("bash", [`${root}/scripts/build-wasm.sh`, "--check"], { encoding: "utf8", timeout: 120_000 });
    expect(r.stderr + r.stdout).toContain("up to date");
    expect(r.status).toBe(0);
  });

  test("equals the JS loop exactly, every length and alignment near the vector and chunk edges", () => {
    const chunk = 256 * 1024;
    const base = samples(3 * chunk + 100, 12345);
    const lengths = [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000, chunk - 1, chunk, chunk + 1, 2 * chunk + 31, 3 * chunk + 97];
    for (const n of lengths) {
      for (const off of [0, 1, 3]) {
        const s = base.subarray(off, off + n);
        const js = meanPower(s);
        const wasm = meanPowerWasm(s);
        if (n === 0) expect(Number.isNaN(wasm) && Number.isNaN(js)).toBe(true);
        else expect(wasm).toBe(js);
        expect(sumSquaresWasm(s)).toBe(plainSum(s));
      }
    }
  });

  test("extreme samples (-128 everywhere) do not overflow the SIMD lanes", () => {
    const n = 1 << 20; // four full chunks
    const s = new Int8Array(n).fill(-128);
    expect(sumSquaresWasm(s)).toBe(n * 128 * 128);
    expect(meanPowerWasm(s)).toBe(meanPower(s));
    s.fill(127);
    expect(meanPowerWasm(s)).toBe(16129);
  });

  test("random heaps of the tutorial sizes", () => {
    for (const [n, seed] of [[1 << 20, 7], [4 << 20, 99], [123457, 3]]) {
      const s = samples(n, seed);
      expect(meanPowerWasm(s)).toBe(meanPower(s));
    }
  });
});
