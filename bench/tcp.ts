/**
 * SPEAD over TCP on 127.0.0.1, whole processes: our tools against spead2's
 * C++ `spead2_send --tcp` / `spead2_recv --tcp`, runs alternated, medians.
 *
 * - receive: spead2_send (C++) sends to `spead-recv --tcp` (Bun, Deno) or to
 *   `spead2_recv --tcp`; the receiver's CPU seconds per GB of packets.
 * - send: `spead-send --tcp` (Bun, Deno) or `spead2_send --tcp` sends to
 *   spead2_recv (C++); the sender's CPU seconds per GB, and GB/s (the
 *   sender's own figure).
 *
 * CPU is wait4's (every thread, start-up included; bench/rusage.py), so the
 * transfer is made large enough to make start-up small. Not a test.
 *
 *   SPEAD2_BUILD=/path/to/spead2/build bun bench/tcp.ts [--mb 512] [--runs 3] [--packet 65536]
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { bunBin, cliArgs, denoRun, loadAverage, type Measured, median, root, runMeasured, sleep } from "./common.ts";

function option(name: string, fallback: number): number {
  const i = cliArgs.indexOf(name);
  return i >= 0 ? Number(cliArgs[i + 1]) : fallback;
}
const totalMB = option("--mb", 512);
const runs = option("--runs", 3);
const packet = option("--packet", 65536);
const heapSize = 1 << 20;
const heaps = Math.round((totalMB << 20) / heapSize);
const spead2Build = process.env.SPEAD2_BUILD ?? "";
const spead2Send = `${spead2Build}/src/spead2_send`;
const spead2Recv = `${spead2Build}/src/spead2_recv`;
if (spead2Build === "" || !existsSync(spead2Send) || !existsSync(spead2Recv)) {
  console.error("bench/tcp: SPEAD2_BUILD is unset or lacks src/spead2_send and src/spead2_recv: build spead2's " +
    "C++ tools as ../shared/peer/README.md describes (this bench compares against them)");
  process.exit(2);
}

/** A TCP port free now (bound to 0 and released). */
async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
  const address = server.address();
  await new Promise<void>((res) => server.close(() => res()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp; a probe connect would take the one accept). */
function listening(port: number): boolean {
  const text = spawnSync("cat", ["/proc/net/tcp"], { encoding: "utf8" }).stdout ?? "";
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  return text.split("\n").some((l) => {
    const f = l.trim().split(/\s+/);
    return f[1] === `0100007F:${hex}` && f[3] === "0A";
  });
}

type Who = "bun" | "deno" | "spead2";
const sides: Who[] = ["bun", "deno", "spead2"];

function recvCmd(w: Who, port: number): [string, string[]] {
  const args = ["--tcp", "--quiet", "--mem-pool", "--mem-upper", String(heapSize + 8192), "--packet", String(packet), `127.0.0.1:${port}`];
  if (w === "spead2") return [spead2Recv, args];
  if (w === "bun") return [bunBin, [`${root}/cli/recv.ts`, "--interval", "0", ...args]];
  return [denoRun[0], [...denoRun.slice(1), "--allow-write", `${root}/cli/recv.ts`, "--interval", "0", ...args]];
}

function sendCmd(w: Who, port: number): [string, string[]] {
  const args = ["--tcp", "--heaps", String(heaps), "--heap-size", String(heapSize), "--packet", String(packet), `127.0.0.1:${port}`];
  if (w === "spead2") return [spead2Send, args];
  if (w === "bun") return [bunBin, [`${root}/cli/send.ts`, "--interval", "0", ...args]];
  return [denoRun[0], [...denoRun.slice(1), "--allow-net", `${root}/cli/send.ts`, "--interval", "0", ...args]];
}

/** One transfer: returns both sides' measurements (throws if the receiver missed heaps). */
async function pair(rx: Who, tx: Who): Promise<{ rx: Measured; tx: Measured }> {
  const port = await freeTcpPort();
  const [re, ra] = recvCmd(rx, port);
  const r = runMeasured(re, ra, 300);
  for (let i = 0; i < 300 && !listening(port); i++) await sleep(20);
  if (!listening(port)) throw new Error(`${rx}: not listening on ${port}`);
  const [se, sa] = sendCmd(tx, port);
  const t = await runMeasured(se, sa, 300).done;
  const m = await r.done;
  const got = /Received (\d+) heaps/.exec(m.stdout);
  // spead2_recv counts the stop heap's stream end, ours the data heaps: at least `heaps`.
  if (t.rc !== 0 || m.rc !== 0 || !got || Number(got[1]) < heaps) {
    throw new Error(`${tx} -> ${rx}: rc ${t.rc}/${m.rc}, ${got ? got[1] : "no"} of ${heaps} heaps: ${t.stdout.slice(-200)} ${m.stdout.slice(-200)}`);
  }
  return { rx: m, tx: t };
}

const gb = (heaps * heapSize) / 1e9;
const recvCpu: Record<string, number[]> = {};
const sendCpu: Record<string, number[]> = {};
const sendRate: Record<string, number[]> = {};
for (let r = -1; r < runs; r++) { // run -1 warms the runtimes' caches
  for (let k = 0; k < sides.length; k++) {
    const w = sides[(k + Math.max(r, 0)) % sides.length];
    const a = await pair(w, "spead2");
    const b = await pair("spead2", w);
    if (r < 0) continue;
    (recvCpu[w] ??= []).push(a.rx.cpu / gb);
    (sendCpu[w] ??= []).push(b.tx.cpu / gb);
    const rate = /([\d.]+) Gb\/s/.exec(b.tx.stdout);
    (sendRate[w] ??= []).push(rate ? Number(rate[1]) / 8 : NaN);
  }
}
const f = (x: number) => x.toFixed(3);
const row = (name: string, m: Record<string, number[]>) =>
  `| ${name} | ${f(median(m.bun))} | ${f(median(m.deno))} | ${f(median(m.spead2))} | ${(median(m.bun) / median(m.spead2)).toFixed(2)}× / ${(median(m.deno) / median(m.spead2)).toFixed(2)}× |`;
console.log(`${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, load ${loadAverage()}, ${heaps} heaps of 1 MiB in ${packet}-byte packets over TCP on 127.0.0.1, medians of ${runs}`);
console.log("| TCP, whole processes (the other side is spead2's C++ tool) | Bun | Deno | spead2 C++ | ours ÷ spead2 (Bun / Deno) |");
console.log("|---|---:|---:|---:|---|");
console.log(row("receive (`spead-recv --tcp` vs `spead2_recv --tcp`), CPU s per GB", recvCpu));
console.log(row("send (`spead-send --tcp` vs `spead2_send --tcp`), CPU s per GB", sendCpu));
console.log(row("send, GB/s (sender's own figure)", sendRate));
