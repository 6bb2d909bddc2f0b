/**
 * UDP send throughput on loopback: our send.UdpStream against spead2's
 * (Python spead2.send.asyncio.UdpStream, bench/spead2_send_bench.py), same
 * machine, same run, same sink, rate 0. Not a test.
 *
 *   bun bench/send_matrix.ts [--runs N] [--scale F] [--lib LABEL=PATH ...]
 *   deno run --allow-ffi --allow-env --allow-run --allow-read bench/send_matrix.ts [...]
 *
 * The sink is one UDP socket on 127.0.0.1 with the smallest receive buffer
 * that **nobody reads**: the kernel drops what does not fit, so the figures
 * are the sender's cost (syscalls, loopback delivery into the socket layer)
 * without a receiver competing for the 2 CPUs. Each case runs `--runs` times
 * (default 5), ours and spead2's alternately, each in a fresh process that
 * times its own send loop (process start excluded); the table quotes medians.
 * `--lib LABEL=PATH` (repeatable) runs our side with SPEAD_LIB_PATH=PATH, e.g.
 * `--lib ReleaseSafe=zig-out/lib/libspead.so --lib ReleaseFast=/tmp/spead-fast/lib/libspead.so`;
 * default: the build output, labelled as the default build (ReleaseSafe).
 *
 * Cases (payload = heap bytes; MB/s = 1e6 bytes/s of payload):
 * - 1 MiB heaps at 1472- and 8972-byte packets: tutorial 8's loop (two
 *   buffers, maxHeaps 2, a heap from ItemGroup.getHeap() per send, awaiting
 *   the slot's previous send) without the per-heap fill;
 * - 8 KiB heaps at 8972 and 1472: tutorial 11 (pre-built heaps, 2 batches of
 *   64, asyncSendHeaps(..., GroupMode.SERIAL); spead2 uses HeapReferenceList).
 *
 * Internal: `bench/send_matrix.ts --worker MODE PORT HEAPS HEAP_SIZE PACKET_SIZE` is our side of one run.
 */
import { spawn, spawnSync } from "node:child_process";
import process from "node:process";
import { send } from "../mod.ts";
import { timestampRefHeap, tutorialItemGroup } from "../examples/send_common.ts";

const root = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const isBun = "Bun" in globalThis;
const argv = process.argv.slice(2);

interface RunOut {
  seconds: number;
  bytes: number;
  heaps: number;
  packets?: number;
  gso_messages?: number;
  batches?: number;
  spead2?: string;
}

// ---------------------------------------------------------------- our worker

async function ourPipeline(tx: send.UdpStream, nHeaps: number, heapSize: number): Promise<number> {
  const ig = tutorialItemGroup(heapSize);
  const buffers = [new Int8Array(heapSize).fill(1), new Int8Array(heapSize).fill(1)];
  const futures: Promise<number>[] = [Promise.resolve(0), Promise.resolve(0)];
  const t0 = performance.now();
  for (let i = 0; i < nHeaps; i++) {
    const k = i % 2;
    await futures[k];
    ig.get("timestamp")!.value = i * heapSize;
    ig.get("adc_samples")!.value = buffers[k];
    futures[k] = tx.asyncSendHeap(ig.getHeap());
  }
  await Promise.all(futures);
  const seconds = (performance.now() - t0) / 1e3;
  await tx.asyncSendHeap(ig.getEnd());
  return seconds;
}

async function ourBatch(tx: send.UdpStream, nHeaps: number, heapSize: number, batchHeaps: number): Promise<number> {
  const ig = tutorialItemGroup(heapSize);
  const make = (adc: Int8Array, ts: DataView, first: boolean) => {
    const heaps: send.HeapReference[] = [];
    for (let j = 0; j < batchHeaps; j++) {
      ig.get("timestamp")!.value = 0;
      ig.get("adc_samples")!.value = adc.subarray(j * heapSize, (j + 1) * heapSize);
      const heap = timestampRefHeap(ig, new DataView(ts.buffer, 8 * j, 8), {
        descriptors: first && j === 0 ? "all" : "none",
      });
      heaps.push(new send.HeapReference(heap));
    }
    return heaps;
  };
  const slots = [0, 1].map(() => {
    const adc = new Int8Array(batchHeaps * heapSize).fill(1);
    const ts = new DataView(new ArrayBuffer(8 * batchHeaps));
    return { adc, ts, heaps: make(adc, ts, false), future: Promise.resolve(0) };
  });
  const first = make(slots[0].adc, slots[0].ts, true);
  const t0 = performance.now();
  for (let i = 0; i < nHeaps; i += batchHeaps) {
    const slot = slots[Math.floor(i / batchHeaps) % 2];
    const end = Math.min(i + batchHeaps, nHeaps);
    await slot.future;
    for (let j = 0; j < end - i; j++) slot.ts.setBigUint64(8 * j, BigInt((i + j) * heapSize));
    let heaps = i ? slot.heaps : first;
    if (end - i < batchHeaps) heaps = heaps.slice(0, end - i);
    slot.future = tx.asyncSendHeaps(heaps, send.GroupMode.SERIAL);
  }
  for (const slot of slots) await slot.future;
  const seconds = (performance.now() - t0) / 1e3;
  await tx.asyncSendHeap(ig.getEnd());
  return seconds;
}

async function worker(args: string[]): Promise<void> {
  const [mode, port, nHeaps, heapSize, packetSize] = [args[0], ...args.slice(1, 5).map(Number)];
  const batchHeaps = Math.max(1, Math.floor((512 * 1024) / heapSize));
  const config = new send.StreamConfig({
    rate: 0,
    maxHeaps: mode === "batch" ? 2 * batchHeaps : 2,
    maxPacketSize: packetSize,
  });
  using tx = new send.UdpStream([["127.0.0.1", port]], config, { disableGso: args[5] === "nogso" });
  const seconds = mode === "batch"
    ? await ourBatch(tx, nHeaps, heapSize, batchHeaps)
    : await ourPipeline(tx, nHeaps, heapSize);
  const st = tx.stats;
  const out: RunOut = {
    seconds,
    bytes: nHeaps * heapSize,
    heaps: nHeaps,
    // the end-of-stream heap is one extra single-packet message
    packets: st.packets - 1,
    gso_messages: st.gso_messages,
    batches: st.batches,
  };
  console.log(JSON.stringify(out));
}

// ------------------------------------------------------------ orchestrator

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function lastJson(stdout: string, what: string): RunOut {
  const line = stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as RunOut;
  } catch {
    throw new Error(`${what}: no result line in ${JSON.stringify(stdout.slice(-500))}`);
  }
}

function runChild(cmd: string, args: string[], env: Record<string, string | undefined>, what: string): RunOut {
  const r = spawnSync(cmd, args, { cwd: root, env, timeout: 60_000, maxBuffer: 1 << 20 });
  if (r.status !== 0) {
    throw new Error(`${what} exited ${r.status} ${r.signal ?? ""}: ${r.stderr?.toString().slice(-2000)}`);
  }
  return lastJson(r.stdout.toString(), what);
}

interface Case {
  name: string;
  mode: "pipeline" | "batch";
  heapSize: number;
  packetSize: number;
  heaps: number;
  /** Our side without UDP GSO (spead2's wheel sends without it here, see the notes). */
  noGso?: boolean;
}

async function orchestrate(): Promise<void> {
  let runs = 5;
  let scale = 1;
  const libs: Array<[string, string]> = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--runs") runs = Math.max(1, Math.min(15, Number(argv[++i]) | 0));
    else if (argv[i] === "--scale") scale = Math.max(0.01, Math.min(10, Number(argv[++i])));
    else if (argv[i] === "--lib") {
      const v = argv[++i] ?? "";
      const eq = v.indexOf("=");
      if (eq <= 0) throw new Error(`--lib wants LABEL=PATH, not ${v}`);
      const p = v.slice(eq + 1);
      libs.push([v.slice(0, eq), p.startsWith("/") ? p : `${root}/${p}`]);
    } else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (libs.length === 0) libs.push(["default build (ReleaseSafe)", process.env.SPEAD_LIB_PATH ?? `${root}/zig-out/lib/libspead.so`]);

  const python = `${root}/.venv/bin/python`;
  const pyScript = `${root}/bench/spead2_send_bench.py`;
  const self = `${root}/bench/send_matrix.ts`;
  const runtimeExe = isBun ? process.execPath : (globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath();
  const runtimeArgs = isBun ? [] : ["run", "--allow-ffi", "--allow-env"];
  const runtime = isBun
    ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
    : `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;

  // The sink: a socket nobody reads, alive for the whole bench.
  const sinkProc = spawn(python, [pyScript, "sink"], { stdio: ["pipe", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("sink did not start")), 10_000);
    let buf = "";
    sinkProc.stdout!.on("data", (d: Uint8Array) => {
      buf += new TextDecoder().decode(d);
      if (buf.includes("\n")) {
        clearTimeout(timer);
        resolve(Number(buf.trim()));
      }
    });
  });

  const cases: Case[] = [
    { name: "1 MiB heaps, pipelined (tut 8 loop)", mode: "pipeline", heapSize: 1 << 20, packetSize: 1472, heaps: 1000 },
    {
      name: "1 MiB heaps, pipelined, ours without GSO",
      mode: "pipeline",
      heapSize: 1 << 20,
      packetSize: 1472,
      heaps: 1000,
      noGso: true,
    },
    { name: "1 MiB heaps, pipelined (tut 8 loop)", mode: "pipeline", heapSize: 1 << 20, packetSize: 8972, heaps: 2000 },
    { name: "8 KiB heaps, batched (tut 11)", mode: "batch", heapSize: 8192, packetSize: 8972, heaps: 200_000 },
    { name: "8 KiB heaps, batched, ours without GSO", mode: "batch", heapSize: 8192, packetSize: 8972, heaps: 200_000, noGso: true },
    { name: "8 KiB heaps, batched (tut 11)", mode: "batch", heapSize: 8192, packetSize: 1472, heaps: 60_000 },
  ];

  const started = performance.now();
  let spead2Version = "?";
  const sections: string[] = [];
  try {
    for (const [label, libPath] of libs) {
      const env = { ...process.env, SPEAD_LIB_PATH: libPath };
      const rows: string[] = [];
      for (const c of cases) {
        const n = Math.max(1, Math.round(c.heaps * scale));
        const args = [c.mode, String(port), String(n), String(c.heapSize), String(c.packetSize)];
        const ours: RunOut[] = [];
        const theirs: RunOut[] = [];
        for (let r = 0; r < runs; r++) {
          const ourArgs = [...runtimeArgs, self, "--worker", ...args, c.noGso ? "nogso" : "gso"];
          ours.push(runChild(runtimeExe, ourArgs, env, `ours ${c.name}`));
          theirs.push(runChild(python, [pyScript, "run", ...args], process.env, `spead2 ${c.name}`));
        }
        spead2Version = theirs[0].spead2 ?? spead2Version;
        const mbs = (o: RunOut) => o.bytes / o.seconds / 1e6;
        const oursMbs = median(ours.map(mbs));
        const theirsMbs = median(theirs.map(mbs));
        // Same packetisation on both sides (byte-identical), so spead2's packet count is ours.
        const packets = ours[0].packets!;
        const oursPps = median(ours.map((o) => o.packets! / o.seconds));
        const theirsPps = median(theirs.map((o) => packets / o.seconds));
        const gso = median(ours.map((o) => o.gso_messages!));
        rows.push(
          `| ${c.name} | ${c.packetSize} | ${n} | ${oursMbs.toFixed(0)} | ${theirsMbs.toFixed(0)} | ` +
            `${(oursMbs / theirsMbs).toFixed(2)} | ${(oursPps / 1e3).toFixed(0)} k | ${(theirsPps / 1e3).toFixed(0)} k | ` +
            `${gso ? `${gso} (${(packets / gso).toFixed(1)} pkt/msg)` : "0"} | ` +
            `${ours.map((o) => mbs(o).toFixed(0)).join(", ")} / ${theirs.map((o) => mbs(o).toFixed(0)).join(", ")} |`,
        );
        console.error(`[${label}] ${c.name} @${c.packetSize}: ours ${oursMbs.toFixed(0)} MB/s, spead2 ${theirsMbs.toFixed(0)} MB/s`);
      }
      sections.push(
        [
          `### Our library: ${label} (\`${libPath.replace(root + "/", "")}\`)`,
          "",
          "| case | packet size | heaps/run | ours MB/s | spead2 MB/s | ours/spead2 | ours packets/s | spead2 packets/s | our gso_messages | runs MB/s (ours / spead2) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
          ...rows,
        ].join("\n"),
      );
    }
  } finally {
    sinkProc.stdin!.end();
    sinkProc.kill();
  }
  const total = (performance.now() - started) / 1e3;
  console.log(
    [
      "## UDP send throughput on loopback, ours vs spead2",
      "",
      `- Runtime: ${runtime}; spead2 ${spead2Version} (Python ${pythonVersion(python)}, asyncio UdpStream, 1 unpinned I/O thread); ` +
        `CPUs: ${navigator.hardwareConcurrency}; ${process.platform}/${process.arch}.`,
      "- Sink: one UDP socket on 127.0.0.1 with the minimum SO_RCVBUF that nobody reads (the kernel drops the overflow); " +
        "rate 0; both sides use SO_SNDBUF 512 KiB, SPEAD-64-40, items as in the tutorials (u40 timestamp immediate + int8 samples).",
      `- MB/s = payload (heap) bytes / send-loop time / 1e6; median of ${runs} runs, ours and spead2 alternating, each a fresh process. ` +
        "spead2's packets/s uses our packet count (identical packetisation). gso_messages: median per run, ours only " +
        "(spead2's Python API does not expose it).",
      "- spead2's UDP GSO: under strace, this spead2 wheel's sendmmsg calls carry no control messages (no UDP_SEGMENT), " +
        "i.e. it sends one datagram per message here; the \"ours without GSO\" rows (disableGso) compare like with like.",
      "- Neither side pins threads (spead2's tutorials pin the I/O thread to core 0 and the main thread to core 1; we have no affinity control).",
      `- Whole bench: ${total.toFixed(0)} s.`,
      "",
      ...sections.flatMap((s) => [s, ""]),
    ].join("\n"),
  );
}

function pythonVersion(python: string): string {
  const r = spawnSync(python, ["-c", "import sys; print(sys.version.split()[0])"]);
  return r.stdout?.toString().trim() || "?";
}

if (argv[0] === "--worker") await worker(argv.slice(1));
else await orchestrate();
