/**
 * UDP receive throughput on loopback: our recv.Stream vs spead2's, fed by the
 * same spead2 sender, on the same machine, in the same run. Not a test.
 *
 *   bun bench/recv.ts [--quick]
 *   deno run --allow-ffi --allow-env --allow-run --allow-read bench/recv.ts [--quick]
 *
 * Sender: bench/spead2_recv_bench.py `sender` (spead2.send.asyncio.UdpStream,
 * tutorial 11's two batches of pre-built heaps, one int8 item of exactly the
 * heap size, no descriptors), to 127.0.0.1, at a fixed rate, then an end heap.
 * Receivers, all with the same settings (max_heaps 4, ring 8, MemoryPool(0,
 * heap + 8192, 16, 16), UDP reader on 127.0.0.1 asking for an 8 MiB socket
 * buffer, GRO on), each heap released / dropped without reading its data:
 *   ours:        recv.Stream in this process, `for await (const heap of stream)`;
 *   ours (sync): recv.Stream in a child process of this runtime (this file
 *                with --child-sync), the blocking `for (const heap of stream)`;
 *   spead2:      bench/spead2_recv_bench.py `receiver`, `for heap in stream`
 *                in a Python thread.
 * A run ends at the end heap, or 1 s after the sender finished (the end heap
 * can be lost too); the sync child, which cannot hear the orchestrator while
 * it blocks, ends after 300 ms without a heap instead. recv MB/s = payload of
 * the received heaps between the first and the last one / the time between
 * them, taken as the receiver popped them. Medians of RUNS runs, receivers
 * alternating; one warm-up run each first.
 *
 * Ladder: for 1 MiB heaps / 8972-byte packets, the highest sender rate limit
 * at which the median run delivers at least 99% of the heaps, per receiver.
 */
import { Empty, MemoryPool, recv, Stopped } from "../mod.ts";
import { spawn } from "node:child_process";

declare const Deno: { args: string[]; version: { deno: string; v8: string } } | undefined;
const cliArgs = typeof Deno !== "undefined" ? Deno.args : process.argv.slice(2);
const quick = cliArgs.includes("--quick");
const isBun = "Bun" in globalThis;

const root = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
const python = `${root}/.venv/bin/python`;
const helper = `${root}/bench/spead2_recv_bench.py`;
const RUNS = quick ? 1 : 3;
const MAX_HEAPS = 4;
const RING_HEAPS = 8;
const POOL_HEAPS = 16;
const GRACE_MS = 1000;
const SYNC_IDLE_MS = 300;
const BENCH_DEADLINE = Date.now() + 170_000; // the whole bench stays under 3 minutes
const MiB = 1 << 20;

function makeStream(heapSize: number): { pool: MemoryPool; stream: recv.Stream; port: number; bufferSize: number } {
  const pool = new MemoryPool(0, heapSize + 8192, POOL_HEAPS, POOL_HEAPS);
  const stream = new recv.Stream(
    new recv.StreamConfig({ maxHeaps: MAX_HEAPS, memoryAllocator: pool }),
    new recv.RingStreamConfig({ heaps: RING_HEAPS }),
  );
  const { port, bufferSize } = stream.addUdpReader(0, { bindHostname: "127.0.0.1" });
  return { pool, stream, port, bufferSize };
}

/** Child mode: one run with the blocking iterator; JSON lines on stdout. */
function childSync(heapSize: number): void {
  const cpu0 = process.cpuUsage();
  const { pool, stream, port, bufferSize } = makeStream(heapSize);
  console.log(JSON.stringify({ port, rcvbuf: bufferSize }));
  let heaps = 0;
  let first = 0;
  let last = 0;
  const deadline = Date.now() + 60_000;
  for (;;) {
    let heap;
    try {
      heap = stream.getBlocking(heaps === 0 ? 15_000 : SYNC_IDLE_MS);
    } catch (err) {
      if (err instanceof Stopped || err instanceof Empty) break;
      throw err;
    }
    const t = performance.now();
    if (!heap.isEndOfStream()) {
      if (heaps === 0) first = t;
      last = t;
      heaps++;
    }
    heap.release();
    if (Date.now() > deadline) break;
  }
  stream.stop();
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ heaps, first, last, cpu: (cpu.user + cpu.system) / 1e6 }));
  stream.close();
  pool.close();
}

const childAt = cliArgs.indexOf("--child-sync");
if (childAt >= 0) {
  childSync(Number(cliArgs[childAt + 1]));
  process.exit(0);
}

const runtime = isBun
  ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `Deno ${Deno!.version.deno} (V8 ${Deno!.version.v8})`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A helper process spoken to in JSON lines; every wait for a line is bounded. */
class LineProc {
  #child;
  #buf = "";
  #waiters: Array<(line: string) => void> = [];
  #lines: string[] = [];
  #stderr = "";

  constructor(cmd: string, args: string[]) {
    this.#child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.#child.stdout!.on("data", (d: Uint8Array) => {
      this.#buf += new TextDecoder().decode(d);
      let nl;
      while ((nl = this.#buf.indexOf("\n")) >= 0) {
        const line = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        const w = this.#waiters.shift();
        if (w) w(line);
        else this.#lines.push(line);
      }
    });
    this.#child.stderr!.on("data", (d: Uint8Array) => (this.#stderr += new TextDecoder().decode(d)));
  }

  /** The next stdout line as JSON. */
  async read<T>(what: string, timeoutMs = 20_000): Promise<T> {
    const line = this.#lines.shift() ?? await new Promise<string>((resolve, reject) => {
      const done = (l: string) => {
        clearTimeout(timer);
        resolve(l);
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        this.kill();
        reject(new Error(`helper timed out on ${what}: ${this.#stderr.slice(-2000)}`));
      }, timeoutMs);
      this.#waiters.push(done);
    });
    return JSON.parse(line) as T;
  }

  request<T>(obj: unknown, timeoutMs = 20_000): Promise<T> {
    this.#child.stdin!.write(JSON.stringify(obj) + "\n");
    return this.read<T>(JSON.stringify(obj), timeoutMs);
  }

  kill(): void {
    this.#child.kill("SIGKILL");
  }

  close(): void {
    this.#child.stdin!.end();
    const child = this.#child;
    const t = setTimeout(() => child.kill("SIGKILL"), 2000) as unknown as { unref?: () => void };
    t.unref?.();
  }
}

interface Case {
  heapSize: number;
  packetSize: number;
  /** Sender rate limit in bytes/s (spead2 counts packet bytes); 0 = unlimited. */
  rate: number;
  heaps: number;
}

interface Run {
  heaps: number;
  mbs: number;
  senderMbs: number;
  /** Receiver process CPU seconds (user + system, all threads) per GB of received payload. */
  cpuPerGB: number;
}

interface SendReply {
  seconds: number;
  heaps: number;
}

interface RxReport {
  heaps: number;
  first: number | null;
  last: number | null;
  cpu: number;
}

const sender = new LineProc(python, [helper, "sender"]);
const spead2rx = new LineProc(python, [helper, "receiver"]);
/** SO_RCVBUF as each receiver's socket reports it. */
const rcvbuf: Record<string, number> = {};

function send(port: number, c: Case): Promise<SendReply> {
  return sender.request<SendReply>({
    port,
    heaps: c.heaps,
    heap_size: c.heapSize,
    packet_size: c.packetSize,
    rate: c.rate,
  });
}

/** `firstMs`/`lastMs` on any one clock, in milliseconds. */
function toRun(c: Case, tx: SendReply, heaps: number, firstMs: number, lastMs: number, cpu: number): Run {
  const span = (lastMs - firstMs) / 1000;
  return {
    heaps,
    mbs: heaps > 1 && span > 0 ? ((heaps - 1) * c.heapSize) / span / 1e6 : 0,
    senderMbs: (tx.heaps * c.heapSize) / tx.seconds / 1e6,
    cpuPerGB: heaps > 0 ? cpu / ((heaps * c.heapSize) / 1e9) : NaN,
  };
}

async function runOurs(c: Case): Promise<Run> {
  const cpu0 = process.cpuUsage();
  const { pool, stream, port, bufferSize } = makeStream(c.heapSize);
  rcvbuf.ours = bufferSize;
  let heaps = 0;
  let first = 0;
  let last = 0;
  const drain = (async () => {
    for await (const heap of stream) {
      const t = performance.now();
      if (!heap.isEndOfStream()) {
        if (heaps === 0) first = t;
        last = t;
        heaps++;
      }
      heap.release();
    }
  })();
  try {
    const tx = await send(port, c);
    const ended = await Promise.race([drain.then(() => true), sleep(GRACE_MS).then(() => false)]);
    if (!ended) {
      stream.stop();
      await drain;
    }
    const cpu = process.cpuUsage(cpu0);
    return toRun(c, tx, heaps, first, last, (cpu.user + cpu.system) / 1e6);
  } finally {
    stream.close();
    pool.close();
  }
}

async function runOursSync(c: Case): Promise<Run> {
  const flags = isBun ? [] : ["run", "--allow-ffi", "--allow-env"];
  const child = new LineProc(process.execPath, [...flags, `${root}/bench/recv.ts`, "--child-sync", String(c.heapSize)]);
  try {
    const { port, rcvbuf: buf } = await child.read<{ port: number; rcvbuf: number }>("child start", 15_000);
    rcvbuf.oursSync = buf;
    const tx = await send(port, c);
    const r = await child.read<RxReport>("child result", 10_000);
    return toRun(c, tx, r.heaps, r.first ?? 0, r.last ?? 0, r.cpu);
  } finally {
    child.close();
  }
}

async function runSpead2(c: Case): Promise<Run> {
  const { port, rcvbuf: buf } = await spead2rx.request<{ port: number; rcvbuf: number }>({
    cmd: "listen",
    heap_size: c.heapSize,
    max_heaps: MAX_HEAPS,
    ring_heaps: RING_HEAPS,
    pool_heaps: POOL_HEAPS,
  });
  rcvbuf.spead2 = buf;
  const tx = await send(port, c);
  const r = await spead2rx.request<RxReport>({ cmd: "wait", timeout: GRACE_MS / 1000 });
  return toRun(c, tx, r.heaps, (r.first ?? 0) * 1000, (r.last ?? 0) * 1000, r.cpu);
}

const receivers = [
  { key: "ours", label: "ours, `for await`", run: runOurs },
  { key: "oursSync", label: "ours, blocking `for`", run: runOursSync },
  { key: "spead2", label: "spead2", run: runSpead2 },
] as const;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

type Summary = Omit<Run, never> & { n: number };

/** RUNS runs of each receiver on one case, alternating; medians. */
async function measure(c: Case): Promise<Record<string, Summary>> {
  const runs: Record<string, Run[]> = {};
  for (const r of receivers) runs[r.key] = [];
  for (let i = 0; i < RUNS; i++) {
    for (const r of receivers) {
      if (Date.now() > BENCH_DEADLINE) break;
      runs[r.key].push(await r.run(c));
    }
  }
  const out: Record<string, Summary> = {};
  for (const r of receivers) {
    const rs = runs[r.key];
    const med = (f: (x: Run) => number) => (rs.length ? median(rs.map(f)) : NaN);
    out[r.key] = {
      n: rs.length,
      heaps: med((x) => x.heaps),
      mbs: med((x) => x.mbs),
      senderMbs: med((x) => x.senderMbs),
      cpuPerGB: med((x) => x.cpuPerGB),
    };
  }
  return out;
}

const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "–");
const size = (b: number) => (b >= MiB ? `${b / MiB} MiB` : `${b / 1024} KiB`);
const rateText = (r: number) => (r === 0 ? "unlimited" : `${r / 1e6} MB/s`);

interface Info {
  spead2: string;
  python: string;
  cpu: string;
  cpus: number;
  rmem_max: number | null;
  kernel: string;
  loadavg: number;
}

const info = await spead2rx.request<Info>({ cmd: "info" });
const t0 = performance.now();

// Warm-up: JIT, pools, sockets, page cache; not recorded.
for (const r of receivers) await r.run({ heapSize: MiB, packetSize: 8972, rate: 1e9, heaps: 100 });

const RATE = 1e9;
const cases: Case[] = [
  { heapSize: MiB, packetSize: 1472, rate: RATE, heaps: quick ? 150 : 800 },
  { heapSize: MiB, packetSize: 8972, rate: RATE, heaps: quick ? 150 : 800 },
  { heapSize: 8192, packetSize: 8972, rate: RATE, heaps: quick ? 10000 : 60000 },
];

const main: string[] = [
  "| heap | packet | rate limit | receiver | heaps recv/sent | sender MB/s | recv MB/s | **÷ spead2** | recv CPU s/GB |",
  "|---|---|---|---|---|---|---|---|---|",
];
for (const c of cases) {
  const m = await measure(c);
  for (const r of receivers) {
    const x = m[r.key];
    const ratio = r.key === "spead2" ? "" : `**${fmt(x.mbs / m.spead2.mbs, 2)}**`;
    main.push(
      `| ${size(c.heapSize)} | ${c.packetSize} | ${rateText(c.rate)} | ${r.label} | ${fmt(x.heaps)}/${c.heaps} | ` +
        `${fmt(x.senderMbs)} | ${fmt(x.mbs)} | ${ratio} | ${fmt(x.cpuPerGB, 2)} |`,
    );
  }
}

// Ladder: highest rate (1 MiB heaps, 8972-byte packets) where the median run delivers >= 99% of the heaps.
const ladderRates = quick ? [500e6, 1000e6, 2000e6, 0] : [250e6, 500e6, 1000e6, 1500e6, 2000e6, 3000e6, 0];
const ladder: string[] = [
  `| rate limit | ${receivers.map((r) => `heaps: ${r.label}`).join(" | ")} | ${receivers.map((r) => `MB/s: ${r.label}`).join(" | ")} |`,
  `|---|${receivers.map(() => "---|---|").join("")}`,
];
const best: Record<string, string> = {};
const alive: Record<string, boolean> = {};
for (const r of receivers) [best[r.key], alive[r.key]] = ["none", true];
for (const rate of ladderRates) {
  if (Date.now() > BENCH_DEADLINE - 20_000) {
    ladder.push(`| ${rateText(rate)} | (skipped: time budget) |${" |".repeat(2 * receivers.length - 1)}`);
    continue;
  }
  // about half a second of data per run at the rate limit; at least 150 heaps so that 99% means something
  const n = Math.max(150, Math.min(quick ? 600 : 1500, Math.round(((rate || 3e9) * (quick ? 0.25 : 0.5)) / MiB)));
  const m = await measure({ heapSize: MiB, packetSize: 8972, rate, heaps: n });
  for (const r of receivers) {
    const ok = m[r.key].n > 0 && m[r.key].heaps >= 0.99 * n;
    if (ok && alive[r.key]) best[r.key] = rateText(rate);
    if (!ok) alive[r.key] = false;
  }
  ladder.push(
    `| ${rateText(rate)} | ${receivers.map((r) => `${fmt(m[r.key].heaps)}/${n}`).join(" | ")} | ` +
      `${receivers.map((r) => fmt(m[r.key].mbs)).join(" | ")} |`,
  );
}
ladder.push(
  `| **highest rate with ≥ 99% of heaps** | ${receivers.map((r) => `**${best[r.key]}**`).join(" | ")} |${
    receivers.map(() => " |").join("")
  }`,
);

const infoEnd = await spead2rx.request<Info>({ cmd: "info" });
const elapsed = (performance.now() - t0) / 1000;
sender.close();
spead2rx.close();

console.log(`## UDP receive on 127.0.0.1: ours (${runtime}) vs spead2 ${info.spead2} (Python ${info.python})

Conditions: ${info.cpus} CPUs (${info.cpu}), Linux ${info.kernel}; load average ${info.loadavg.toFixed(2)} before, ${
  infoEnd.loadavg.toFixed(2)
} after. **Only ${info.cpus} cores**: the sender (Python + its I/O thread) and the receiver (reader thread + consumer) share them, so these figures measure contention as much as code. rmem_max ${info.rmem_max}; every receiver asks for an 8 MiB socket buffer (SO_RCVBUF reads ${rcvbuf.ours} ours, ${rcvbuf.oursSync} ours sync, ${rcvbuf.spead2} spead2) and enables UDP GRO. Sender: spead2 ${info.spead2} asyncio UdpStream, tutorial 11 batching; its rate limit counts packet bytes. Receivers: max_heaps ${MAX_HEAPS}, ring ${RING_HEAPS}, MemoryPool(0, heap + 8192, ${POOL_HEAPS}, ${POOL_HEAPS}); heaps released without reading the data. Medians of ${RUNS} run(s) per receiver, receivers alternating. recv MB/s = payload of the received heaps / time between the first and the last heap popped: the sender's pace bounds it, and on ${info.cpus} cores a receiver that takes more CPU slows the sender, hence the sender column per receiver. recv CPU = the receiver process's user + system time, all threads, per GB received (ours, \`for await\` includes this orchestrating process's small share).

${main.join("\n")}

Rate ladder, 1 MiB heaps, 8972-byte packets, median of ${RUNS} run(s) per rung (a rung counts if the median run gets ≥ 99% of the heaps and every lower rung did):

${ladder.join("\n")}

(bench time ${elapsed.toFixed(1)} s)`);
