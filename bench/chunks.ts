/**
 * Issue #11's benchmark: tutorial 11 -> tutorial 12 (chunk streams), 8 KiB
 * heaps at -p 9000, ours (examples/tut_12_recv_chunks.ts under Bun and Deno)
 * against spead2's C++ tut_12_recv_chunks, in one invocation, runs alternated
 * (the order rotates each run), medians. Not a test.
 *
 *   bun bench/chunks.ts [--spead2-build DIR] [--heaps N] [--paced-heaps N] [--rate B/s] [--runs R] [--quick]
 *
 * Two measures, each with the same sender for every receiver:
 *   full rate  spead2's C++ tut_11_send_batch_heaps (rate 0), --heaps heaps
 *              (default 524288 = 4 GiB): complete heaps received ("Received N
 *              heaps") and receiver CPU seconds per GB received
 *   paced      bench/chunk_paced_send.ts at --rate (default 100e6 B/s; spead2's
 *              tut_11 has no rate option), --paced-heaps heaps (default 65536)
 * Receiver CPU is user + system of the whole process from bench/rusage.py
 * (start-up included, for both sides). spead2's C++ programs come from
 * --spead2-build or $SPEAD2_BUILD (a meson build of spead2 with examples);
 * without them the spead2 column is skipped and the table says how to build it.
 */
import { existsSync } from "node:fs";
import { bunBin, cliArgs, denoRun, freeUdpPort, loadAverage, median, pairTrial, root, runtimeName } from "./common.ts";

const arg = (name: string): string | undefined => {
  const i = cliArgs.indexOf(name);
  return i >= 0 ? cliArgs[i + 1] : undefined;
};
const quick = cliArgs.includes("--quick");
const heapSize = 8192;
const heaps = Number(arg("--heaps") ?? (quick ? 65536 : 524288));
const pacedHeaps = Number(arg("--paced-heaps") ?? (quick ? 16384 : 65536));
const rate = Number(arg("--rate") ?? 100e6);
const runs = Number(arg("--runs") ?? (quick ? 1 : 3));
const build = arg("--spead2-build") ?? (typeof process !== "undefined" ? process.env.SPEAD2_BUILD : undefined);
const tut = (name: string) => `${build}/examples/tutorial/${name}`;
const haveSpead2 = build !== undefined && existsSync(tut("tut_12_recv_chunks")) && existsSync(tut("tut_11_send_batch_heaps"));

type Who = "bun" | "deno" | "spead2";
const whos: Who[] = haveSpead2 ? ["bun", "deno", "spead2"] : ["bun", "deno"];
const ex = `${root}/examples/tut_12_recv_chunks.ts`;

function receiver(w: Who, port: number): string[] {
  const a = ["-H", String(heapSize)];
  if (w === "spead2") return [tut("tut_12_recv_chunks"), ...a, String(port)];
  const cmd = w === "bun" ? [bunBin, ex] : [...denoRun, ex];
  return [...cmd, ...a, "--bind", "127.0.0.1", String(port)];
}

function sender(paced: boolean, port: number): string[] {
  if (paced) {
    return [bunBin, `${root}/bench/chunk_paced_send.ts`, "-n", String(pacedHeaps), "-H", String(heapSize), "-p", "9000", "--rate", String(rate), "127.0.0.1", String(port)];
  }
  // Without spead2's build, our own tut_11 is the full-rate sender.
  const args = ["-n", String(heaps), "-p", "9000", "-H", String(heapSize), "127.0.0.1", String(port)];
  return haveSpead2 ? [tut("tut_11_send_batch_heaps"), ...args] : [bunBin, `${root}/examples/tut_11_send_batch_heaps.ts`, ...args];
}

interface Sample {
  heaps: number;
  cpuPerGB: number;
}

async function measure(paced: boolean): Promise<Record<Who, Sample[]>> {
  const out = { bun: [], deno: [], spead2: [] } as Record<Who, Sample[]>;
  for (let r = 0; r < runs; r++) {
    const order = whos.map((_, i) => whos[(i + r) % whos.length]);
    for (const w of order) {
      const port = freeUdpPort();
      const t = await pairTrial(receiver(w, port), sender(paced, port), port, 3000);
      const gb = (t.heaps * heapSize) / 1e9;
      out[w].push({ heaps: t.heaps, cpuPerGB: t.rx.cpu / gb });
      console.error(`  ${paced ? "paced" : "full"} run ${r + 1} ${w}: ${t.heaps} heaps, ${t.rx.cpu.toFixed(2)} s CPU, sender ${t.sendStdout.trim()}`);
    }
  }
  return out;
}

const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "–");
const rows: string[] = [];
const load0 = loadAverage();
for (const paced of [false, true]) {
  const n = paced ? pacedHeaps : heaps;
  const what = paced ? `paced ${rate / 1e6} MB/s, ${n} heaps` : `full rate, ${n} heaps`;
  const s = await measure(paced);
  const med = (w: Who, k: keyof Sample) => median(s[w].map((x) => x[k]));
  const ratio = (a: number, b: number) => (haveSpead2 ? `${fmt(a / b)}×` : "–");
  const h = { bun: med("bun", "heaps"), deno: med("deno", "heaps"), spead2: haveSpead2 ? med("spead2", "heaps") : NaN };
  const c = { bun: med("bun", "cpuPerGB"), deno: med("deno", "cpuPerGB"), spead2: haveSpead2 ? med("spead2", "cpuPerGB") : NaN };
  const all = (w: Who) => s[w].map((x) => x.heaps).join(", ");
  rows.push(`| complete heaps, ${what} | ${fmt(h.bun, 0)} | ${fmt(h.deno, 0)} | ${fmt(h.spead2, 0)} | ${ratio(h.bun, h.spead2)} / ${ratio(h.deno, h.spead2)} | ≥ 1.0× |`);
  rows.push(`| receiver CPU s/GB, ${what} | ${fmt(c.bun)} | ${fmt(c.deno)} | ${fmt(c.spead2)} | ${ratio(c.bun, c.spead2)} / ${ratio(c.deno, c.spead2)} | ≤ 1.0× |`);
  console.error(`  ${what}: bun [${all("bun")}] deno [${all("deno")}]${haveSpead2 ? ` spead2 [${all("spead2")}]` : ""}`);
}

console.log(`tut_11 -> tut_12, ${heapSize / 1024} KiB heaps, -p 9000, 127.0.0.1; medians of ${runs} alternated run(s); ${runtimeName} driver; load average ${load0} -> ${loadAverage()}`);
console.log("");
console.log("| measure | ours (Bun) | ours (Deno) | spead2 C++ | ratio Bun / Deno | target |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
if (!haveSpead2) {
  console.log("");
  console.log("spead2 column skipped: build spead2 with its examples, which meson builds by default (meson setup build -Dbuildtype=release; ninja -C build) and pass --spead2-build DIR or set SPEAD2_BUILD.");
}
