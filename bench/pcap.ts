/**
 * Replaying a pcap capture: `spead-recv --quiet --mem-pool capture.pcap` (our
 * tool over `recv.Stream.addUdpPcapFileReader`, under Bun and Deno) against
 * spead2's C++ `spead2_recv --quiet --mem-pool capture.pcap` (its
 * udp_pcap_file_reader over libpcap), whole processes, the same capture, runs
 * alternated, medians. Prints GB/s of capture file and CPU seconds per GB
 * (wait4: every thread, start-up included, so the capture is large enough to
 * make start-up small). Not a test.
 *
 *   SPEAD2_BUILD=/path/to/spead2/build bun bench/pcap.ts [--mb 1024] [--runs 3]
 *
 * The capture holds heaps of one 1 MiB item in 9000-byte packets and of one
 * 64 KiB item in 1472-byte packets, each packet an Ethernet/IPv4/UDP frame,
 * written to a temporary directory (in the page cache for every run after
 * the first, which warms it).
 */
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { Flavour, send } from "../mod.ts";
import { bunBin, cliArgs, denoRun, loadAverage, median, root, runMeasured } from "./common.ts";

function option(name: string, fallback: number): number {
  const i = cliArgs.indexOf(name);
  return i >= 0 ? Number(cliArgs[i + 1]) : fallback;
}
const totalMB = option("--mb", 1024);
const runs = option("--runs", 3);
const spead2Build = process.env.SPEAD2_BUILD ?? "";
const spead2Recv = `${spead2Build}/src/spead2_recv`;
const haveSpead2 = spead2Build !== "" && existsSync(spead2Recv);
if (!haveSpead2) {
  console.error("bench/pcap: SPEAD2_BUILD is unset or has no src/spead2_recv: the spead2 column is skipped " +
    "(build spead2's C++ tools with pcap enabled as ../shared/peer/README.md describes)");
}

/** Writes a capture of `heaps` heaps of `size` bytes in `packet`-byte packets; returns its length. */
function writeCapture(path: string, heaps: number, size: number, packet: number): number {
  const parts: Uint8Array[] = [];
  const global = new Uint8Array(24);
  const g = new DataView(global.buffer);
  g.setUint32(0, 0xa1b2c3d4, true);
  g.setUint16(4, 2, true);
  g.setUint16(6, 4, true);
  g.setUint32(16, 262144, true);
  g.setUint32(20, 1, true); // Ethernet
  parts.push(global);
  const flavour = new Flavour();
  const data = new Uint8Array(size).map((_, i) => i * 7);
  const frameOf = (p: Uint8Array): Uint8Array => {
    const f = new Uint8Array(16 + 14 + 20 + 8 + p.length);
    const v = new DataView(f.buffer);
    const n = f.length - 16;
    v.setUint32(8, n, true);
    v.setUint32(12, n, true);
    v.setUint16(16 + 12, 0x0800);
    f[30] = 0x45;
    v.setUint16(32, 20 + 8 + p.length);
    v.setUint16(36, 0x4000);
    f[38] = 64;
    f[39] = 17;
    f.set([127, 0, 0, 1, 127, 0, 0, 1], 42);
    v.setUint16(50, 40000);
    v.setUint16(52, 7148);
    v.setUint16(54, 8 + p.length);
    f.set(p, 58);
    return f;
  };
  for (let i = 0; i <= heaps; i++) {
    const h = new send.Heap(flavour);
    if (i < heaps) h.addRaw(0x1234, data);
    else h.addEnd();
    for (const p of new send.PacketGenerator(h, i + 1, packet)) parts.push(frameOf(p));
  }
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  writeFileSync(path, out);
  return len;
}

type Who = "bun" | "deno" | "spead2";
const sides: Who[] = haveSpead2 ? ["bun", "deno", "spead2"] : ["bun", "deno"];
const dir = mkdtempSync(`${tmpdir()}/spead-pcap-bench-`);
const cases = [
  { name: "1 MiB @ 9000", size: 1 << 20, packet: 9000 },
  { name: "64 KiB @ 1472", size: 64 << 10, packet: 1472 },
];
const lines: string[] = [];
try {
  for (const c of cases) {
    const path = `${dir}/capture.pcap`;
    const heaps = Math.round((totalMB << 20) / c.size);
    writeCapture(path, heaps, c.size, c.packet);
    const bytes = statSync(path).size;
    const memArgs = ["--quiet", "--mem-pool", "--mem-upper", String(c.size + 8192), path];
    const cmd = (w: Who): [string, string[]] =>
      w === "spead2"
        ? [spead2Recv, memArgs]
        : w === "bun"
        ? [bunBin, [`${root}/cli/recv.ts`, "--interval", "0", ...memArgs]]
        : [denoRun[0], [...denoRun.slice(1), "--allow-write", `${root}/cli/recv.ts`, "--interval", "0", ...memArgs]];
    const rate: Record<string, number[]> = {};
    const cpu: Record<string, number[]> = {};
    for (let r = -1; r < runs; r++) { // run -1 warms the page cache and the runtimes' caches
      for (let k = 0; k < sides.length; k++) {
        const w = sides[(k + Math.max(r, 0)) % sides.length];
        const [exe, args] = cmd(w);
        const t0 = performance.now();
        const m = await runMeasured(exe, args, 600).done;
        const s = (performance.now() - t0) / 1e3;
        const got = /Received (\d+) heaps/.exec(m.stdout);
        if (m.rc !== 0 || !got || Number(got[1]) !== heaps) {
          throw new Error(`${w}: rc ${m.rc}, ${got ? got[1] : "no"} of ${heaps} heaps: ${m.stdout.slice(-300)}`);
        }
        if (r < 0) continue;
        (rate[w] ??= []).push(bytes / 1e9 / s);
        (cpu[w] ??= []).push(m.cpu / (bytes / 1e9));
      }
    }
    const f = (x: number) => x.toFixed(3);
    const ratio = (w: Who, m: Record<string, number[]>, inv: boolean) =>
      haveSpead2 ? `${(inv ? median(m.spead2) / median(m[w]) : median(m[w]) / median(m.spead2)).toFixed(2)}×` : "–";
    lines.push(
      `| ${c.name}, ${heaps} heaps, GB/s of capture | ${f(median(rate.bun))} | ${f(median(rate.deno))} | ${haveSpead2 ? f(median(rate.spead2)) : "–"} | ${ratio("bun", rate, false)} / ${ratio("deno", rate, false)} |`,
      `| ${c.name}, CPU s per GB (all threads) | ${f(median(cpu.bun))} | ${f(median(cpu.deno))} | ${haveSpead2 ? f(median(cpu.spead2)) : "–"} | ${ratio("bun", cpu, false)} / ${ratio("deno", cpu, false)} |`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, load ${loadAverage()}, ${totalMB} MiB captures, medians of ${runs}`);
console.log("| replay of a pcap capture (spead-recv vs spead2_recv, --quiet --mem-pool) | Bun | Deno | spead2 C++ | ours ÷ spead2 (Bun / Deno) |");
console.log("|---|---:|---:|---:|---|");
for (const l of lines) console.log(l);
