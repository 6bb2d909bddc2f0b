#!/usr/bin/env bun
/**
 * spead-bench: spead2's `spead2_bench` — `agent` receives on a port and
 * answers a TCP control connection; `master` sends to an agent at rising
 * rates and bisects for the highest rate at which (nearly) every heap arrives;
 * `mem` times decoding an in-memory stream. The control protocol is
 * spead2_bench's (`start`, `name = value` lines, `end_config`, `ready`,
 * `stop` -> heap count, `exit`), so either side can be spead2's.
 * `--svg FILE` writes the master's measurements as a chart.
 * @module
 */
import { connect, createServer, type Socket } from "node:net";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { MemoryPool, recv, send } from "../mod.ts";
import { type OptionSpec, type Parsed, parseEndpoint, runTool, type ToolSpec, UsageError } from "./common.ts";

const common: Record<string, OptionSpec> = {
  quiet: { kind: "flag", help: "Print only the final result" },
  "heap-size": { kind: "int", help: "Payload size for heap", default: 4194304, min: 1 },
  packet: { kind: "int", help: "Maximum packet size to use", default: 9172, min: 56, max: 65507 },
  "addr-bits": { kind: "int", help: "Heap address bits", default: 40, min: 8, max: 56 },
  "mem-pool": { kind: "flag", help: "Use a memory pool" },
  "concurrent-heaps": { kind: "int", help: "Maximum number of in-flight heaps, per substream", default: 4, min: 1 },
  "ring-heaps": { kind: "int", help: "Ring buffer capacity in heaps", default: 4, min: 1 },
};

const spec: ToolSpec = {
  name: "spead-bench",
  usage: "master <host>:<port> [options] | agent [host:]<port> | mem [options]",
  description: "spead2_bench's three modes. master bisects for the sustainable rate against an agent\n" +
    "(spead-bench agent or spead2_bench agent); mem times in-memory decoding.",
  options: {
    ...common,
    multicast: { kind: "string", help: "Multicast group to use, instead of unicast (master)" },
    "send-buffer": { kind: "int", help: "Socket buffer size (sender)", default: 512 * 1024, min: 0 },
    "recv-buffer": { kind: "int", help: "Socket buffer size (receiver)", default: 8 * 1024 * 1024, min: 0 },
    "max-heaps": { kind: "int", help: "Maximum heaps in flight (sender)", default: 4, min: 1 },
    data: { kind: "number", help: "Bytes per measurement (spead2: 1e9; mem: 1 GiB)", min: 1 },
    passes: { kind: "int", help: "Runs per measurement (spead2: 5; mem: 100)", min: 1 },
    svg: { kind: "string", help: "Write the master's measurements (or the mem result) as an SVG chart" },
  },
  examples: [
    "spead-bench agent 8888                            # on the receiving host",
    "spead-bench master 127.0.0.1:8888 --heap-size 1048576 --svg bench.svg",
    "spead-bench mem --heap-size 65536 --passes 10",
  ],
};

/** The receiver options an agent takes from a master's `start` block (spead2's wire names). */
interface AgentConfig {
  packet: number;
  buffer: number;
  concurrentHeaps: number;
  ringHeaps: number;
  memPool: boolean;
  memLower: number;
  memUpper: number;
  memMaxFree: number;
  memInitial: number;
  multicast: string | undefined;
}

/**
 * The `start` block a master sends: spead2_bench's wire options (multicast,
 * protocol and receiver options, `name = value`), only names spead2's agent
 * knows; as spead2, the pool's lower bound is the heap size.
 */
function configLines(o: Parsed["values"]): string[] {
  return [
    `multicast = ${(o.multicast as string | undefined) ?? ""}`,
    "tcp = 0",
    "pyspead = 0",
    `packet = ${o.packet}`,
    `buffer = ${o["recv-buffer"]}`,
    `concurrent-heaps = ${o["concurrent-heaps"]}`,
    `ring-heaps = ${o["ring-heaps"]}`,
    `mem-pool = ${o["mem-pool"] ? 1 : 0}`,
    `mem-lower = ${o["heap-size"]}`,
    `mem-upper = ${Math.max(o["heap-size"] as number, 32 * 1024 * 1024)}`,
  ];
}

function parseConfig(lines: readonly string[]): AgentConfig {
  const c: AgentConfig = {
    packet: 9200,
    buffer: 8 * 1024 * 1024,
    concurrentHeaps: 4,
    ringHeaps: 4,
    memPool: false,
    memLower: 16384,
    memUpper: 32 * 1024 * 1024,
    memMaxFree: 12,
    memInitial: 8,
    multicast: undefined,
  };
  const numbers: Record<string, keyof AgentConfig> = {
    packet: "packet",
    buffer: "buffer",
    "concurrent-heaps": "concurrentHeaps",
    "ring-heaps": "ringHeaps",
    "mem-lower": "memLower",
    "mem-upper": "memUpper",
    "mem-max-free": "memMaxFree",
    "mem-initial": "memInitial",
  };
  for (const line of lines) {
    const m = /^\s*([\w-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    const [, key, value] = m;
    const field = numbers[key];
    if (field && Number.isSafeInteger(Number(value)) && Number(value) >= 0) (c as unknown as Record<string, number>)[field] = Number(value);
    else if (key === "mem-pool") c.memPool = value === "1" || value === "true";
    else if (key === "multicast") c.multicast = value || undefined;
  }
  return c;
}

/** Reads lines from a socket. */
class LineReader {
  #buffer = "";
  #waiters: Array<(line: string | null) => void> = [];
  #lines: string[] = [];
  #closed = false;

  constructor(socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf("\n")) >= 0) {
        this.#push(this.#buffer.slice(0, nl).replace(/\r$/, ""));
        this.#buffer = this.#buffer.slice(nl + 1);
      }
    });
    socket.on("close", () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w(null);
    });
    socket.on("error", () => {});
  }

  #push(line: string): void {
    const w = this.#waiters.shift();
    if (w) w(line);
    else this.#lines.push(line);
  }

  /** The next line, or null once the connection closed. */
  next(): Promise<string | null> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** A receiving stream of the agent, counting heaps until stopped. */
class AgentReceiver {
  readonly #stream: recv.Stream;
  readonly #pool: MemoryPool | undefined;
  readonly #done: Promise<number>;

  constructor(c: AgentConfig, host: string, port: number) {
    this.#pool = c.memPool ? new MemoryPool(c.memLower, c.memUpper, c.memMaxFree, c.memInitial) : undefined;
    const stream = new recv.Stream(
      new recv.StreamConfig({ maxHeaps: c.concurrentHeaps, memoryAllocator: this.#pool }),
      new recv.RingStreamConfig({ heaps: c.ringHeaps }),
    );
    this.#stream = stream;
    const options = { maxSize: c.packet, bufferSize: c.buffer };
    if (c.multicast) stream.addUdpReader(c.multicast, port, options);
    else stream.addUdpReader(port, { ...options, bindHostname: host });
    this.#done = (async () => {
      let n = 0;
      for await (const heap of stream) {
        n++;
        heap.release();
      }
      return n;
    })();
  }

  /** Stops and returns the number of heaps received. */
  async stop(): Promise<number> {
    this.#stream.stop();
    const n = await this.#done;
    this.#stream.close();
    this.#pool?.close();
    return n;
  }
}

async function agent(positional: string[], quiet: boolean): Promise<number> {
  if (positional.length !== 1) throw new UsageError("agent needs one [host:]port");
  const [host, port] = parseEndpoint(positional[0], "0.0.0.0");
  const server = createServer(async (socket) => {
    const lines = new LineReader(socket);
    let receiver: AgentReceiver | undefined;
    for (;;) {
      const line = await lines.next();
      if (line === null || line === "exit") break;
      if (line === "start") {
        const config: string[] = [];
        for (;;) {
          const l = await lines.next();
          if (l === null || l === "end_config") break;
          config.push(l);
        }
        if (receiver) {
          console.error("Start received while already running");
          continue;
        }
        try {
          receiver = new AgentReceiver(parseConfig(config), host, port);
        } catch (err) {
          console.error(`spead-bench agent: ${err instanceof Error ? err.message : String(err)}`);
          break;
        }
        socket.write("ready\n");
      } else if (line === "stop") {
        if (!receiver) {
          console.error("Stop received when already stopped");
          continue;
        }
        const n = await receiver.stop();
        receiver = undefined;
        if (!quiet) console.error(n);
        socket.write(`${n}\n`);
      } else {
        console.error(`Bad command: ${line}`);
      }
    }
    if (receiver) await receiver.stop();
    socket.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  console.error(`spead-bench agent: control and data on ${host}:${port}`);
  await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  server.close();
  return 0;
}

/** One measurement: `numHeaps` heaps at `rate` bytes/s; whether >= required arrived, and the send rate. */
async function measureOnce(
  o: Parsed["values"],
  host: string,
  port: number,
  rate: number,
  numHeaps: number,
  required: number,
): Promise<{ good: boolean; actual: number }> {
  const socket = connect(port, host);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  const lines = new LineReader(socket);
  try {
    socket.write(["start", ...configLines(o), "end_config", ""].join("\n"));
    const response = await lines.next();
    if (response !== "ready") throw new UsageError(`agent did not answer 'ready' (got ${JSON.stringify(response)})`);
    const target = (o.multicast as string | undefined) ?? host;
    const heapSize = o["heap-size"] as number;
    const data = new Uint8Array(heapSize);
    const heap = new send.Heap();
    heap.addRaw(0x1234, data, false);
    const end = new send.Heap();
    end.addEnd();
    const inFlight = o["max-heaps"] as number;
    const stream = new send.UdpStream(
      [[target, port]],
      new send.StreamConfig({ maxPacketSize: o.packet as number, rate, maxHeaps: inFlight }),
      { bufferSize: o["send-buffer"] as number },
    );
    const start = performance.now();
    let bytes = 0;
    const pending: Promise<void>[] = [];
    for (let i = 0; i <= numHeaps; i++) {
      if (pending.length >= inFlight) await pending.shift();
      pending.push(stream.asyncSendHeap(i < numHeaps ? heap : end).then((n) => {
        bytes += n;
      }));
    }
    await Promise.all(pending);
    const actual = bytes / ((performance.now() - start) / 1e3);
    stream.close();
    await new Promise((r) => setTimeout(r, 100));
    socket.write("stop\n");
    const received = Number(await lines.next());
    return { good: received >= required, actual };
  } finally {
    socket.end();
  }
}

interface Step {
  rate: number;
  actual: number;
  good: boolean;
}

async function master(o: Parsed["values"], positional: string[]): Promise<number> {
  if (positional.length !== 1) throw new UsageError("master needs the agent's host:port");
  const [host, port] = parseEndpoint(positional[0], undefined);
  const heapSize = o["heap-size"] as number;
  const data = (o.data as number | undefined) ?? 1e9;
  const passes = (o.passes as number | undefined) ?? 5;
  const quiet = Boolean(o.quiet);
  const measure = async (rate: number, numHeaps: number, required: number) => {
    let good = true;
    let sum = 0;
    for (let i = 0; i < passes; i++) {
      const r = await measureOnce(o, host, port, rate, numHeaps, required);
      good &&= r.good;
      sum += r.actual;
    }
    return { good, actual: sum / passes };
  };
  const steps: Step[] = [];
  let numHeaps = Math.floor(data / heapSize) + 2;
  await measureOnce(o, host, port, 0, numHeaps, 0); // warm-up
  const first = await measure(0, numHeaps, numHeaps - 1);
  let best = 0;
  if (first.good) {
    if (!quiet) console.log("Limited by send speed");
    best = first.actual;
    steps.push({ rate: 0, actual: first.actual, good: true });
  } else {
    if (!quiet) console.log(`Send rate: ${(first.actual * 8e-9).toFixed(3)} Gbps`);
    steps.push({ rate: 0, actual: first.actual, good: false });
    let low = 0;
    let high = first.actual;
    while (high - low > high * 0.02) {
      const rate = (low + high) / 2;
      numHeaps = Math.floor(Math.max(data, rate) / heapSize) + 2;
      const r = await measure(rate, numHeaps, numHeaps - 1);
      steps.push({ rate, actual: r.actual, good: r.good });
      if (!quiet) {
        console.log(
          `Rate: ${(rate * 8e-9).toFixed(3)} Gbps (${(r.actual * 8e-9).toFixed(3)} actual): ${r.good ? "GOOD" : "BAD"}`,
        );
      }
      if (r.good) {
        low = rate;
        best = r.actual;
      } else high = rate;
    }
  }
  const gbps = best * 8e-9;
  console.log(quiet ? String(gbps) : `Sustainable rate: ${gbps.toFixed(3)} Gbps`);
  if (o.svg) writeFileSync(o.svg as string, chart(`spead-bench master ${host}:${port}, heap ${heapSize} B`, steps, gbps));
  return 0;
}

/** A bar chart of the measurements (send rate achieved, green GOOD / red BAD). */
function chart(title: string, steps: readonly Step[], resultGbps: number): string {
  const w = 640;
  const rowH = 22;
  const left = 190;
  const top = 40;
  const h = top + steps.length * rowH + 40;
  const max = Math.max(...steps.map((s) => s.actual * 8e-9), resultGbps, 1e-9);
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const rows = steps.map((s, i) => {
    const y = top + i * rowH;
    const bw = ((s.actual * 8e-9) / max) * (w - left - 80);
    const label = s.rate === 0 ? "unlimited" : `${(s.rate * 8e-9).toFixed(3)} Gb/s`;
    return `<text x="${left - 8}" y="${y + 15}" text-anchor="end">${label}</text>` +
      `<rect x="${left}" y="${y + 3}" width="${bw.toFixed(1)}" height="${rowH - 6}" fill="${
        s.good ? "#2e7d32" : "#c62828"
      }"/>` +
      `<text x="${(left + bw + 6).toFixed(1)}" y="${y + 15}">${(s.actual * 8e-9).toFixed(3)} ${
        s.good ? "GOOD" : "BAD"
      }</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">
<text x="10" y="20" font-size="14">${esc(title)}</text>
<text x="${left - 8}" y="34" text-anchor="end" fill="#555">rate asked</text>
<text x="${left}" y="34" fill="#555">rate achieved (Gb/s)</text>
${rows.join("\n")}
<text x="10" y="${h - 12}" font-size="13">Sustainable rate: ${resultGbps.toFixed(3)} Gb/s</text>
</svg>
`;
}

async function mem(o: Parsed["values"]): Promise<number> {
  const heapSize = o["heap-size"] as number;
  const dataTarget = (o.data as number | undefined) ?? 1024 * 1024 * 1024;
  const passes = (o.passes as number | undefined) ?? 100;
  const numHeaps = Math.floor(dataTarget / heapSize) + 1;
  const out = new send.BytesStream(new send.StreamConfig({ maxPacketSize: o.packet as number }));
  const heap = new send.Heap();
  heap.addRaw(0x1234, new Uint8Array(heapSize), false);
  const end = new send.Heap();
  end.addEnd();
  for (let i = 0; i < numHeaps; i++) out.sendHeap(i < numHeaps - 1 ? heap : end);
  const bytes = out.getValue();
  const pool = o["mem-pool"] ? new MemoryPool(heapSize, heapSize + 1024, 12, 8) : undefined;
  let elapsed = 0;
  for (let pass = 0; pass < passes; pass++) {
    const stream = new recv.Stream(
      new recv.StreamConfig({ maxHeaps: o["concurrent-heaps"] as number, memoryAllocator: pool }),
      new recv.RingStreamConfig({ heaps: o["ring-heaps"] as number }),
    );
    const start = performance.now();
    stream.addBufferReader(bytes);
    for await (const h of stream) h.release();
    elapsed += (performance.now() - start) / 1e3;
    stream.close();
  }
  pool?.close();
  const gbps = bytes.byteLength * passes / elapsed * 8e-9;
  if (o.quiet) console.log(String(gbps));
  else console.log(`Transferred ${bytes.byteLength} bytes in ${elapsed.toFixed(6)} seconds\n${gbps} Gbps`);
  if (o.svg) {
    writeFileSync(
      o.svg as string,
      chart(`spead-bench mem, heap ${heapSize} B, ${passes} passes`, [{ rate: 0, actual: gbps / 8e-9, good: true }], gbps),
    );
  }
  return 0;
}

await runTool(spec, async ({ values: o, positional }) => {
  const [mode, ...rest] = positional;
  if (mode === "agent") return await agent(rest, Boolean(o.quiet));
  if (mode === "master") return await master(o, rest);
  if (mode === "mem") {
    if (rest.length) throw new UsageError(`mem takes no positional arguments (got ${rest.join(" ")})`);
    return await mem(o);
  }
  throw new UsageError(mode ? `unknown mode '${mode}' (master, agent or mem)` : "a mode is required: master, agent or mem");
});

