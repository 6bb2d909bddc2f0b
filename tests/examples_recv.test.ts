/**
 * The tutorial receivers (examples/tut_3, tut_7, tut_9, tut_12) run as child processes
 * of the current runtime, fed over 127.0.0.1 by the spead2 stand-in sender
 * tests/interop/tut_send.py (and by our own tut_2 / tut_8 senders when they
 * exist). Their stdout is checked line by line against what the sender sent.
 * Every child is killed after a bounded time.
 */
import { describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { recv } from "../mod.ts";
import { python, root, runtimeCommand } from "./helpers.ts";

const MiB = 1 << 20;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

interface Child {
  pid: number;
  done: Promise<Result>;
  kill(): void;
}

function start(cmd: string, args: string[], timeoutMs: number): Child {
  const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let timedOut = false;
  child.stdout!.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
  child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const done = new Promise<Result>((resolve) => {
    child.on("close", (code: number | null) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
  return { pid: child.pid ?? 0, done, kill: () => child.kill("SIGKILL") };
}

/** An example script run under this runtime (Deno needs its permission flags). */
function startExample(script: string, args: string[], timeoutMs = 8000): Child {
  const [exe, scriptArgs] = runtimeCommand(`${root}/examples/${script}`);
  return start(exe, [...scriptArgs, ...args], timeoutMs);
}

function startSender(args: string[], timeoutMs = 8000): Child {
  return start(python, [`${root}/tests/interop/tut_send.py`, ...args], timeoutMs);
}

/** Whether some UDP socket is bound to port on any address (Linux /proc/net/udp{,6}). */
function udpBound(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // Deno wants --allow-all for /proc/net; a child `cat` only needs --allow-run.
      text = spawnSync("cat", [file], { encoding: "utf8", timeout: 2000 }).stdout ?? "";
    }
    for (const line of text.split("\n").slice(1)) {
      const local = line.trim().split(/\s+/)[1] ?? "";
      if (local.endsWith(`:${hexPort}`)) return true;
    }
  }
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port nobody is bound to: bound by a throwaway reader, closed, then seen gone. */
async function freePort(): Promise<number> {
  const s = new recv.Stream();
  const { port } = s.addUdpReader(0, { bindHostname: "127.0.0.1" });
  s.close();
  for (let i = 0; i < 50 && udpBound(port); i++) await sleep(10);
  return port;
}

/** Waits (bounded) until the receiver child has bound its socket. */
async function waitBound(port: number, child: Child, timeoutMs = 5000): Promise<void> {
  let exited = false;
  child.done.then(() => (exited = true));
  const deadline = Date.now() + timeoutMs;
  while (!udpBound(port)) {
    if (exited) throw new Error(`receiver exited before binding: ${(await child.done).stderr}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`receiver did not bind port ${port} within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

/** Runs a receiver example and a sender against it; returns both results. */
async function pair(
  script: string,
  recvArgs: (port: number) => string[],
  sender: (port: number) => Child,
): Promise<{ rx: Result; tx: Result }> {
  const port = await freePort();
  const rxChild = startExample(script, ["--bind", "127.0.0.1", ...recvArgs(port)]);
  try {
    await waitBound(port, rxChild);
  } catch (err) {
    rxChild.kill();
    throw err;
  }
  const txChild = sender(port);
  const tx = await txChild.done;
  // The receiver ends at the end-of-stream heap; if that heap is lost, its timer kills it.
  const rx = await rxChild.done;
  return { rx, tx };
}

const LINE = /^Timestamp: (\d+) *Power: (-?\d+\.\d\d)$/;

/** Parses the per-heap lines; checks the `{:<10}` padding of the timestamp. */
function parseLines(stdout: string): Array<{ timestamp: number; power: string; line: string }> {
  const out: Array<{ timestamp: number; power: string; line: string }> = [];
  for (const line of stdout.split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    expect(line.slice("Timestamp: ".length, "Timestamp: ".length + 11)).toBe(`${m[1].padEnd(10)} `);
    out.push({ timestamp: Number(m[1]), power: m[2], line });
  }
  return out;
}

/** The line our receivers must print for heap i of tut_send.py's int8(i) fill. */
function fillLine(i: number, heapSize: number): string {
  const v = ((i + 128) % 256) - 128;
  return `Timestamp: ${String(i * heapSize).padEnd(10)} Power: ${(v * v).toFixed(2)}`;
}

describe("tutorial receivers as processes, spead2 stand-in sender on 127.0.0.1", () => {
  test("tut_3_recv: tutorial 2's random heaps, one line each, power about 3333.5", async () => {
    const n = 6;
    const { rx, tx } = await pair("tut_3_recv.ts", (p) => [String(p)], (p) =>
      startSender(["--random", "-n", String(n), "--rate", "100e6", "127.0.0.1", String(p)]));
    expect(tx.code).toBe(0);
    expect(rx.timedOut).toBe(false);
    expect(rx.code).toBe(0);
    const lines = parseLines(rx.stdout);
    expect(rx.stdout.trim().split("\n")).toHaveLength(lines.length); // nothing else printed
    expect(lines.length).toBeGreaterThanOrEqual(n - 1); // UDP: allow one loss at 100 MB/s
    for (const l of lines) {
      expect(l.timestamp % MiB).toBe(0);
      // 1 MiB of uniform integers in [-100, 100): mean square 3333.5, sd of the mean about 3
      expect(Math.abs(Number(l.power) - 3333.5)).toBeLessThan(40);
    }
    expect(lines.map((l) => l.timestamp)).toEqual([...lines.map((l) => l.timestamp)].sort((a, b) => a - b));
  });

  test("tut_7_recv_power: exact power of each int8(i)-filled heap, then 'Received N heaps'", async () => {
    const n = 30;
    const { rx, tx } = await pair("tut_7_recv_power.ts", (p) => [String(p)], (p) =>
      startSender(["-n", String(n), "-p", "8972", "--rate", "150e6", "127.0.0.1", String(p)]));
    expect(tx.code).toBe(0);
    expect(tx.stdout).toMatch(/^\d+\.\d\d MB\/s\n$/);
    expect(rx.timedOut).toBe(false);
    expect(rx.code).toBe(0);
    const lines = parseLines(rx.stdout);
    expect(lines.length).toBeGreaterThanOrEqual(n - 2);
    for (const l of lines) expect(l.line).toBe(fillLine(l.timestamp / MiB, MiB));
    const all = rx.stdout.trimEnd().split("\n");
    expect(all[all.length - 1]).toBe(`Received ${lines.length} heaps`);
    expect(all).toHaveLength(lines.length + 1);
  });

  test("tut_9_recv_memory_pool -H 65536: every heap, wrapped int8 values included", async () => {
    const n = 300; // i = 128..299 wrap to negative int8 values
    const h = 65536;
    const { rx, tx } = await pair("tut_9_recv_memory_pool.ts", (p) => ["-H", String(h), String(p)], (p) =>
      startSender(["-n", String(n), "-H", String(h), "--rate", "100e6", "127.0.0.1", String(p)]));
    expect(tx.code).toBe(0);
    expect(rx.timedOut).toBe(false);
    expect(rx.code).toBe(0);
    const lines = parseLines(rx.stdout);
    expect(lines.length).toBeGreaterThanOrEqual(n - 3);
    for (const l of lines) expect(l.line).toBe(fillLine(l.timestamp / h, h));
    expect(rx.stdout.trimEnd().split("\n").pop()).toBe(`Received ${lines.length} heaps`);
  });

  test("command lines are parsed as argparse does: -h, missing port, bad value", async () => {
    const help = await startExample("tut_9_recv_memory_pool.ts", ["-h"]).done;
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: tut_9_recv_memory_pool\.ts \[-h\] \[-H HEAP_SIZE\] \[--bind BIND\] port\n/);
    const missing = await startExample("tut_9_recv_memory_pool.ts", ["-H", "4096"]).done;
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("tut_9_recv_memory_pool.ts: error: the following arguments are required: port");
    const bad = await startExample("tut_7_recv_power.ts", ["eighty"]).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("argument port: invalid int value: 'eighty'");
  });
});

describe("tutorial receivers fed by our own tutorial senders", () => {
  test("tut_2_send.ts -> tut_3_recv.ts: ten random heaps", async () => {
    if (!existsSync(`${root}/examples/tut_2_send.ts`)) return;
    const { rx, tx } = await pair("tut_3_recv.ts", (p) => [String(p)], (p) =>
      startExample("tut_2_send.ts", ["127.0.0.1", String(p)]));
    expect(tx.code).toBe(0);
    expect(rx.code).toBe(0);
    const lines = parseLines(rx.stdout);
    expect(lines.length).toBeGreaterThanOrEqual(9);
    for (const l of lines) expect(Math.abs(Number(l.power) - 3333.5)).toBeLessThan(40);
  });

  test("tut_8_send_reuse_memory.ts -> tut_9_recv_memory_pool.ts: 20 heaps of 64 KiB", async () => {
    if (!existsSync(`${root}/examples/tut_8_send_reuse_memory.ts`)) return;
    // Unlimited rate, but 20 × 64 KiB fits in the socket buffer, so nothing can be lost.
    const h = 65536;
    const { rx, tx } = await pair("tut_9_recv_memory_pool.ts", (p) => ["-H", String(h), String(p)], (p) =>
      startExample("tut_8_send_reuse_memory.ts", ["-n", "20", "-H", String(h), "-p", "9000", "127.0.0.1", String(p)]));
    expect(tx.code).toBe(0);
    expect(rx.code).toBe(0);
    const lines = parseLines(rx.stdout);
    expect(lines).toHaveLength(20);
    for (const l of lines) expect(l.line).toBe(fillLine(l.timestamp / h, h));
    expect(rx.stdout.trimEnd().split("\n").pop()).toBe("Received 20 heaps");
  });
});

/** tut_12's line for chunk `c` of `chunkHeaps` heaps of int8(i)-filled samples, heaps `skip` absent. */
function chunkLine(c: number, chunkHeaps: number, heapSize: number, skip: (i: number) => boolean): string {
  let total = 0;
  let n = 0;
  for (let k = 0; k < chunkHeaps; k++) {
    const i = c * chunkHeaps + k;
    if (skip(i)) continue;
    const v = ((i + 128) % 256) - 128;
    total += v * v;
    n++;
  }
  return `Timestamp: ${String(c * chunkHeaps * heapSize).padEnd(10)} Power: ${(total / n).toFixed(2)}`;
}

describe("tutorial 12: chunks", () => {
  const h = 8192;
  const chunkHeaps = MiB / h;

  test("spead2 stand-in sender -> tut_12_recv_chunks.ts -H 8192: one line per chunk, heap 0 (descriptors) rejected", async () => {
    const n = 256;
    const { rx, tx } = await pair("tut_12_recv_chunks.ts", (p) => ["-H", String(h), String(p)], (p) =>
      startSender(["-n", String(n), "-H", String(h), "-p", "9000", "--rate", "100e6", "127.0.0.1", String(p)]));
    expect(tx.code).toBe(0);
    expect(rx.timedOut).toBe(false);
    expect(rx.code, rx.stderr).toBe(0);
    const lines = parseLines(rx.stdout);
    expect(lines.map((l) => l.timestamp)).toEqual([0, MiB]);
    const last = rx.stdout.trimEnd().split("\n").pop()!;
    const received = Number(/^Received (\d+) heaps$/.exec(last)?.[1]);
    expect(received).toBeGreaterThanOrEqual(n - 4); // UDP on a busy machine: allow a few losses
    if (received === n - 1) {
      for (const l of lines) expect(l.line).toBe(chunkLine(l.timestamp / MiB, chunkHeaps, h, (i) => i === 0));
    }
  });

  test("tut_11_send_batch_heaps.ts -> tut_12_recv_chunks.ts: 128 heaps of 8 KiB", async () => {
    if (!existsSync(`${root}/examples/tut_11_send_batch_heaps.ts`)) return;
    // Unlimited rate, but 1 MiB fits in the socket buffer, so nothing can be lost.
    const { rx, tx } = await pair("tut_12_recv_chunks.ts", (p) => ["-H", String(h), String(p)], (p) =>
      startExample("tut_11_send_batch_heaps.ts", ["-n", "128", "-H", String(h), "-p", "9000", "127.0.0.1", String(p)]));
    expect(tx.code).toBe(0);
    expect(rx.code, rx.stderr).toBe(0);
    const lines = parseLines(rx.stdout);
    expect(lines.map((l) => l.line)).toEqual([chunkLine(0, chunkHeaps, h, (i) => i === 0)]);
    expect(rx.stdout.trimEnd().split("\n").pop()).toBe("Received 127 heaps");
  });
});
