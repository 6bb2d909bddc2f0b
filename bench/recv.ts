/**
 * UDP receive on loopback, issue #4's benchmark: our recv.Stream under Bun and
 * under Deno against spead2's Python receiver, all fed by the same spead2
 * sender, on the same machine, in one invocation. Not a test.
 *
 *   bun bench/recv.ts [--quick]
 *   deno run --allow-ffi --allow-env --allow-run --allow-read bench/recv.ts [--quick]
 *
 * Either runtime drives; the receivers are always three long-lived child
 * processes speaking JSON lines (start-up paid once per bench):
 *   ours, Bun:  `bun bench/recv.ts --child`;
 *   ours, Deno: `deno run --allow-ffi --allow-env --allow-read bench/recv.ts --child`;
 *   spead2:     `.venv/bin/python bench/spead2_recv_bench.py receiver` (spead2 from PyPI).
 * Each pass opens a fresh stream (as spead2_bench does) with the same settings:
 * max_heaps 4, ring 8, MemoryPool(0, heap + 8192, 16, 16) unless said
 * otherwise, a UDP reader on 127.0.0.1 asking for an 8 MiB socket buffer.
 * Ours iterates with `for await`, spead2 with `for heap in stream` in a Python
 * thread; every heap is released / dropped without reading its data.
 * Sender: bench/spead2_recv_bench.py `sender` (spead2.send.asyncio.UdpStream,
 * tutorial 11's two batches of pre-built heaps, one int8 item of exactly the
 * heap size, no descriptors) to 127.0.0.1, rate-limited (spead2 counts packet
 * bytes), then an end heap. A pass ends at the end heap or 1 s after the
 * sender finished.
 *
 * (a) Lossless rate, bisected like spead2_bench: per receiver and case, one
 *     unrecorded warm-up pass, then K passes unlimited; if every one gets every
 *     heap the receiver is sender-limited, otherwise [0, unlimited sender
 *     payload rate] is bisected on the sender's rate limit until the interval
 *     is within 5% of its top. A rate is GOOD when each of K passes gets ALL
 *     heaps (stricter than spead2_bench's num_heaps - 1); the first bad pass
 *     ends a step. The figure is the sender's measured payload rate at the
 *     highest GOOD limit (median of its passes), as spead2_bench reports.
 *     The receivers' bisections run in lockstep so machine noise hits all.
 * (b) Minor page faults per heap after warm-up (processStats().minorFaults in
 *     our child, getrusage in spead2's), with and without the pool, at half
 *     the lowest lossless limit of the case; medians of FAULT_RUNS passes.
 */
import { MemoryPool, processStats, recv } from "../mod.ts";
import { bunBin, cliArgs, denoBin, LineProc, median, python, root, runtimeName, sleep } from "./common.ts";

const quick = cliArgs.includes("--quick");
const self = `${root}/bench/recv.ts`;
const helper = `${root}/bench/spead2_recv_bench.py`;

const MAX_HEAPS = 4;
const RING_HEAPS = 8;
const POOL_HEAPS = 16;
const GRACE_MS = 1000;
const MiB = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Child: our receiver, the same JSON-lines protocol as spead2_recv_bench.py `receiver`.

interface ListenCmd {
  cmd: "listen";
  heap_size: number;
  max_heaps: number;
  ring_heaps: number;
  pool_heaps: number;
  pool: boolean;
  warm: number;
  until: number;
}

interface RxReport {
  heaps: number;
  first: number | null;
  last: number | null;
  stopped: boolean;
  /** CPU seconds (user + system, all threads) of the receiver process since listen. */
  cpu: number;
  /** Minor faults from after the `warm`-th heap to after the `until`-th (or the end of the
   * pass if fewer arrive) over `fault_heaps` heaps; null if `warm` heaps did not arrive. */
  faults: number | null;
  fault_heaps: number;
}

class OurReceiver {
  readonly port: number;
  readonly rcvbuf: number;
  #pool: MemoryPool | null;
  #stream: recv.Stream;
  #cpu0 = process.cpuUsage();
  #heaps = 0;
  #first: number | null = null;
  #last: number | null = null;
  #faults0: number | null = null;
  #faults1: number | null = null;
  #warm: number;
  #until: number;
  #done: Promise<void>;

  constructor(c: ListenCmd) {
    this.#warm = c.warm;
    this.#until = c.until;
    this.#pool = c.pool ? new MemoryPool(0, c.heap_size + 8192, c.pool_heaps, c.pool_heaps) : null;
    this.#stream = new recv.Stream(
      new recv.StreamConfig({ maxHeaps: c.max_heaps, ...(this.#pool ? { memoryAllocator: this.#pool } : {}) }),
      new recv.RingStreamConfig({ heaps: c.ring_heaps }),
    );
    const { port, bufferSize } = this.#stream.addUdpReader(0, { bindHostname: "127.0.0.1" });
    this.port = port;
    this.rcvbuf = bufferSize;
    this.#done = this.#drain();
  }

  async #drain(): Promise<void> {
    const warm = this.#warm;
    const until = this.#until;
    for await (const heap of this.#stream) {
      const t = performance.now();
      const counted = !heap.isEndOfStream() && !(heap instanceof recv.IncompleteHeap);
      if (counted) {
        if (this.#heaps === 0) this.#first = t;
        this.#last = t;
        this.#heaps++;
      }
      heap.release();
      if (counted && this.#heaps === warm) this.#faults0 = processStats().minorFaults;
      if (counted && this.#heaps === until && this.#faults0 !== null) this.#faults1 = processStats().minorFaults;
    }
    if (this.#faults1 === null) this.#faults1 = processStats().minorFaults;
  }

  async wait(timeoutS: number): Promise<RxReport> {
    const ended = await Promise.race([this.#done.then(() => true), sleep(timeoutS * 1000).then(() => false)]);
    if (!ended) {
      this.#stream.stop();
      await Promise.race([this.#done, sleep(5000)]);
    }
    const cpu = process.cpuUsage(this.#cpu0);
    this.#stream.close();
    this.#pool?.close();
    const measured = this.#faults0 !== null && this.#faults1 !== null;
    return {
      heaps: this.#heaps,
      first: this.#first === null ? null : this.#first / 1000,
      last: this.#last === null ? null : this.#last / 1000,
      stopped: ended,
      cpu: (cpu.user + cpu.system) / 1e6,
      faults: measured ? this.#faults1! - this.#faults0! : null,
      fault_heaps: measured ? Math.min(this.#heaps, this.#until) - this.#warm : 0,
    };
  }
}

function child(): void {
  // Never outlive a stuck driver: exit after 10 minutes without a command.
  let exitAt = setTimeout(() => process.exit(3), 600_000);
  const reply = (obj: unknown) => process.stdout.write(JSON.stringify(obj) + "\n");
  let rx: OurReceiver | null = null;
  let buf = "";
  let chain = Promise.resolve();
  const handle = async (line: string) => {
    clearTimeout(exitAt);
    exitAt = setTimeout(() => process.exit(3), 600_000);
    const cmd = JSON.parse(line);
    if (cmd.cmd === "listen") {
      rx = new OurReceiver(cmd as ListenCmd);
      reply({ port: rx.port, rcvbuf: rx.rcvbuf });
    } else if (cmd.cmd === "wait") {
      const r = rx!;
      rx = null;
      reply(await r.wait(cmd.timeout));
    } else if (cmd.cmd === "info") {
      reply({ runtime: runtimeName });
    }
  };
  process.stdin.on("data", (d: Uint8Array) => {
    buf += new TextDecoder().decode(d);
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) chain = chain.then(() => handle(line));
    }
  });
  process.stdin.on("end", () => {
    clearTimeout(exitAt);
    chain.then(() => process.exit(0));
  });
}

// ---------------------------------------------------------------------------------------------
// Driver.

interface Case {
  heapSize: number;
  packetSize: number;
}

interface Pass {
  sent: number;
  got: number;
  /** Sender's payload rate, MB/s (heaps sent x heap size / send time). */
  senderMBs: number;
  /** Receiver CPU seconds per GB received. */
  cpuPerGB: number;
  faultsPerHeap: number | null;
}

interface Step {
  /** Rate limit in bytes/s (spead2 counts packet bytes); 0 = unlimited. */
  rate: number;
  good: boolean;
  passes: Pass[];
}

interface Info {
  runtime: string;
  spead2?: string;
  python?: string;
  cpu?: string;
  cpus?: number;
  rmem_max?: number | null;
  kernel?: string;
  loadavg?: number;
}

async function driver(): Promise<void> {
  const K = quick ? 1 : 3; // passes per rate
  const FAULT_RUNS = quick ? 1 : 3;
  const PASS_BYTES = quick ? 64 * MiB : 256 * MiB; // payload per pass (less at low rates, see passHeaps)
  const TOLERANCE = 0.05;
  const t0 = performance.now();
  const BISECT_DEADLINE = Date.now() + 170_000; // (a) stops refining after this; (b) takes ~20 s
  const HARD_DEADLINE = Date.now() + 235_000; // the whole bench stays under 4 minutes

  const sender = new LineProc(python, [helper, "sender"]);
  const receivers = [
    { key: "bun", label: "ours, Bun", proc: new LineProc(bunBin, [self, "--child"]) },
    {
      key: "deno",
      label: "ours, Deno",
      proc: new LineProc(denoBin, ["run", "--allow-ffi", "--allow-env", "--allow-read", self, "--child"]),
    },
    { key: "spead2", label: "spead2", proc: new LineProc(python, [helper, "receiver"]) },
  ] as const;
  type Rx = (typeof receivers)[number];
  const ours = receivers.filter((r) => r.key !== "spead2");
  const rcvbuf: Record<string, number> = {};

  const watchdog = setTimeout(() => {
    console.error("bench/recv: hard deadline passed; killing helpers");
    for (const r of receivers) r.proc.kill();
    sender.kill();
    process.exit(2);
  }, HARD_DEADLINE - Date.now() + 20_000) as unknown as { unref?: () => void };
  watchdog.unref?.();

  const infos: Record<string, Info> = {};
  for (const r of receivers) infos[r.key] = await r.proc.request<Info>({ cmd: "info" }, 60_000);
  const info = infos.spead2;

  /** Heaps in a pass: PASS_BYTES of payload, but no more than ~1 s of sending at RATE (and >= 1/4 of it). */
  const passHeaps = (c: Case, rate: number) => {
    const full = Math.round(PASS_BYTES / c.heapSize);
    return rate === 0 ? full : Math.max(Math.round(full / 4), Math.min(full, Math.floor(rate / c.heapSize)));
  };

  async function pass(r: Rx, c: Case, rate: number, heaps: number, pool = true, warm = 0): Promise<Pass> {
    const { port, rcvbuf: buf } = await r.proc.request<{ port: number; rcvbuf: number }>({
      cmd: "listen",
      heap_size: c.heapSize,
      max_heaps: MAX_HEAPS,
      ring_heaps: RING_HEAPS,
      pool_heaps: POOL_HEAPS,
      pool,
      warm,
      until: heaps,
    });
    rcvbuf[r.key] = buf;
    const tx = await sender.request<{ seconds: number; heaps: number }>(
      { port, heaps, heap_size: c.heapSize, packet_size: c.packetSize, rate },
      30_000,
    );
    const rx = await r.proc.request<RxReport>({ cmd: "wait", timeout: GRACE_MS / 1000 }, 15_000);
    return {
      sent: tx.heaps,
      got: rx.heaps,
      senderMBs: (tx.heaps * c.heapSize) / tx.seconds / 1e6,
      cpuPerGB: rx.heaps > 0 ? rx.cpu / ((rx.heaps * c.heapSize) / 1e9) : NaN,
      faultsPerHeap: rx.faults !== null && rx.fault_heaps > 0 ? rx.faults / rx.fault_heaps : null,
    };
  }

  /** K passes at RATE; stops at the first pass that misses a heap. */
  async function step(r: Rx, c: Case, rate: number): Promise<Step> {
    const passes: Pass[] = [];
    const n = passHeaps(c, rate);
    for (let i = 0; i < K; i++) {
      const p = await pass(r, c, rate, n);
      passes.push(p);
      if (p.got < p.sent) return { rate, good: false, passes };
    }
    return { rate, good: true, passes };
  }

  interface Bisection {
    r: Rx;
    unlimited: Step;
    senderLimited: boolean;
    low: number;
    high: number;
    best: Step | null;
    steps: Step[];
    cut: boolean;
  }

  const cases: Case[] = [
    { heapSize: MiB, packetSize: 9000 },
    { heapSize: 64 * 1024, packetSize: 1472 },
  ];
  const results: { c: Case; b: Record<string, Bisection>; faults: Record<string, { pool: number; none: number }> }[] =
    [];

  for (const c of cases) {
    // Warm-up (JIT, page cache, sockets): one unrecorded unlimited pass per receiver.
    for (const r of receivers) await pass(r, c, 0, passHeaps(c, 0));
    const bs: Bisection[] = [];
    for (const r of receivers) {
      const unlimited = await step(r, c, 0);
      const senderMBs = median(unlimited.passes.map((p) => p.senderMBs));
      bs.push({
        r,
        unlimited,
        senderLimited: unlimited.good,
        low: 0,
        high: senderMBs * 1e6,
        best: unlimited.good ? unlimited : null,
        steps: [],
        cut: false,
      });
    }
    // Lockstep: one step of each unfinished bisection in turn.
    for (let round = 0; round < 12; round++) {
      const active = bs.filter((b) => !b.senderLimited && b.high - b.low > TOLERANCE * b.high);
      if (!active.length) break;
      if (Date.now() > BISECT_DEADLINE) {
        for (const b of active) b.cut = true;
        break;
      }
      for (const b of active) {
        const rate = Math.round((b.low + b.high) / 2);
        const s = await step(b.r, c, rate);
        b.steps.push(s);
        if (s.good) {
          b.low = rate;
          b.best = s;
        } else b.high = rate;
      }
    }
    const b: Record<string, Bisection> = {};
    for (const x of bs) b[x.r.key] = x;
    results.push({ c, b, faults: {} });
  }

  // (b) Minor faults per heap after warm-up, at half the lowest lossless limit of the case.
  const faultRate: number[] = [];
  for (const res of results) {
    const lows = Object.values(res.b).map((x) => (x.senderLimited ? x.high : x.low)).filter((x) => x > 0);
    faultRate.push(Math.max(100e6, lows.length ? Math.min(...lows) / 2 : 200e6));
  }
  const faultSamples: Record<string, { pool: number[]; none: number[] }>[] = results.map(() => ({}));
  for (let i = 0; i < FAULT_RUNS && Date.now() < HARD_DEADLINE - 25_000; i++) {
    for (const [ci, res] of results.entries()) {
      const c = res.c;
      const warm = Math.round((quick ? 8 : 32) * MiB / c.heapSize);
      const n = warm + passHeaps(c, faultRate[ci]);
      for (const r of receivers) {
        const s = (faultSamples[ci][r.key] ??= { pool: [], none: [] });
        for (const pool of [true, false]) {
          const p = await pass(r, c, faultRate[ci], n, pool, warm);
          if (p.faultsPerHeap !== null) (pool ? s.pool : s.none).push(p.faultsPerHeap);
        }
      }
    }
  }
  for (const [ci, res] of results.entries()) {
    for (const r of receivers) {
      const s = faultSamples[ci][r.key] ?? { pool: [], none: [] };
      res.faults[r.key] = { pool: median(s.pool), none: median(s.none) };
    }
  }

  const infoEnd = await receivers[2].proc.request<Info>({ cmd: "info" });
  const elapsed = (performance.now() - t0) / 1000;
  sender.close();
  for (const r of receivers) r.proc.close();

  // ---- report ----
  const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "–");
  const size = (b: number) => (b >= MiB ? `${b / MiB} MiB` : `${b / 1024} KiB`);
  const caseText = (c: Case) => `${size(c.heapSize)} @ ${c.packetSize}`;
  const lossless = (b: Bisection) => (b.best ? median(b.best.passes.map((p) => p.senderMBs)) : 0);
  const cell = (b: Bisection) =>
    b.best
      ? `${b.senderLimited ? "≥ " : ""}${fmt(lossless(b))}${b.senderLimited ? " (sender-limited)" : ""}${
        b.cut ? " (cut short)" : ""
      }`
      : "none";
  const ratio = (a: number, s: number) => (s > 0 && Number.isFinite(a) ? (a / s).toFixed(2) : "–");

  const tableA = [
    `| heap @ packet | ${receivers.map((r) => r.label).join(" | ")} | ${
      ours.map((r) => `**${r.label} ÷ spead2**`).join(" | ")
    } | target (ours ≥ spead2) |`,
    `|---|${receivers.map(() => "---:|").join("")}${ours.map(() => "---:|").join("")}---|`,
  ];
  for (const res of results) {
    const s = lossless(res.b.spead2);
    const verdict = (
      x: number,
    ) => (x >= s ? "met" : x >= (1 - TOLERANCE) * s ? "not met (within resolution)" : "not met");
    const met = ours.map((r) => `${r.label.replace("ours, ", "")} ${verdict(lossless(res.b[r.key]))}`);
    tableA.push(
      `| ${caseText(res.c)} | ${receivers.map((r) => cell(res.b[r.key])).join(" | ")} | ${
        ours.map((r) => `**${ratio(lossless(res.b[r.key]), s)}**`).join(" | ")
      } | ${met.join(", ")} |`,
    );
  }

  const mbs = (rate: number) => (rate / 1e6).toFixed(0);
  const tableDetail = [
    "| heap @ packet | receiver | unlimited: sender MB/s, heaps got/sent per pass | highest GOOD / lowest BAD limit (MB/s) | recv CPU s/GB at GOOD | steps (limit MB/s: ✔ good / ✘ bad) |",
    "|---|---|---|---|---:|---|",
  ];
  for (const res of results) {
    for (const r of receivers) {
      const b = res.b[r.key];
      const u = b.unlimited;
      tableDetail.push(
        `| ${caseText(res.c)} | ${r.label} | ${fmt(median(u.passes.map((p) => p.senderMBs)))}, ${
          u.passes.map((p) => `${p.got}/${p.sent}`).join(" ")
        } | ${b.senderLimited ? "sender-limited" : `${b.best ? mbs(b.low) : "none"} / ${mbs(b.high)}`} | ${
          fmt(b.best ? median(b.best.passes.map((p) => p.cpuPerGB)) : NaN, 2)
        } | ${b.steps.map((s) => `${mbs(s.rate)}${s.good ? "✔" : "✘"}`).join(" ") || "–"} |`,
      );
    }
  }

  const tableB = [
    `| heap @ packet | allocator | ${receivers.map((r) => r.label).join(" | ")} | ${
      ours.map((r) => `${r.label} ÷ spead2`).join(" | ")
    } |`,
    `|---|---|${receivers.map(() => "---:|").join("")}${ours.map(() => "---:|").join("")}`,
  ];
  for (const res of results) {
    for (
      const [k, label] of [["pool", `MemoryPool(0, heap + 8192, ${POOL_HEAPS}, ${POOL_HEAPS})`], [
        "none",
        "none (default allocator)",
      ]] as const
    ) {
      const s = res.faults.spead2[k];
      tableB.push(
        `| ${caseText(res.c)} | ${label} | ${receivers.map((r) => fmt(res.faults[r.key][k], 2)).join(" | ")} | ${
          ours.map((r) => (s >= 0.5 ? ratio(res.faults[r.key][k], s) : "–")).join(" | ")
        } |`,
      );
    }
  }

  const pages = (c: Case) => c.heapSize / 4096;
  console.log(
    `## UDP receive on 127.0.0.1 (bench/recv.ts): ours (${infos.bun.runtime}; ${infos.deno.runtime}) vs spead2 ${info.spead2} (Python ${info.python})

Conditions: driver ${runtimeName}; ${info.cpus} CPUs (${info.cpu}), Linux ${info.kernel}; load average (1 min) ${
      fmt(info.loadavg ?? NaN, 2)
    } before, ${
      fmt(infoEnd.loadavg ?? NaN, 2)
    } after; libspead from zig-out/lib as built by scripts/build.sh (ReleaseSafe by default; the bench does not rebuild it). **Only ${info.cpus} cores**: the spead2 sender (Python + its I/O thread) and the receiver (reader thread + consumer) compete for them, so these figures measure contention as much as code; the machine is shared, so single figures move by several percent between runs. rmem_max ${info.rmem_max}; every receiver asks for an 8 MiB socket buffer (SO_RCVBUF reads ${rcvbuf.bun} Bun, ${rcvbuf.deno} Deno, ${rcvbuf.spead2} spead2). Sender: spead2 ${info.spead2} asyncio UdpStream, max_packet_size as in the table (UDP payload bytes), tutorial 11 batching; its rate limit counts packet bytes. Receivers: each in its own process, max_heaps ${MAX_HEAPS}, ring ${RING_HEAPS}, MemoryPool(0, heap + 8192, ${POOL_HEAPS}, ${POOL_HEAPS}), a fresh stream per pass, heaps released without reading the data.

### (a) Highest lossless rate (sender payload MB/s), bisected like spead2_bench

A rate is GOOD when each of ${K} passes delivers **all** heaps (spead2_bench accepts all but one); ${
      fmt(PASS_BYTES / MiB)
    } MiB of payload per pass (fewer heaps below ${
      fmt(PASS_BYTES / 1e6)
    } MB/s: about 1 s of sending). Bisection on the sender's rate limit over [0, unlimited sender rate], stopped when the interval is within ${
      TOLERANCE * 100
    }% of its top: ratios within ±0.05 of 1 are inside the resolution. Figure: median sender payload rate of the passes at the highest GOOD limit. Receivers bisected in lockstep.

${tableA.join("\n")}

${tableDetail.join("\n")}

### (b) Minor page faults per heap after warm-up

Whole receiver process (ours: processStats().minorFaults, native getrusage; spead2: resource.getrusage), counted from after the first ${
      quick ? 8 : 32
    } MiB of heaps to after the last heap sent; sender limited to ${
      faultRate.map((r, i) => `${mbs(r)} MB/s (${caseText(cases[i])})`).join(", ")
    } (half the lowest lossless limit); median of ${FAULT_RUNS} pass(es). A heap is ${
      cases.map((c) => `${pages(c)} pages (${size(c.heapSize)})`).join(" or ")
    }. Target with the pool: 0. Ratios only where spead2's figure is at least 0.5.

${tableB.join("\n")}

(bench time ${elapsed.toFixed(1)} s)`,
  );
  clearTimeout(watchdog as unknown as number);
}

if (cliArgs.includes("--child")) {
  child();
} else {
  await driver();
}
