/**
 * Issue #10's benchmark: ours (under Bun and under Deno) against spead2's C++
 * programs built from source, every measure in one invocation, runs
 * alternated (Bun, Deno, spead2, rotating the order each run), medians.
 * Prints one Markdown table (ours, spead2, ratios, target) and writes the same
 * figures as an SVG bar chart. Not a test.
 *
 *   bun bench/vs-spead2.ts [options]
 *   deno run --allow-all bench/vs-spead2.ts [options]
 *
 * Options:
 *   --spead2-build DIR  spead2's meson build directory (default: $SPEAD2_BUILD);
 *                       without it the spead2 column is skipped (see
 *                       `needSpead2` below for how to build it)
 *   --only a,b,...      measures to run: cpu, unlimited, lossless, mem, pair, send, faults (default all)
 *   --quick             fewer heaps and runs (a smoke run, about 2 minutes)
 *   --runs N            runs per figure (default 3, quick 1)
 *   --svg PATH          where the chart goes (default bench/vs-spead2.svg)
 *   --no-deno / --no-bun  leave one of our runtimes out
 *   --fifo              run the send measure's senders (ours and spead2's) under
 *                       SCHED_FIFO priority 10 (`chrt -f 10`), so that other load on
 *                       the machine cannot displace either side's threads: spead2's
 *                       tutorials pin theirs to CPUs 0 and 1 and lose to any busy
 *                       core, ours do not pin (needs root or CAP_SYS_NICE)
 *   --replot FIGURES.json [OUT.svg]  redraw the chart from the figures a run wrote beside it
 *
 * Measures (spead2 side in brackets; ours always uses the same sender):
 *   cpu        receiver CPU seconds per GB received, paced by spead2_send --rate
 *              (spead2_recv --quiet --mem-pool; ours: bench/recv.ts --child, a
 *              pooled recv.Stream drained with `for await`, CPU counted in-process
 *              from listen to the end heap; spead2_recv's from wait4, start-up included)
 *   unlimited  complete heaps received when spead2_send runs at rate 0
 *   lossless   highest sender rate (Gb/s, spead2 counts packet bytes) at which
 *              every heap of every pass arrives, bisected to 5 %
 *   mem        in-memory decode, GB/s of packet bytes (spead2_bench mem: a callback
 *              stream over 1 GiB of packets, pooled, each heap freed in its callback;
 *              ours: `--child-mem` below, the same heaps from a BytesStream, copied
 *              once into a send.NativeBuffer, read in place by addBufferReader into
 *              a pooled stream with a ring of ~4 MiB of heaps, popped with
 *              `batches()` and released); a second row decodes the same packets
 *              from a file through addFileReader (mapped, in the page cache), and a
 *              third gives the CPU seconds per GB of both sides (ours: every thread
 *              over the timed passes; spead2_bench: the whole process, wait4), which
 *              a shared machine disturbs far less than GB/s; a fourth compares both
 *              with non-temporal copies (ours: StreamConfig memcpy MEMCPY_NONTEMPORAL
 *              and a ring of ~16 MiB of heaps; spead2_bench --memcpy-nt)
 *   pair       tutorial 8 -> tutorial 9 at full rate, complete heaps received,
 *              summed over the runs (examples/tut_8 + tut_9 vs spead2's C++ tutorials)
 *   send       tutorial 8 and tutorial 11 senders alone into a bound socket
 *              nobody reads, MB/s of payload (ours vs the C++ tutorials)
 *   faults     minor page faults per heap once warm, whole receiver process,
 *              pooled (ours: counted in the child after the warm-up heaps;
 *              spead2_recv: the difference of two runs of different lengths)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  bunBin,
  cliArgs,
  denoRun,
  freeUdpPort,
  LineProc,
  loadAverage,
  median,
  pairTrial,
  python,
  root,
  runMeasured,
  runSender,
  runtimeName,
  waitUdpBound,
} from "./common.ts";

const MiB = 1 << 20;
const KiB = 1024;

// ------------------------------------------------------------------------------------------------
// Child: our in-memory decode, one runtime, one case. Prints one JSON line.

async function childMem(heapSize: number, packetSize: number, totalMB: number, passes: number, via: string, memcpy: string): Promise<void> {
  const { Flavour, MEMCPY_NONTEMPORAL, MEMCPY_STD, MemoryPool, recv, send } = await import("../mod.ts");
  const config = new send.StreamConfig({ maxPacketSize: packetSize });
  const tx = new send.BytesStream(config);
  const data = new Uint8Array(heapSize);
  const nHeaps = Math.max(2, Math.round((totalMB * MiB) / heapSize));
  const flavour = new Flavour();
  for (let i = 0; i < nHeaps; i++) {
    const h = new send.Heap(flavour);
    if (i < nHeaps - 1) h.addRaw(0x1234, data);
    else h.addEnd();
    tx.sendHeap(h);
  }
  // The packets go into native memory once (as spead2_bench builds its buffer once):
  // a NativeBuffer view is read in place by addBufferReader. With `via` "file" they
  // go into a file instead (in the page cache after the warm-up pass), read by
  // addFileReader, which maps it.
  const encoded = tx.getValue();
  const nb = send.allocateBuffer(encoded.byteLength);
  nb.bytes.set(encoded);
  const bytes = nb.bytes;
  const dir = via === "file" ? mkdtempSync(`${tmpdir()}/spead-mem-bench-`) : "";
  const file = `${dir}/packets.spead`;
  if (via === "file") writeFileSync(file, encoded);
  // A ring of about 4 MiB of heaps (8 to 64): the reader announces heaps when three
  // quarters of the ring are waiting, so JS has a quarter ring's decode time to wake
  // up before the reader blocks on a full ring. The pool holds the ring, a batch JS
  // holds and the heaps being assembled. With `memcpy` "nt" the stream copies with
  // non-temporal stores (MEMCPY_NONTEMPORAL, as spead2_bench --memcpy-nt) and the
  // ring holds about 16 MiB of heaps (16 to 256), a choice a user of that option
  // would make too: streaming stores cost the same however many buffers rotate, so
  // a longer ring only spares the reader waits on a late JS wake-up, while with
  // memcpy every buffer more in rotation is a colder destination (README.md, the
  // in-memory decode target).
  const nt = memcpy === "nt";
  const ringBytes = (nt ? 16 : 4) * MiB;
  const ring = Math.min(nt ? 256 : 64, Math.max(nt ? 16 : 8, Math.floor(ringBytes / heapSize)));
  const times: number[] = [];
  let heaps = 0;
  let cpu = 0;
  for (let p = 0; p < passes + 1; p++) {
    const pool = new MemoryPool(0, heapSize + 8192, 2 * ring + 8, 2 * ring + 8);
    const rx = new recv.Stream(
      new recv.StreamConfig({ maxHeaps: 4, memoryAllocator: pool, memcpy: nt ? MEMCPY_NONTEMPORAL : MEMCPY_STD }),
      new recv.RingStreamConfig({ heaps: ring }),
    );
    const c0 = process.cpuUsage(); // every thread: reader, JS, JIT, GC
    const t0 = performance.now();
    if (via === "file") rx.addFileReader(file);
    else rx.addBufferReader(bytes);
    let got = 0;
    for await (const hs of rx.batches()) {
      got += hs.length;
      for (const h of hs) h.release();
    }
    const t = (performance.now() - t0) / 1e3;
    const c = process.cpuUsage(c0);
    rx.close();
    pool.close();
    if (p > 0) { // pass 0 warms up
      times.push(t);
      heaps += got;
      cpu += (c.user + c.system) / 1e6;
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  const total = times.reduce((a, b) => a + b, 0);
  const gb = (bytes.byteLength * passes) / 1e9;
  console.log(JSON.stringify({ gbs: gb / total, cpuPerGB: cpu / gb, heaps, expected: (nHeaps - 1) * passes }));
}

// ------------------------------------------------------------------------------------------------
// Driver.

interface Opts {
  spead2: string | null;
  only: Set<string>;
  quick: boolean;
  runs: number;
  svg: string;
  bun: boolean;
  deno: boolean;
  fifo: boolean;
}

const ALL = ["cpu", "unlimited", "lossless", "mem", "pair", "send", "faults"];

function parseOpts(args: string[]): Opts {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  const o: Opts = {
    spead2: env.SPEAD2_BUILD ?? null,
    only: new Set(ALL),
    quick: false,
    runs: 0,
    svg: `${root}/bench/vs-spead2.svg`,
    bun: true,
    deno: true,
    fifo: false,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--spead2-build") o.spead2 = args[++i];
    else if (a === "--only") {
      o.only = new Set(args[++i].split(","));
      for (const k of o.only) if (!ALL.includes(k)) throw new Error(`--only: unknown measure ${k} (${ALL.join(", ")})`);
    } else if (a === "--quick") o.quick = true;
    else if (a === "--runs") o.runs = Math.max(1, Math.min(15, Number(args[++i]) | 0));
    else if (a === "--svg") o.svg = args[++i];
    else if (a === "--no-bun") o.bun = false;
    else if (a === "--no-deno") o.deno = false;
    else if (a === "--fifo") o.fifo = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!o.runs) o.runs = o.quick ? 1 : 3;
  return o;
}

type Who = "bun" | "deno" | "spead2";
const LABEL: Record<Who, string> = { bun: "ours, Bun", deno: "ours, Deno", spead2: "spead2 C++" };

/** One row of the table: a figure per side, how to compare, what to reach. */
interface Row {
  measure: string;
  unit: string;
  /** "higher" or "lower" is better. */
  better: "higher" | "lower";
  values: Partial<Record<Who, number>>;
  /** Per-run figures, for the detail table. */
  samples: Partial<Record<Who, number[]>>;
  /** Target: ratio ours / spead2 (>= for higher, <= for lower), or an absolute value. */
  target: { ratio?: number; absolute?: number; text: string };
  note?: string;
}

async function driver(): Promise<void> {
  const o = parseOpts(cliArgs);
  const t0 = performance.now();
  const bin = (rel: string) => (o.spead2 ? `${o.spead2}/${rel}` : "");
  const haveSpead2 = o.spead2 !== null && existsSync(bin("src/spead2_recv")) && existsSync(bin("src/spead2_send"));
  if (!haveSpead2) {
    console.error(
      `bench/vs-spead2: spead2's C++ build not found (${o.spead2 ?? "set SPEAD2_BUILD or --spead2-build"}); ` +
        "the spead2 column is skipped, and so are the measures that need its sender (cpu, unlimited, lossless, faults). " +
        "Build it: fetch the ska-sa/spead2 sources, then `bash build-spead2.sh DIR` from the project notes' peer/ folder " +
        "(meson release build, 2-4 minutes on 2 cores), and pass --spead2-build $SPEAD2_BUILD.",
    );
  }
  const ours: Who[] = [...(o.bun ? ["bun" as const] : []), ...(o.deno ? ["deno" as const] : [])];
  const sides: Who[] = [...ours, ...(haveSpead2 ? ["spead2" as const] : [])];
  /** Sides in a rotating order, so no side always runs first. */
  const rotation = (run: number) => sides.map((_, i) => sides[(i + run) % sides.length]);
  const R = o.runs;
  const rows: Row[] = [];

  const children: Partial<Record<Who, LineProc>> = {};
  /** Runs one measure; a failure is reported and the others still run (children restarted). */
  async function guarded(name: string, fn: () => Promise<void>): Promise<void> {
    const before = rows.length;
    const t = performance.now();
    try {
      await fn();
    } catch (err) {
      console.error(`bench/vs-spead2: measure ${name} failed: ${(err as Error)?.stack ?? err}`);
      for (const [w, p] of Object.entries(children) as [Who, LineProc][]) {
        p.kill();
        delete children[w];
      }
    }
    for (const r of rows.slice(before)) {
      console.error(`  ${r.measure}: ${sides.map((w) => `${LABEL[w]} ${fmt(r.values[w])}`).join(", ")}`);
    }
    console.error(`bench/vs-spead2: ${name} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  }
  const child = (w: Who) =>
    (children[w] ??= w === "bun"
      ? new LineProc(bunBin, [`${root}/bench/recv.ts`, "--child"])
      : new LineProc(denoRun[0], [...denoRun.slice(1), `${root}/bench/recv.ts`, "--child"]));

  // ---- one UDP receive pass, any side, fed by spead2_send -------------------------------------
  interface RxPass {
    sent: number;
    got: number;
    /** Sender's rate (Gb/s of packet bytes, as spead2_send prints). */
    sendGbps: number;
    cpu: number;
    faults: number | null;
    faultHeaps: number;
    minflt: number;
  }
  async function udpPass(
    w: Who,
    c: { heapSize: number; packet: number },
    heaps: number,
    rateGbps: number,
    warm = 0,
  ): Promise<RxPass> {
    const sendArgs = (port: number) => [
      "--heap-size",
      String(c.heapSize),
      "--heaps",
      String(heaps),
      "--packet",
      String(c.packet),
      "--rate",
      String(rateGbps),
      `127.0.0.1:${port}`,
    ];
    const sendOnce = (port: number) => {
      const r = spawnSync(bin("src/spead2_send"), sendArgs(port), { encoding: "utf8", timeout: 120_000 });
      const m = /([0-9.e+-]+) Gb\/s/.exec(r.stdout ?? "");
      return m ? Number(m[1]) : NaN;
    };
    if (w === "spead2") {
      const port = freeUdpPort();
      const run = runMeasured(bin("src/spead2_recv"), [
        "--quiet",
        "--mem-pool",
        "--mem-upper",
        String(c.heapSize + 8192),
        `127.0.0.1:${port}`,
      ], 300);
      await waitUdpBound(port);
      const sendGbps = sendOnce(port);
      const timer = setTimeout(() => run.interrupt(), 1000);
      const r = await run.done;
      clearTimeout(timer);
      const m = /Received (\d+) heaps/.exec(r.stdout);
      return {
        sent: heaps,
        got: m ? Number(m[1]) : 0,
        sendGbps,
        cpu: r.cpu,
        faults: null,
        faultHeaps: 0,
        minflt: r.minflt,
      };
    }
    const p = child(w);
    try {
      const { port } = await p.request<{ port: number }>({
        cmd: "listen",
        heap_size: c.heapSize,
        max_heaps: 4,
        ring_heaps: 8,
        pool_heaps: 16,
        pool: true,
        warm,
        until: heaps,
      }, 60_000);
      const sendGbps = sendOnce(port);
      const rx = await p.request<{ heaps: number; cpu: number; faults: number | null; fault_heaps: number }>(
        { cmd: "wait", timeout: 1 },
        60_000,
      );
      return {
        sent: heaps,
        got: rx.heaps,
        sendGbps,
        cpu: rx.cpu,
        faults: rx.faults,
        faultHeaps: rx.fault_heaps,
        minflt: NaN,
      };
    } catch (err) {
      // A stuck or dead child: report the pass as failed and start a fresh one next time.
      console.error(`bench/vs-spead2: ${LABEL[w]} pass failed (${(err as Error).message.slice(0, 300)}); restarting it`);
      p.kill();
      delete children[w];
      return { sent: heaps, got: NaN, sendGbps: NaN, cpu: NaN, faults: null, faultHeaps: 0, minflt: NaN };
    }
  }

  /** Receiver and sender command lines of tutorial 9 and tutorial 8 for one side. */
  function tutorialPair(w: Who, c: { heaps: number; heapSize: number; packet: number }, port: number): [string[], string[]] {
    const targs = ["-n", String(c.heaps), "-H", String(c.heapSize), "-p", String(c.packet), "127.0.0.1", String(port)];
    const rargs = ["-H", String(c.heapSize)];
    const ex = (f: string) => `${root}/examples/${f}.ts`;
    return w === "spead2"
      // Line-buffered: when the end heap is lost the receiver is interrupted, and its lines count.
      ? [["stdbuf", "-oL", bin("examples/tutorial/tut_9_recv_memory_pool"), ...rargs, String(port)], [bin("examples/tutorial/tut_8_send_reuse_memory"), ...targs]]
      : w === "bun"
      ? [[bunBin, ex("tut_9_recv_memory_pool"), ...rargs, "--bind", "127.0.0.1", String(port)], [bunBin, ex("tut_8_send_reuse_memory"), ...targs]]
      : [[...denoRun, ex("tut_9_recv_memory_pool"), ...rargs, "--bind", "127.0.0.1", String(port)], [...denoRun, ex("tut_8_send_reuse_memory"), ...targs]];
  }

  const udpCases = [
    { name: "1 MiB @ 9000", heapSize: MiB, packet: 9000, paced: 10, heaps: o.quick ? 500 : 2000, bisect: o.quick ? 300 : 1000 },
    { name: "64 KiB @ 1472", heapSize: 64 * KiB, packet: 1472, paced: 5, heaps: o.quick ? 6000 : 30000, bisect: o.quick ? 2000 : 8000 },
  ];
  const needSender = (k: string) => o.only.has(k) && haveSpead2;
  const warmed = new Set<string>();
  async function warmUp(c: (typeof udpCases)[number]) {
    if (warmed.has(c.name)) return;
    warmed.add(c.name);
    for (const w of sides) await udpPass(w, c, Math.min(c.bisect, 400), 0);
  }

  // ---- cpu: receiver CPU per GB at a paced rate ----------------------------------------------
  if (needSender("cpu")) await guarded("cpu", async () => {
    for (const c of udpCases) {
      await warmUp(c);
      const heaps = Math.round(c.heaps * (c.heapSize === MiB ? 1 : 16000 / 30000));
      const s: Partial<Record<Who, number[]>> = {};
      for (let r = 0; r < R; r++) {
        for (const w of rotation(r)) {
          const p = await udpPass(w, c, heaps, c.paced);
          (s[w] ??= []).push(p.got ? p.cpu / ((p.got * c.heapSize) / 1e9) : NaN);
        }
      }
      rows.push(row(`receiver CPU per GB, ${c.name}, paced ${c.paced} Gb/s`, "s/GB", "lower", s, { ratio: 1, text: "≤ 1.0× (moonshot 0.8×)" }));
    }
  });

  // ---- unlimited: complete heaps at rate 0 ----------------------------------------------------
  if (needSender("unlimited")) await guarded("unlimited", async () => {
    for (const c of udpCases) {
      await warmUp(c);
      const s: Partial<Record<Who, number[]>> = {};
      for (let r = 0; r < R; r++) {
        for (const w of rotation(r)) (s[w] ??= []).push((await udpPass(w, c, c.heaps, 0)).got);
      }
      rows.push(row(`complete heaps at unlimited rate, ${c.heaps} × ${c.name}`, "heaps", "higher", s, { ratio: 1, text: "≥ 1.0×" }));
    }
  });

  // ---- lossless: bisected highest rate where every heap of every pass arrives ----------------
  if (needSender("lossless")) await guarded("lossless", async () => {
    const K = R;
    const tol = o.quick ? 0.1 : 0.05;
    for (const c of udpCases) {
      await warmUp(c);
      interface B {
        w: Who;
        low: number;
        high: number;
        best: number;
        senderLimited: boolean;
        steps: string[];
      }
      const good = async (w: Who, rate: number): Promise<[boolean, number]> => {
        const rates: number[] = [];
        for (let k = 0; k < K; k++) {
          const p = await udpPass(w, c, c.bisect, rate);
          rates.push(p.sendGbps);
          if (p.got < p.sent) return [false, median(rates)];
        }
        return [true, median(rates)];
      };
      const bs: B[] = [];
      for (const w of sides) {
        const [ok, top] = await good(w, 0);
        bs.push({ w, low: 0, high: top, best: ok ? top : 0, senderLimited: ok, steps: [`unlimited ${top.toFixed(1)}${ok ? "✔" : "✘"}`] });
      }
      for (let round = 0; round < 10; round++) {
        const active = bs.filter((b) => !b.senderLimited && b.high - b.low > tol * b.high);
        if (!active.length) break;
        for (const b of active) {
          const rate = (b.low + b.high) / 2;
          const [ok] = await good(b.w, Number(rate.toFixed(3)));
          b.steps.push(`${rate.toFixed(2)}${ok ? "✔" : "✘"}`);
          if (ok) b.low = b.best = rate;
          else b.high = rate;
        }
      }
      const s: Partial<Record<Who, number[]>> = {};
      for (const b of bs) s[b.w] = [b.best];
      const r = row(`highest lossless rate, ${c.name} (bisected to ${tol * 100} %, ${K} pass(es) per step)`, "Gb/s", "higher", s, {
        ratio: 1.25,
        text: "≥ 1.25×",
      });
      r.note = bs.map((b) => `${LABEL[b.w]}: ${b.senderLimited ? "sender-limited; " : ""}${b.steps.join(" ")}`).join("; ");
      rows.push(r);
    }
  });

  // ---- mem: in-memory decode ----------------------------------------------------------------
  if (o.only.has("mem")) await guarded("mem", async () => {
    const memCases = [
      { name: "1 MiB @ 9000", heapSize: MiB, packet: 9000 },
      { name: "64 KiB @ 1472", heapSize: 64 * KiB, packet: 1472 },
    ];
    const haveBench = haveSpead2 && existsSync(bin("src/spead2_bench"));
    // Ours twice per run: from a native buffer (addBufferReader) and from a file
    // (addFileReader); both against the same spead2_bench mem samples.
    const ourChild = (w: "bun" | "deno", c: typeof memCases[number], via: string, memcpy = "std"): { gbs: number; cpuPerGB: number } => {
      const args = ["--child-mem", String(c.heapSize), String(c.packet), String(o.quick ? 64 : 256), String(o.quick ? 2 : 4), via, memcpy];
      // The file case writes its file (Deno: --allow-write).
      const cmd = w === "bun" ? [bunBin, `${root}/bench/vs-spead2.ts`, ...args] : [...denoRun, "--allow-write", `${root}/bench/vs-spead2.ts`, ...args];
      const out = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8", timeout: 300_000 });
      try {
        const j = JSON.parse((out.stdout ?? "").trim().split("\n").pop() ?? "");
        return j.heaps === j.expected ? j : { gbs: NaN, cpuPerGB: NaN };
      } catch {
        console.error(`mem child (${w}, ${via}) failed: ${(out.stderr ?? "").slice(-1000)}`);
        return { gbs: NaN, cpuPerGB: NaN };
      }
    };
    for (const c of memCases) {
      const s: Partial<Record<Who, number[]>> = {};
      const f: Partial<Record<Who, number[]>> = {};
      const cpu: Partial<Record<Who, number[]>> = {};
      const nt: Partial<Record<Who, number[]>> = {};
      // Bytes of one encoded heap (spead2_bench encodes the same heaps: 64-40, the same packet size).
      const { Flavour, send } = await import("../mod.ts");
      const one = new send.BytesStream(new send.StreamConfig({ maxPacketSize: c.packet }));
      const heap = new send.Heap(new Flavour());
      heap.addRaw(0x1234, new Uint8Array(c.heapSize));
      one.sendHeap(heap);
      const bytesPerHeap = one.getValue().byteLength;
      for (let r = 0; r < R; r++) {
        for (const w of rotation(r)) {
          if (w === "spead2") {
            if (!haveBench) continue;
            const memArgs = ["mem", "--quiet", "--heap-size", String(c.heapSize), "--packet", String(c.packet)];
            const m = await runMeasured(bin("src/spead2_bench"), memArgs, 300).done;
            (s.spead2 ??= []).push(Number(m.stdout.trim()) / 8);
            const mnt = await runMeasured(bin("src/spead2_bench"), [...memArgs, "--memcpy-nt"], 300).done;
            (nt.spead2 ??= []).push(Number(mnt.stdout.trim()) / 8);
            // spead2_bench mem decodes 100 passes over (2^30 / heap size + 1) heaps (the
            // last an end heap, counted as a whole heap here); its CPU includes building
            // that buffer once (a few % of the total), which favours us slightly.
            const gb = (100 * (Math.floor(2 ** 30 / c.heapSize) + 1) * bytesPerHeap) / 1e9;
            (cpu.spead2 ??= []).push(m.cpu / gb);
          } else {
            const b = ourChild(w, c, "buffer");
            (s[w] ??= []).push(b.gbs);
            (cpu[w] ??= []).push(b.cpuPerGB);
            (f[w] ??= []).push(ourChild(w, c, "file").gbs);
            (nt[w] ??= []).push(ourChild(w, c, "buffer", "nt").gbs);
          }
        }
      }
      if (s.spead2) f.spead2 = s.spead2;
      rows.push(row(`in-memory decode, ${c.name}`, "GB/s", "higher", s, { ratio: 1, text: "≥ 1.0×" }));
      rows.push(row(`decode from a file (addFileReader; spead2: mem), ${c.name}`, "GB/s", "higher", f, { ratio: 1, text: "≥ 1.0×" }));
      rows.push(row(`in-memory decode, CPU per GB (all threads), ${c.name}`, "s/GB", "lower", cpu, { ratio: 1, text: "≤ 1.0× (context)" }));
      rows.push(row(`in-memory decode, non-temporal copies (memcpy: MEMCPY_NONTEMPORAL; spead2_bench --memcpy-nt), ${c.name}`, "GB/s", "higher", nt, { ratio: 1, text: "≥ 1.0× (context)" }));
    }
  });

  // ---- pair: tutorial 8 -> tutorial 9 ---------------------------------------------------------
  if (o.only.has("pair")) await guarded("pair", async () => {
    const pairCases = [
      { heaps: o.quick ? 300 : 1000, heapSize: MiB, packet: 9000 },
      { heaps: o.quick ? 30 : 100, heapSize: 64 * MiB, packet: 9000 },
    ];
    const haveTut = haveSpead2 && existsSync(bin("examples/tutorial/tut_9_recv_memory_pool"));
    for (const c of pairCases) {
      const s: Partial<Record<Who, number[]>> = {};
      for (let r = 0; r < R; r++) {
        for (const w of rotation(r)) {
          if (w === "spead2" && !haveTut) continue;
          const port = freeUdpPort();
          const [rcmd, scmd] = tutorialPair(w, c, port);
          (s[w] ??= []).push((await pairTrial(rcmd, scmd, port, 3000)).heaps);
        }
      }
      const r = row(`tut_8 → tut_9, ${c.heapSize / MiB} MiB -n ${c.heaps} -p ${c.packet}, complete heaps (sum of ${R} run(s))`, "heaps", "higher", s, {
        ratio: 1,
        text: c.heapSize > MiB ? `≥ 1.0× (moonshot > ${Math.floor(c.heaps / 2)} per run)` : "≥ 1.0×",
      }, "sum");
      rows.push(r);
    }
  });

  // ---- send: the tutorial senders alone -------------------------------------------------------
  if (o.only.has("send")) await guarded("send", async () => {
    const sinkProc = new LineProc(python, [`${root}/bench/spead2_send_bench.py`, "sink"]);
    // The sink prints a bare port number: a valid JSON line.
    const port = await sinkProc.read<number>("sink port", 15_000);
    const sendCases = [
      { prog: "tut_8_send_reuse_memory", heaps: o.quick ? 8 : 20, heapSize: 64 * MiB, packet: 9000 },
      { prog: "tut_8_send_reuse_memory", heaps: o.quick ? 300 : 1000, heapSize: MiB, packet: 9000 },
      { prog: "tut_8_send_reuse_memory", heaps: o.quick ? 150 : 500, heapSize: MiB, packet: 1472 },
      { prog: "tut_11_send_batch_heaps", heaps: o.quick ? 65536 : 524288, heapSize: 8 * KiB, packet: 9000 },
    ];
    for (const c of sendCases) {
      const s: Partial<Record<Who, number[]>> = {};
      const args = ["-n", String(c.heaps), "-H", String(c.heapSize), "-p", String(c.packet), "127.0.0.1", String(port)];
      const cxx = bin(`examples/tutorial/${c.prog}`);
      for (let r = 0; r < R; r++) {
        for (const w of rotation(r)) {
          if (w === "spead2" && !existsSync(cxx)) continue;
          const ex = `${root}/examples/${c.prog}.ts`;
          const [cmd, cmdArgs] = w === "spead2"
            ? [cxx, args]
            : w === "bun"
            ? [bunBin, [ex, ...args]]
            : [denoRun[0], [...denoRun.slice(1), ex, ...args]];
          const v = o.fifo ? runSender("chrt", ["-f", "10", cmd, ...cmdArgs]) : runSender(cmd, cmdArgs);
          (s[w] ??= []).push(v);
        }
      }
      const size = c.heapSize >= MiB ? `${c.heapSize / MiB} MiB` : `${c.heapSize / KiB} KiB`;
      const fifo = o.fifo ? ", SCHED_FIFO" : "";
      rows.push(row(`${c.prog.slice(0, 6)} sender alone, ${c.heaps} × ${size} @ ${c.packet}${fifo}`, "MB/s", "higher", s, { ratio: 1.1, text: "≥ 1.1×" }));
    }
    sinkProc.close();
  });

  // ---- faults: minor faults per heap once warm, pooled receiver -------------------------------
  if (needSender("faults")) await guarded("faults", async () => {
    for (const c of udpCases) {
      await warmUp(c);
      // Warm means the JIT has settled too. Bun's compiler threads (JITWorker, JSCWarmUp)
      // fault while they compile, and JSC tiers functions up by call counts, so the same
      // number of heaps is needed whatever their size: with 1 MiB heaps at 5 Gb/s, FTL
      // compiles of the receive path went on until about heap 10000 of a fresh stream
      // (BUN_JSC_reportCompileTimes=1 beside per-500-heap fault counts), and a new stream
      // in the same process sets some of them off again. So each pass is one stream, warmed
      // over 12000 heaps, then counted.
      const warm = o.quick ? 6000 : 12000;
      const counted = c.heapSize === MiB ? (o.quick ? 500 : 1500) : (o.quick ? 3000 : 8000);
      const n = warm + counted;
      const rate = c.paced / 2;
      const s: Partial<Record<Who, number[]>> = {};
      for (let r = 0; r < R; r++) {
        for (const w of rotation(r)) {
          if (w === "spead2") {
            // No JIT to wait for: two runs differing by the counted heaps.
            const a = await udpPass(w, c, 2000, rate);
            const b = await udpPass(w, c, 2000 + counted, rate);
            // Start-up faults vary by a few dozen between runs: a negative difference is noise around 0.
            (s[w] ??= []).push(b.got > a.got ? Math.max(0, (b.minflt - a.minflt) / (b.got - a.got)) : NaN);
          } else {
            const p = await udpPass(w, c, n, rate, warm);
            (s[w] ??= []).push(p.faults !== null && p.faultHeaps > 0 ? p.faults / p.faultHeaps : NaN);
          }
        }
      }
      rows.push(row(`minor page faults per heap once warm, ${c.name}, paced ${rate} Gb/s`, "faults/heap", "lower", s, {
        absolute: 0.05,
        text: "< 0.05",
      }));
    }
    // The tutorial receiver: whole-process faults of two runs of different lengths, per extra heap received.
    const haveTut = haveSpead2 && existsSync(bin("examples/tutorial/tut_9_recv_memory_pool"));
    const [n1, n2] = o.quick ? [300, 1300] : [500, 2500];
    const s: Partial<Record<Who, number[]>> = {};
    for (let r = 0; r < R; r++) {
      for (const w of rotation(r)) {
        if (w === "spead2" && !haveTut) continue;
        const runs = [];
        for (const n of [n1, n2]) {
          const port = freeUdpPort();
          const [rcmd, scmd] = tutorialPair(w, { heaps: n, heapSize: MiB, packet: 9000 }, port);
          runs.push(await pairTrial(rcmd, scmd, port, 3000));
        }
        const dh = runs[1].heaps - runs[0].heaps;
        (s[w] ??= []).push(dh > 100 ? Math.max(0, (runs[1].rx.minflt - runs[0].rx.minflt) / dh) : NaN);
      }
    }
    rows.push(row(`minor page faults per heap, tutorial receiver tut_9 (1 MiB, tut_8 at full rate; runs of -n ${n1} and ${n2}, extra faults per extra heap)`, "faults/heap", "lower", s, {
      absolute: 0.05,
      text: "< 0.05",
    }));
  });

  for (const p of Object.values(children)) p!.close();
  const elapsed = (performance.now() - t0) / 1000;
  report(o, rows, sides, elapsed, haveSpead2);
}

function row(
  measure: string,
  unit: string,
  better: "higher" | "lower",
  samples: Partial<Record<Who, number[]>>,
  target: Row["target"],
  combine: "median" | "sum" = "median",
): Row {
  const values: Partial<Record<Who, number>> = {};
  for (const [w, xs] of Object.entries(samples) as [Who, number[]][]) {
    values[w] = combine === "sum" ? xs.reduce((a, b) => a + b, 0) : median(xs);
  }
  return { measure, unit, better, values, samples, target };
}

function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (Number.isInteger(x)) return String(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toFixed(3);
}

function verdict(r: Row, w: Who): string {
  const v = r.values[w];
  if (v === undefined || !Number.isFinite(v)) return "–";
  if (r.target.absolute !== undefined) return v < r.target.absolute ? "met" : "missed";
  const s = r.values.spead2;
  if (s === undefined || !Number.isFinite(s)) return "–";
  const ratio = s === 0 ? (v === 0 ? 1 : Infinity) : v / s;
  const t = r.target.ratio ?? 1;
  return (r.better === "higher" ? ratio >= t : ratio <= t) ? "met" : "missed";
}

function report(o: Opts, rows: Row[], sides: Who[], elapsed: number, haveSpead2: boolean): void {
  const ours = sides.filter((w) => w !== "spead2");
  const ratio = (r: Row, w: Who) => {
    const v = r.values[w];
    const s = r.values.spead2;
    if (r.target.absolute !== undefined) return "–"; // an absolute target: a ratio says nothing
    return v !== undefined && s !== undefined && s !== 0 && Number.isFinite(v) && Number.isFinite(s) ? `${(v / s).toFixed(2)}×` : "–";
  };
  const cpu = spawnSync("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], { encoding: "utf8" }).stdout.trim();
  const ncpu = spawnSync("nproc", [], { encoding: "utf8" }).stdout.trim();
  const kernel = spawnSync("uname", ["-r"], { encoding: "utf8" }).stdout.trim();
  const rmem = spawnSync("cat", ["/proc/sys/net/core/rmem_max"], { encoding: "utf8" }).stdout.trim();
  const version = (cmd: string[]) => spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" }).stdout?.trim().split("\n")[0] ?? "?";
  const spead2Version = haveSpead2 && o.spead2
    ? spawnSync("sh", ["-c", `cat '${o.spead2}/../spead2-src/VERSION.txt' 2>/dev/null || grep -m1 version '${o.spead2}/meson-info/intro-projectinfo.json' 2>/dev/null`], {
      encoding: "utf8",
    }).stdout.trim()
    : "not run";
  const lines: string[] = [];
  lines.push(`## ours vs spead2's C++ programs (bench/vs-spead2.ts${o.quick ? " --quick" : ""})`);
  lines.push("");
  lines.push(
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; ${ncpu} CPUs (${cpu}), Linux ${kernel}, rmem_max ${rmem}; ` +
      `Bun ${version([bunBin, "--version"])}, ${version([denoRun[0], "--version"])}; spead2 ${spead2Version} (C++ release build); ` +
      `driver ${runtimeName}; libspead as built in zig-out. **The machine is shared** (other jobs run meanwhile; load average ${loadAverage()} at the end): ` +
      `runs alternate between the sides (rotating order) and the figures are medians of ${o.runs} run(s), so compare the ratios. (bench time ${elapsed.toFixed(0)} s)`,
  );
  lines.push("");
  lines.push(`| measure | ${sides.map((w) => LABEL[w]).join(" | ")} | ${ours.map((w) => `${LABEL[w].replace("ours, ", "")} ÷ spead2`).join(" | ")} | target | met (${ours.map((w) => LABEL[w].replace("ours, ", "")).join(" / ")}) |`);
  lines.push(`|---|${sides.map(() => "---:|").join("")}${ours.map(() => "---:|").join("")}---|---|`);
  for (const r of rows) {
    lines.push(
      `| ${r.measure} (${r.unit}, ${r.better} is better) | ${sides.map((w) => fmt(r.values[w])).join(" | ")} | ${ours.map((w) => ratio(r, w)).join(" | ")} | ${r.target.text} | ${
        ours.map((w) => verdict(r, w)).join(" / ")
      } |`,
    );
  }
  lines.push("");
  lines.push("Runs:");
  lines.push("");
  for (const r of rows) {
    lines.push(`- ${r.measure}: ${sides.map((w) => `${LABEL[w]} ${(r.samples[w] ?? []).map(fmt).join(", ") || "–"}`).join("; ")}${r.note ? `. Steps (Gb/s): ${r.note}` : ""}`);
  }
  console.log(lines.join("\n"));
  writeFileSync(o.svg, svg(rows, sides));
  // The figures beside the chart, so it can be redrawn (--replot) without measuring again.
  writeFileSync(o.svg.replace(/\.svg$/, "") + ".json", JSON.stringify({ sides, rows }, null, 1) + "\n");
  console.error(`chart: ${o.svg}`);
}

/** Horizontal bars, one panel per measure on its own scale, value labels, target marks. */
function svg(rows: Row[], sides: Who[]): string {
  const colour: Record<Who, string> = { bun: "#e07b39", deno: "#3a7bd5", spead2: "#6b6b6b" };
  const W = 900, labelW = 330, barH = 14, gap = 4, panelPad = 14, top = 50;
  const wrap = (text: string, width = 50): string[] => {
    const lines: string[] = [];
    let line = "";
    for (const word of text.split(" ")) {
      if (line && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    if (line) lines.push(line);
    return lines;
  };
  const labels = rows.map((r) => wrap(`${r.measure} (${r.unit}, ${r.better} is better)`));
  const panelHs = labels.map((l) => Math.max(sides.length * (barH + gap), l.length * 13) + panelPad);
  const panelTops = panelHs.map((_, k) => top + panelHs.slice(0, k).reduce((a, b) => a + b, 0));
  const H = top + panelHs.reduce((a, b) => a + b, 0) + 20;
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="10" y="18" font-size="14" font-weight="bold">ours vs spead2 C++ (bench/vs-spead2.ts): each measure on its own scale</text>`);
  sides.forEach((w, i) => {
    out.push(`<rect x="${10 + i * 120}" y="28" width="12" height="12" fill="${colour[w]}"/><text x="${26 + i * 120}" y="38">${LABEL[w]}</text>`);
  });
  out.push(`<text x="${10 + sides.length * 120}" y="38">| dashed: target</text>`);
  const plotW = W - labelW - 90;
  rows.forEach((r, k) => {
    const y0 = panelTops[k];
    const panelH = panelHs[k];
    const vals = sides.map((w) => r.values[w]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    let tgt: number | undefined = r.target.absolute;
    const s = r.values.spead2;
    if (tgt === undefined && s !== undefined && Number.isFinite(s) && r.target.ratio !== undefined) tgt = s * r.target.ratio;
    const max = Math.max(...vals, tgt ?? 0, 1e-9) * 1.05;
    labels[k].forEach((l, i) => out.push(`<text x="10" y="${y0 + 12 + 13 * i}"${i ? ' fill="#444"' : ""}>${esc(l)}</text>`));
    sides.forEach((w, i) => {
      const v = r.values[w];
      const y = y0 + i * (barH + gap);
      if (v === undefined || !Number.isFinite(v)) {
        out.push(`<text x="${labelW + 4}" y="${y + 11}" fill="#999">not measured</text>`);
        return;
      }
      const bw = Math.max(1, (v / max) * plotW);
      out.push(`<rect x="${labelW}" y="${y}" width="${bw.toFixed(1)}" height="${barH}" fill="${colour[w]}"/>`);
      out.push(`<text x="${(labelW + bw + 4).toFixed(1)}" y="${y + 11}">${fmt(v)}</text>`);
    });
    if (tgt !== undefined) {
      const x = labelW + (tgt / max) * plotW;
      out.push(`<line x1="${x.toFixed(1)}" y1="${y0 - 2}" x2="${x.toFixed(1)}" y2="${y0 + sides.length * (barH + gap)}" stroke="black" stroke-dasharray="3,2"/>`);
    }
    out.push(`<line x1="10" y1="${y0 + panelH - 6}" x2="${W - 10}" y2="${y0 + panelH - 6}" stroke="#ddd"/>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

if (cliArgs[0] === "--replot") {
  // --replot FIGURES.json [OUT.svg]: redraw a chart from the figures a run wrote.
  const { sides, rows } = JSON.parse(readFileSync(cliArgs[1], "utf8")) as { sides: Who[]; rows: Row[] };
  writeFileSync(cliArgs[2] ?? cliArgs[1].replace(/\.json$/, ".svg"), svg(rows, sides));
} else if (cliArgs[0] === "--child-mem") {
  const [h, p, mb, passes] = cliArgs.slice(1, 5).map(Number);
  await childMem(h, p, mb, passes, cliArgs[5] ?? "buffer", cliArgs[6] ?? "std");
} else {
  await driver();
}
