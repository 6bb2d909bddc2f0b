// Smoke test of the esbuild bundle in dist/ (scripts/build.sh --bundle), run by scripts/test.sh under Bun and Deno.
const m = await import("../../dist/mod.js");
const s = new m.send.BytesStream();
const h = new m.send.Heap();
h.addEnd();
s.sendHeap(h);
const r = new m.recv.Stream(new m.recv.StreamConfig({ stopOnStopItem: false }));
r.addBufferReader(s.getValue());
for (const heap of r) { console.log("bundle ok: heap", heap.cnt, "end", heap.isEndOfStream()); heap.release(); }
