/**
 * Send benchmark (issue #3), one invocation: tutorial 8's sender — ours
 * (examples/tut_8_send_reuse_memory.ts) under Bun and under Deno, and spead2's
 * Python equivalent (bench/spead2_tut8_send.py) — on the same machine to the
 * same draining loopback sink, 5 runs each, medians, ratio ours / spead2.
 * Not a test. Run: `bun bench/send.ts` (it starts Deno and Python itself).
 */
import { spawn, spawnSync } from "node:child_process";

import { bunBin as bun, denoBin as deno, median, python, root, runSender } from "./common.ts";

const runs = Number(process.env.RUNS ?? 5);

const cases: Array<{ label: string; heapSize: number; packet: number; heaps: number }> = [
  { label: "1 MiB heaps, -p 9000", heapSize: 1 << 20, packet: 9000, heaps: 1000 },
  { label: "64 MiB heaps, -p 9000", heapSize: 64 << 20, packet: 9000, heaps: 20 },
  { label: "1 MiB heaps, -p 1472", heapSize: 1 << 20, packet: 1472, heaps: 500 },
];

async function startSink(): Promise<{ port: number; stop(): Promise<number> }> {
  const child = spawn(python, [`${root}/bench/udp_sink.py`], { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  const lines: string[] = [];
  let wake: () => void = () => {};
  child.stdout!.on("data", (d: Uint8Array) => {
    out += new TextDecoder().decode(d);
    const parts = out.split("\n");
    out = parts.pop()!;
    lines.push(...parts);
    wake();
  });
  const next = async () => {
    for (let i = 0; i < 600 && lines.length === 0; i++) await new Promise<void>((r) => (wake = r, setTimeout(r, 50)));
    return lines.shift() ?? "";
  };
  const port = Number(await next());
  return {
    port,
    async stop() {
      child.stdin!.end();
      return Number(await next());
    },
  };
}

const version = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).stdout.trim().split("\n")[0];
const spead2Version = spawnSync(python, ["-c", "import spead2; print(spead2.__version__)"], { encoding: "utf8" }).stdout
  .trim();
console.log("## Send: tutorial 8 sender, ours vs spead2 (bench/send.ts)\n");
console.log(
  `Bun ${version(bun, ["--version"])}, ${version(deno, ["--version"])}, spead2 ${spead2Version} (Python asyncio UdpStream), ` +
    `${navigator.hardwareConcurrency} CPUs, library ReleaseSafe (zig-out), rate 0, max_heaps 2, ` +
    `sink: one Python thread draining a 127.0.0.1 socket (8 MiB SO_RCVBUF). Median of ${runs} runs, senders interleaved.\n`,
);
const rows: string[] = [];
for (const c of cases) {
  const sink = await startSink();
  const args = ["-n", String(c.heaps), "-p", String(c.packet), "-H", String(c.heapSize), "127.0.0.1", String(sink.port)];
  const r = { bun: [] as number[], deno: [] as number[], spead2: [] as number[] };
  for (let i = 0; i < runs; i++) {
    r.bun.push(runSender(bun, [`${root}/examples/tut_8_send_reuse_memory.ts`, ...args]));
    r.deno.push(runSender(deno, ["run", "--allow-ffi", "--allow-env", `${root}/examples/tut_8_send_reuse_memory.ts`, ...args]));
    r.spead2.push(runSender(python, [`${root}/bench/spead2_tut8_send.py`, ...args]));
  }
  const drained = await sink.stop();
  const [b, d, s] = [median(r.bun), median(r.deno), median(r.spead2)];
  rows.push(
    `| ${c.label} (-n ${c.heaps}) | ${b.toFixed(0)} | ${d.toFixed(0)} | ${s.toFixed(0)} | ${(b / s).toFixed(2)} | ${(d / s).toFixed(2)} | ${drained} |`,
  );
  console.error(`${c.label}: bun ${r.bun.join(", ")} / deno ${r.deno.join(", ")} / spead2 ${r.spead2.join(", ")}`);
}
console.log("| case | ours, Bun MB/s | ours, Deno MB/s | spead2 MB/s | Bun / spead2 | Deno / spead2 | datagrams drained |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const row of rows) console.log(row);
