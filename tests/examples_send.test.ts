/**
 * The tutorial senders (examples/tut_*_send*.ts) run as child processes of
 * the runtime running this file, sending to our recv.Stream on 127.0.0.1 in
 * this process: output line format, exit status, and the heaps that arrived
 * (cnt, immediate timestamp, samples, descriptors, end of stream).
 */
import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import process from "node:process";
import { recv } from "../mod.ts";
import { root, runtimeCommand } from "./helpers.ts";

const CHILD_TIMEOUT_MS = 8000;
const RATE_LINE = /^\d+\.\d\d MB\/s$/;

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `examples/<name>.ts args...`; SIGKILLs it after `timeoutMs`. */
function runExample(name: string, args: readonly string[], timeoutMs = CHILD_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [exe, scriptArgs] = runtimeCommand(`${root}/examples/${name}.ts`);
    const child = spawn(exe, [...scriptArgs, ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code: number | null) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What the receiver saw of one heap. */
interface Got {
  cnt: number;
  timestampImmediate: boolean;
  timestamp: number;
  samples: number;
  first: number;
  last: number;
  min: number;
  max: number;
  descriptors: number;
}

interface Receiver {
  port: number;
  heaps: Got[];
  /** True once the end-of-stream heap ended the iteration. */
  ended(): boolean;
  /** Waits up to `graceMs` for the end of stream, then stops the stream; returns the heaps. */
  finish(graceMs?: number): Promise<Got[]>;
}

/** Our receiver on 127.0.0.1:`port` (0 = any free port), drained by `for await`, every heap released. */
function startReceiver(port = 0): Receiver {
  const rx = new recv.Stream(new recv.StreamConfig({ maxHeaps: 8 }), new recv.RingStreamConfig({ heaps: 64 }));
  let info: recv.UdpReaderInfo;
  try {
    info = rx.addUdpReader(port, { bindHostname: "127.0.0.1", maxSize: 9200 });
  } catch (err) {
    rx.close();
    throw err;
  }
  const heaps: Got[] = [];
  let ended = false;
  const drain = (async () => {
    for await (const heap of rx) {
      const items = heap.getItems();
      const ts = items.find((x) => x.id === 0x1600);
      const adc = items.find((x) => x.id === 0x3300);
      let min = 0;
      let max = 0;
      let first = 0;
      let last = 0;
      if (adc) {
        const s = new Int8Array(adc.value.buffer, adc.value.byteOffset, adc.value.byteLength);
        min = 127;
        max = -128;
        for (let j = 0; j < s.length; j++) {
          if (s[j] < min) min = s[j];
          if (s[j] > max) max = s[j];
        }
        first = s[0];
        last = s[s.length - 1];
      }
      heaps.push({
        cnt: Number(heap.cnt),
        timestampImmediate: ts?.isImmediate ?? false,
        timestamp: ts ? Number(ts.isImmediate ? ts.immediateValue : -1) : -1,
        samples: adc?.value.byteLength ?? 0,
        first,
        last,
        min,
        max,
        descriptors: heap.getDescriptors().length,
      });
      heap.release();
    }
    ended = true;
  })();
  return {
    port: info.port,
    heaps,
    ended: () => ended,
    async finish(graceMs = 2000) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([drain, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
      rx.stop();
      await drain;
      rx.close();
      return heaps;
    },
  };
}

/** Asserts heaps 0..n-1 of a tutorial sender: cnt i+1, immediate timestamp i*heapSize, samples filled with int8(i). */
function expectFilledHeaps(heaps: Got[], n: number, heapSize: number): void {
  expect(heaps).toHaveLength(n);
  for (let i = 0; i < n; i++) {
    const h = heaps[i];
    const fill = ((i + 128) % 256) - 128;
    expect(h.cnt).toBe(i + 1);
    expect(h.timestampImmediate).toBe(true);
    expect(h.timestamp).toBe(i * heapSize);
    expect(h.samples).toBe(heapSize);
    expect([h.min, h.max]).toEqual([fill, fill]);
  }
}

async function runAgainstReceiver(name: string, args: readonly string[]): Promise<{ run: RunResult; rx: Receiver }> {
  const rx = startReceiver();
  const run = await runExample(name, [...args, "127.0.0.1", String(rx.port)]);
  await rx.finish();
  return { run, rx };
}

describe("tutorial senders as subprocesses -> recv.Stream on 127.0.0.1", () => {
  test("tut_2_send: ten random 1 MiB heaps and the end heap, no output", async () => {
    const rx = startReceiver();
    const run = await runExample("tut_2_send", ["127.0.0.1", String(rx.port)]);
    await rx.finish();
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("");
    expect(rx.ended()).toBe(true);
    const heaps = rx.heaps;
    expect(heaps).toHaveLength(10);
    heaps.forEach((h, i) => {
      expect(h.cnt).toBe(i + 1);
      expect(h.timestamp).toBe(i * 1024 * 1024);
      expect(h.samples).toBe(1024 * 1024);
      expect(h.min).toBeGreaterThanOrEqual(-100);
      expect(h.max).toBeLessThan(100);
      expect(h.max - h.min).toBeGreaterThan(150); // random, not a constant fill
      expect(h.descriptors).toBe(i === 0 ? 2 : 0);
    });
  });

  test("tut_2_send with no arguments sends to spead2's 127.0.0.1:8888 (skipped if the port is busy)", async () => {
    let rx: Receiver;
    try {
      rx = startReceiver(8888);
    } catch {
      console.warn("examples_send: 127.0.0.1:8888 is busy; default-port check skipped");
      return;
    }
    const run = await runExample("tut_2_send", []);
    await rx.finish();
    expect(run.code).toBe(0);
    expect(rx.heaps).toHaveLength(10);
    expect(rx.ended()).toBe(true);
  });

  for (const [name, args] of [
    ["tut_4_send_perf", ["-n", "4"]],
    ["tut_5_send_pipeline", ["-n", "4"]],
    ["tut_6_send_pktsize", ["-n", "4", "-p", "8972"]],
  ] as const) {
    test(`${name} ${args.join(" ")}: "<x> MB/s" and every 1 MiB heap`, async () => {
      const { run, rx } = await runAgainstReceiver(name, args);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(run.stdout.trimEnd()).toMatch(RATE_LINE);
      expect(rx.ended()).toBe(true);
      expectFilledHeaps(rx.heaps, 4, 1024 * 1024);
      expect(rx.heaps[0].descriptors).toBe(2);
      expect(rx.heaps[1].descriptors).toBe(0);
    });
  }

  test("tut_8_send_reuse_memory -n 12 -H 65536 -p 9000: double-buffered samples arrive unmixed", async () => {
    const { run, rx } = await runAgainstReceiver("tut_8_send_reuse_memory", ["-n", "12", "-H", "65536", "-p", "9000"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd()).toMatch(RATE_LINE);
    expect(rx.ended()).toBe(true);
    expectFilledHeaps(rx.heaps, 12, 65536);
    expect(rx.heaps.map((h) => h.descriptors)).toEqual([2, ...Array(11).fill(0)]);
  });

  test("tut_10_send_reuse_heaps -n 300 -H 8192 -p 9000: reused heaps, timestamps as immediates", async () => {
    const { run, rx } = await runAgainstReceiver("tut_10_send_reuse_heaps", ["-n", "300", "-H", "8192", "-p", "9000"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd()).toMatch(RATE_LINE);
    expect(rx.ended()).toBe(true);
    expectFilledHeaps(rx.heaps, 300, 8192);
    expect(rx.heaps.map((h) => h.descriptors)).toEqual([2, ...Array(299).fill(0)]);
  });

  test("tut_11_send_batch_heaps -n 150 -H 8192: SERIAL batches of 64 and a short last batch", async () => {
    const { run, rx } = await runAgainstReceiver("tut_11_send_batch_heaps", ["-n", "150", "-H", "8192"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd()).toMatch(RATE_LINE);
    expect(rx.ended()).toBe(true);
    expectFilledHeaps(rx.heaps, 150, 8192);
    expect(rx.heaps.map((h) => h.descriptors)).toEqual([2, ...Array(149).fill(0)]);
  });

  test("tut_11_send_batch_heaps -H 700000 (batches of one heap) -p 4000", async () => {
    const { run, rx } = await runAgainstReceiver("tut_11_send_batch_heaps", ["-n", "3", "-H", "700000", "-p", "4000"]);
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd()).toMatch(RATE_LINE);
    expectFilledHeaps(rx.heaps, 3, 700000);
  });

  test("command-line errors exit 2 with a usage line; -h prints usage", async () => {
    const missing = await runExample("tut_4_send_perf", ["-n", "3"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("usage: tut_4_send_perf.ts [-h] [-n HEAPS] host port");
    const bad = await runExample("tut_8_send_reuse_memory", ["-H", "big", "127.0.0.1", "9"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("invalid int value: 'big'");
    const help = await runExample("tut_11_send_batch_heaps", ["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("[-n HEAPS] [-p PACKET_SIZE] [-H HEAP_SIZE] host port");
  });
});
