/**
 * Cost of the send memory rule (README "Send buffers"): the JS-thread time of
 * one submit's item table for a heap of one item, from a JS typed array
 * (copied into native staging memory) and from `send.allocateBuffer` memory
 * (sent in place). Not a test. Run: `bun bench/send_copy.ts`, or
 * `deno run --allow-ffi --allow-env bench/send_copy.ts`.
 */
import { buildItemTable, unpinItemTable } from "../src/send/item_table.ts";
import { Flavour, send } from "../mod.ts";

const runtime = "Bun" in globalThis ? "Bun" : "Deno";
console.log(`| ${runtime}: heap of one item | µs per submit | GB/s |`);
console.log("|---|---:|---:|");
for (const size of [1 << 20, 64 << 20]) {
  for (const kind of ["JS Uint8Array (copied)", "allocateBuffer (in place)"]) {
    const bytes = kind.startsWith("JS") ? new Uint8Array(size) : send.allocateBuffer(size).bytes;
    const heap = new send.Heap(new Flavour(4, 64, 48, 0));
    heap.addRaw(0x1000, bytes);
    const reps = size > (8 << 20) ? 20 : 400; // bounded
    for (let i = 0; i < 3; i++) unpinItemTable(buildItemTable(heap));
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) unpinItemTable(buildItemTable(heap));
    const us = ((performance.now() - t0) / reps) * 1000;
    console.log(`| ${size >> 20} MiB, ${kind} | ${us.toFixed(1)} | ${(size / us / 1e3).toFixed(2)} |`);
  }
}
