// The packaging test's app (tests/packaging/run.sh copies it into a temporary
// app outside the checkout): imports the installed package and sends 20 heaps
// over loopback to its own receiver, under Bun or Deno.
import { Flavour, ItemGroup, recv, send } from "spead";

const heaps = 20;
const rx = new recv.Stream(new recv.StreamConfig({ maxHeaps: 4 }), new recv.RingStreamConfig({ heaps: 64 }));
const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
const tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig({ rate: 100e6, maxHeaps: 4 }));
const ig = new send.ItemGroup(null, new Flavour(4, 64, 48, 0));
ig.addItem({ id: 0x1600, name: "timestamp", description: "heap index", shape: [], format: [["u", 40]] });
ig.addItem({ id: 0x3300, name: "samples", description: "ramp", shape: [4096], dtype: "i1" });
const samples = new Int8Array(4096);
for (let i = 0; i < heaps; i++) {
  ig.get("timestamp")!.value = i;
  samples.fill(i);
  ig.get("samples")!.value = samples;
  await tx.asyncSendHeap(ig.getHeap());
}
await tx.asyncSendHeap(ig.getEnd());
tx.close();

const items = new ItemGroup();
let got = 0;
let bad = 0;
for await (const heap of rx) {
  items.update(heap);
  const t = Number(items.get("timestamp")?.value);
  const s = items.get("samples")?.value as Int8Array | undefined;
  if (s && (s.length !== 4096 || s[0] !== t || s[4095] !== t)) bad++;
  if (s) got++;
  heap.release();
}
const runtime = "Bun" in globalThis ? "bun" : "deno";
console.log(`${runtime}: received ${got} of ${heaps} heaps, ${bad} bad`);
if (got !== heaps || bad !== 0) throw new Error("loopback send + receive failed");
