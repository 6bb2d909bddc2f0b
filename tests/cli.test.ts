// The command-line tools (cli/): spead-send -> spead-recv with --verify, each
// against spead2's own Python tools (spead2_send.py / spead2_recv.py from the
// PyPI wheel in .venv), bad options and a busy port. Loopback only; every
// child has a deadline and is killed at the end.
import { describe, expect, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { root, runtimeCommand } from "./helpers.ts";
import { capture, frame, heapPackets, ipv4, udp } from "./pcap_helpers.ts";

const venvBin = `${root}/.venv/bin`;

interface Run {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  done: Promise<number | null>;
}

function start(exe: string, args: string[], deadlineMs = 60_000): Run {
  const child = spawn(exe, args, { stdio: ["ignore", "pipe", "pipe"] });
  const run: Run = { child, stdout: "", stderr: "", done: Promise.resolve(null) };
  child.stdout!.on("data", (b: Uint8Array) => (run.stdout += new TextDecoder().decode(b)));
  child.stderr!.on("data", (b: Uint8Array) => (run.stderr += new TextDecoder().decode(b)));
  const timer = setTimeout(() => child.kill("SIGKILL"), deadlineMs);
  run.done = new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve(code);
    })
  );
  return run;
}

function tool(name: "recv" | "send", args: string[]): Run {
  const [exe, pre] = runtimeCommand(`${root}/cli/${name}.ts`);
  return start(exe, [...pre, ...args]);
}

/** spead-bench needs the network permission under Deno (its control connection is TCP). */
function bench(args: string[]): Run {
  const [exe, pre] = runtimeCommand(`${root}/cli/bench.ts`);
  return start(exe, "Bun" in globalThis ? [...pre, ...args] : ["run", "-A", `${root}/cli/bench.ts`, ...args]);
}

function python(script: string, args: string[]): Run {
  const path = `${venvBin}/${script}`;
  if (!existsSync(path)) throw new Error(`${path} is missing: run scripts/setup.sh (it installs spead2)`);
  return start(`${venvBin}/python`, [path, ...args]);
}

/** A UDP port that is free now (bound to port 0 and released). */
async function freePort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", () => resolve()));
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * Waits until `owner` has bound the UDP port (a bind there fails with
 * EADDRINUSE); false if `owner` exits first (e.g. the port was taken meanwhile).
 */
async function boundBy(owner: Run, port: number, deadlineMs = 30_000): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (owner.child.exitCode !== null) return false;
    const s = createSocket("udp4");
    const taken = await new Promise<boolean>((resolve) => {
      s.once("error", () => resolve(true));
      s.bind(port, "127.0.0.1", () => resolve(false));
    });
    await new Promise<void>((resolve) => {
      try {
        s.close(() => resolve());
      } catch {
        resolve();
      }
    });
    if (taken) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`UDP port ${port} not bound within ${deadlineMs} ms: ${owner.stderr}`);
}

/** spead2_recv.py on a free port of 127.0.0.1, once it is listening (up to 3 ports tried). */
async function pythonReceiver(): Promise<{ rx: Run; port: number }> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const rx = python("spead2_recv.py", [`127.0.0.1:${port}`]);
    if (await boundBy(rx, port)) return { rx, port };
    await rx.done;
  }
  throw new Error("spead2_recv.py could not bind a free port in 3 attempts");
}

/** Waits for `pattern` on a child's stderr; returns the match. */
async function onStderr(run: Run, pattern: RegExp, deadlineMs = 20_000): Promise<RegExpExecArray> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const m = pattern.exec(run.stderr);
    if (m) return m;
    if (run.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${pattern} on stderr: ${run.stderr}`);
}

/** The port spead-recv reports on stderr (`receiving on 127.0.0.1:PORT`). */
async function reportedPort(run: Run): Promise<number> {
  return Number((await onStderr(run, /receiving on 127\.0\.0\.1:(\d+)/))[1]);
}

describe("spead-send and spead-recv", () => {
  test("spead-send --verify -> spead-recv --verify: every heap, payloads checked, spead2's summary lines", async () => {
    const rx = tool("recv", ["--verify", "--mem-pool", "--interval", "0.5", "127.0.0.1:0"]);
    try {
      const port = await reportedPort(rx);
      const tx = tool("send", ["--verify", "--heaps", "40", "--items", "2", "--heap-size", "65536", "--rate", "0.01", `127.0.0.1:${port}`]);
      expect(await tx.done).toBe(0);
      expect(tx.stdout).toMatch(/^Sent \d+ bytes in [\d.]+ seconds, [\d.]+ Gb\/s\n$/);
      expect(await rx.done).toBe(0);
      expect(rx.stdout).toContain("Received heap 1 at ");
      expect(rx.stdout).toContain("0x1001 = [32768 bytes]");
      expect(rx.stdout).toContain("\nReceived 40 heaps\nheaps: ");
      expect(rx.stdout).toMatch(/\nincomplete_heaps_evicted: 0\n/);
      expect(rx.stderr).toMatch(/spead-recv: \d+ heaps, [\d.]+ MB\/s, \d+ incomplete/);
    } finally {
      rx.child.kill();
    }
  });

  test("--verify catches a wrong payload: spead2_send.py's zeros fail the check (exit 1)", async () => {
    const rx = tool("recv", ["--verify", "--quiet", "--interval", "0", "127.0.0.1:0"]);
    try {
      const port = await reportedPort(rx);
      const tx = python("spead2_send.py", ["--heaps", "3", "--heap-size", "8192", "--rate", "0.1", `127.0.0.1:${port}`]);
      expect(await tx.done).toBe(0);
      expect(await rx.done).toBe(1);
      expect(rx.stderr).toContain("Verification mismatch in heap 1");
    } finally {
      rx.child.kill();
    }
  });

  test("spead2_send.py -> spead-recv: the heap count", async () => {
    const rx = tool("recv", ["--quiet", "--interval", "0", "127.0.0.1:0"]);
    try {
      const port = await reportedPort(rx);
      const tx = python("spead2_send.py", ["--heaps", "30", "--heap-size", "16384", "--rate", "0.1", `127.0.0.1:${port}`]);
      expect(await tx.done).toBe(0);
      expect(tx.stdout).toMatch(/^Sent \d+ bytes in/);
      expect(await rx.done).toBe(0);
      expect(rx.stdout.startsWith("Received 30 heaps\n")).toBe(true);
    } finally {
      rx.child.kill();
    }
  });

  test("spead-recv replays a pcap capture given instead of host:port (as spead2_recv)", async () => {
    const dir = mkdtempSync(`${tmpdir()}/spead-cli-pcap-`);
    try {
      const path = `${dir}/capture.pcap`;
      writeFileSync(path, capture(heapPackets(0, 12, 30000, 8972).map((p) => frame("ethernet", ipv4(udp(p, 7148)))), "ethernet"));
      const rx = tool("recv", ["--quiet", "--interval", "0", path]);
      expect(await rx.done).toBe(0);
      expect(rx.stdout.startsWith("Received 12 heaps\n")).toBe(true);
      expect(rx.stderr).toContain(`replaying ${path}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("spead-send -> spead2_recv.py: every heap arrives and its item is listed", async () => {
    const { rx, port } = await pythonReceiver();
    try {
      const tx = tool("send", ["--heaps", "25", "--heap-size", "16384", "--rate", "0.1", `127.0.0.1:${port}`]);
      expect(await tx.done).toBe(0);
      expect(await rx.done).toBe(0);
      const heaps = rx.stdout.split("\n").filter((l) => /^Received heap \d+ on stream/.test(l));
      expect(heaps.length).toBe(25);
      expect(rx.stdout).toContain("Test item 0");
      expect(rx.stdout).toMatch(/Shutting down stream .* after 25 heaps/);
    } finally {
      rx.child.kill();
    }
  });

  test("--tcp: spead-send --verify -> spead-recv --verify over one connection; spead2_send.py --tcp -> spead-recv --tcp", async () => {
    const rx = tool("recv", ["--tcp", "--verify", "--interval", "0", "127.0.0.1:0"]);
    try {
      const port = Number((await onStderr(rx, /receiving on 127\.0\.0\.1:(\d+) \(TCP\)/))[1]);
      const tx = tool("send", ["--tcp", "--verify", "--heaps", "30", "--items", "2", "--heap-size", "65536", "--packet", "65536", `127.0.0.1:${port}`]);
      expect(await tx.done).toBe(0);
      expect(tx.stdout).toMatch(/^Sent \d+ bytes in [\d.]+ seconds, [\d.]+ Gb\/s\n$/);
      expect(await rx.done).toBe(0);
      expect(rx.stdout).toContain("0x1001 = [32768 bytes]");
      expect(rx.stdout).toContain("\nReceived 30 heaps\nheaps: ");
      expect(rx.stdout).toMatch(/\npackets_rejected_oversize: 0\n/);
    } finally {
      rx.child.kill();
    }
    const rx2 = tool("recv", ["--tcp", "--quiet", "--interval", "0", "127.0.0.1:0"]);
    try {
      const port = Number((await onStderr(rx2, /receiving on 127\.0\.0\.1:(\d+) \(TCP\)/))[1]);
      const tx = python("spead2_send.py", ["--tcp", "--heaps", "20", "--heap-size", "100000", "--packet", "8972", `127.0.0.1:${port}`]);
      expect(await tx.done).toBe(0);
      expect(await rx2.done).toBe(0);
      expect(rx2.stdout.startsWith("Received 20 heaps\n")).toBe(true);
    } finally {
      rx2.child.kill();
    }
    const two = tool("send", ["--tcp", "127.0.0.1:9", "127.0.0.1:10"]);
    expect(await two.done).toBe(2);
    expect(two.stderr).toContain("only one destination is supported with TCP");
  });

  test("bad options and a busy port: one clear line and exit status 2", async () => {
    const bad = tool("recv", ["--packet", "10", "127.0.0.1:0"]);
    expect(await bad.done).toBe(2);
    expect(bad.stderr).toContain("spead-recv: option '--packet': 10 is outside 56..65536");
    const unknown = tool("send", ["--bogus", "127.0.0.1:9"]);
    expect(await unknown.done).toBe(2);
    expect(unknown.stderr).toContain("spead-send: unrecognised option '--bogus'");
    const noPort = tool("send", ["127.0.0.1"]);
    expect(await noPort.done).toBe(2);
    expect(noPort.stderr).toContain("is not of the form host:port");

    const first = tool("recv", ["--interval", "0", "127.0.0.1:0"]);
    try {
      const port = await reportedPort(first);
      const second = tool("recv", [`127.0.0.1:${port}`]);
      expect(await second.done).toBe(2);
      expect(second.stderr).toContain(`spead-recv: EADDRINUSE: bind 127.0.0.1:${port}`);
    } finally {
      first.child.kill();
      await first.done;
    }
  });
});

describe("spead-bench", () => {
  test("mem: spead2's two result lines", async () => {
    const run = bench(["mem", "--heap-size", "65536", "--data", "4e6", "--passes", "2"]);
    expect(await run.done).toBe(0);
    expect(run.stdout).toMatch(/^Transferred \d+ bytes in [\d.]+ seconds\n[\d.e+-]+ Gbps\n$/);
  });

  test("master -> agent over loopback: a sustainable rate, and the measurements as SVG", async () => {
    const port = await freePort();
    const agent = bench(["agent", `127.0.0.1:${port}`]);
    const dir = mkdtempSync(`${tmpdir()}/spead-bench-`);
    try {
      await onStderr(agent, /control and data on/);
      const svg = `${dir}/bench.svg`;
      const master = bench([
        "master", `127.0.0.1:${port}`, "--heap-size", "65536", "--data", "1e6", "--passes", "1", "--svg", svg,
      ]);
      expect(await master.done).toBe(0);
      expect(master.stdout).toMatch(/Sustainable rate: [\d.]+ Gbps\n$/);
      const chart = readFileSync(svg, "utf8");
      expect(chart.startsWith("<svg")).toBe(true);
      expect(chart).toContain("Sustainable rate:");
    } finally {
      agent.child.kill("SIGINT");
      await agent.done;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
