/**
 * Send benchmark (issue #10): spead2's tutorial senders, ours
 * (examples/tut_8_send_reuse_memory.ts, examples/tut_11_send_batch_heaps.ts)
 * under Bun and under Deno against spead2's C++ programs of the same name
 * (`$SPEAD2_BUILD/examples/tutorial/tut_8_send_reuse_memory`,
 * `tut_11_send_batch_heaps`), same machine, same run, same sink, same
 * arguments. Each program prints its own MB/s (payload bytes over its send
 * loop, process start excluded); bench/rusage.py adds its CPU time. Runs
 * alternate ours (Bun), ours (Deno), spead2; the table quotes medians and the
 * ratios ours / spead2.
 *
 * The sink is one UDP socket on 127.0.0.1 with the smallest receive buffer,
 * which nobody reads (bench/spead2_send_bench.py sink): the kernel drops the
 * overflow, so what is timed is the sender, not a receiver sharing the CPUs.
 *
 *   bun bench/send.ts [--runs N] [--only SUBSTRING] [--spead2-build DIR]
 *
 * spead2's C++ build is found through --spead2-build or $SPEAD2_BUILD; without
 * it only our columns are filled (the skip message says how to build it).
 * bench/vs-spead2.ts has the same senders among issue #10's other measures.
 * Not a test.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { bunBin, cliArgs, denoBin, loadAverage, median, python, root, runMeasured } from "./common.ts";

function option(name: string): string | undefined {
  const i = cliArgs.indexOf(name);
  return i >= 0 ? cliArgs[i + 1] : undefined;
}
const runs = Math.max(1, Math.min(15, Number(option("--runs") ?? 3) | 0));
const only = option("--only");
const spead2Build = option("--spead2-build") ?? process.env.SPEAD2_BUILD;

interface Case {
  label: string;
  program: "tut_8_send_reuse_memory" | "tut_11_send_batch_heaps";
  heapSize: number;
  packet: number;
  heaps: number;
}

const allCases: Case[] = [
  { label: "tut_8, 1 MiB heaps @ 9000", program: "tut_8_send_reuse_memory", heapSize: 1 << 20, packet: 9000, heaps: 2000 },
  { label: "tut_8, 64 MiB heaps @ 9000", program: "tut_8_send_reuse_memory", heapSize: 64 << 20, packet: 9000, heaps: 40 },
  { label: "tut_8, 1 MiB heaps @ 1472", program: "tut_8_send_reuse_memory", heapSize: 1 << 20, packet: 1472, heaps: 1000 },
  {
    label: "tut_11, 8 KiB heaps @ 9000, batched",
    program: "tut_11_send_batch_heaps",
    heapSize: 8192,
    packet: 9000,
    heaps: 524288,
  },
];
const cases = allCases.filter((c) => only === undefined || c.label.includes(only));

/**
 * One run: the program's MB/s, its CPU seconds (user + system, all threads)
 * per GB of payload, and those of its busiest thread (the I/O thread here).
 */
interface Run {
  mbs: number;
  cpuPerGB: number;
  busiestPerGB: number;
}

async function runSender(cmd: string, args: string[], payloadBytes: number): Promise<Run> {
  try {
    const r = await runMeasured(cmd, args, 120).done;
    const m = /([0-9.e+]+) MB\/s/.exec(r.stdout);
    if (r.rc !== 0 || !m) throw new Error(`exit ${r.rc}: ${r.stdout.slice(0, 200)}`);
    const gb = payloadBytes / 1e9;
    return { mbs: Number(m[1]), cpuPerGB: r.cpu / gb, busiestPerGB: r.busiestThreadCpu / gb };
  } catch (e) {
    console.error(`  ${cmd.split("/").pop()} ${args.join(" ")} failed: ${(e as Error).message}`);
    return { mbs: NaN, cpuPerGB: NaN, busiestPerGB: NaN };
  }
}

/** The never-read sink socket; resolves to its port and a stop function. */
async function startSink(): Promise<{ port: number; stop(): void }> {
  const child = spawn(python, [`${root}/bench/spead2_send_bench.py`, "sink"], { stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sink did not start")), 10_000);
    let buf = "";
    child.stdout!.on("data", (d: Uint8Array) => {
      buf += new TextDecoder().decode(d);
      if (buf.includes("\n")) {
        clearTimeout(timer);
        resolve(Number(buf.trim()));
      }
    });
  });
  return {
    port,
    stop() {
      child.stdin!.end();
      child.kill();
    },
  };
}

const cpp = (program: string) => (spead2Build ? `${spead2Build}/examples/tutorial/${program}` : "");
const haveCpp = cases.every((c) => existsSync(cpp(c.program)));
if (!haveCpp) {
  console.error(
    spead2Build
      ? `spead2's C++ tutorial programs are not in ${spead2Build}/examples/tutorial: the spead2 column is skipped.`
      : "SPEAD2_BUILD is not set (nor --spead2-build): the spead2 column is skipped.",
  );
  console.error(
    "Build spead2's C++ programs from https://github.com/ska-sa/spead2 in release mode with its " +
      "tools and examples (meson setup build -Dbuildtype=release -Dtools=enabled; " +
      "ninja -C build), then run with SPEAD2_BUILD=<build dir>.",
  );
}

const version = (cmd: string, args: string[]) =>
  spawnSync(cmd, args, { encoding: "utf8" }).stdout?.trim().split("\n")[0] ?? "?";
const cppVersion = haveCpp
  ? (spawnSync("cat", [`${spead2Build}/meson-info/intro-projectinfo.json`], { encoding: "utf8" }).stdout ?? "")
    .match(/"version": "([^"]+)"/)?.[1] ?? "?"
  : "absent";
const sink = await startSink();
const rows: string[] = [];
const fmt = (x: number, digits = 0) => (Number.isNaN(x) ? "–" : x.toFixed(digits));
const ratio = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? "–" : (a / b).toFixed(2));
const started = performance.now();
try {
  for (const c of cases) {
    const script = `${root}/examples/${c.program}.ts`;
    const args = ["-n", String(c.heaps), "-p", String(c.packet), "-H", String(c.heapSize), "127.0.0.1", String(sink.port)];
    const payload = c.heaps * c.heapSize;
    const r = { bun: [] as Run[], deno: [] as Run[], cpp: [] as Run[] };
    for (let i = 0; i < runs; i++) {
      r.bun.push(await runSender(bunBin, [script, ...args], payload));
      r.deno.push(await runSender(denoBin, ["run", "--allow-ffi", "--allow-env", script, ...args], payload));
      if (haveCpp) r.cpp.push(await runSender(cpp(c.program), args, payload));
    }
    const mbs = (xs: Run[]) => median(xs.map((x) => x.mbs));
    const cpu = (xs: Run[]) => median(xs.map((x) => x.cpuPerGB));
    const busiest = (xs: Run[]) => median(xs.map((x) => x.busiestPerGB));
    const [b, d, s] = [mbs(r.bun), mbs(r.deno), mbs(r.cpp)];
    const list = (xs: Run[]) => xs.map((x) => fmt(x.mbs)).join(", ") || "–";
    rows.push(
      `| ${c.label} (-n ${c.heaps}) | ${fmt(b)} | ${fmt(d)} | ${fmt(s)} | **${ratio(b, s)}** | **${ratio(d, s)}** | ` +
        `${fmt(cpu(r.bun), 2)} / ${fmt(cpu(r.deno), 2)} / ${fmt(cpu(r.cpp), 2)} | ` +
        `${fmt(busiest(r.bun), 2)} / ${fmt(busiest(r.deno), 2)} / ${fmt(busiest(r.cpp), 2)} | ` +
        `${list(r.bun)} / ${list(r.deno)} / ${list(r.cpp)} |`,
    );
    console.error(`${c.label}: bun ${list(r.bun)} / deno ${list(r.deno)} / spead2 ${list(r.cpp)}`);
  }
} finally {
  sink.stop();
}
console.log("## Send: spead2's tutorial senders, ours vs spead2's C++ programs (bench/send.ts)\n");
console.log(
  `Bun ${version(bunBin, ["--version"])}, ${version(denoBin, ["--version"])}, spead2 ${cppVersion} C++ (release build), ` +
    `${navigator.hardwareConcurrency} CPUs (load average at the end: ${loadAverage()}), library ReleaseSafe (zig-out). ` +
    "rate 0; sink: one never-read 127.0.0.1 socket (minimum SO_RCVBUF, the kernel drops the overflow). " +
    "MB/s = payload bytes / send loop / 1e6, as each program prints it; CPU = user + system seconds of the whole " +
    "process per GB of payload; busiest thread = the same for its busiest thread (the I/O thread in every row), " +
    "which bounds the rate on an otherwise idle machine and moves less with load than MB/s does. " +
    `spead2's tutorials pin their I/O thread to CPU 0 and main thread to CPU 1; ours do not pin. Median of ${runs} runs, Bun, Deno and spead2 alternating, each a fresh process; ` +
    `${((performance.now() - started) / 1e3).toFixed(0)} s in all.\n`,
);
console.log(
  "| case | ours, Bun MB/s | ours, Deno MB/s | spead2 C++ MB/s | Bun / spead2 | Deno / spead2 | CPU s/GB (Bun / Deno / spead2) | busiest thread s/GB (Bun / Deno / spead2) | runs MB/s (Bun / Deno / spead2) |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---|");
for (const row of rows) console.log(row);
