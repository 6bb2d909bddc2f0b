/**
 * Pieces the benchmarks share: paths, medians, JSON-lines helper processes,
 * port probes, measured child runs (CPU and page faults through
 * bench/rusage.py), the tutorial pair trial and sender runs. Not a test.
 */
import { spawn, spawnSync } from "node:child_process";

declare const Deno: { args: string[]; version: { deno: string; v8: string } } | undefined;

export const cliArgs: string[] = typeof Deno !== "undefined" ? Deno.args : process.argv.slice(2);
export const isBun = "Bun" in globalThis;
export const runtimeName = isBun
  ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `Deno ${Deno!.version.deno} (V8 ${Deno!.version.v8})`;

export const root = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
export const bunBin = `${root}/node_modules/.bin/bun`;
export const denoBin = `${root}/node_modules/.bin/deno`;
export const python = `${root}/.venv/bin/python`;
/** `deno run` with what the benchmarks' children need. */
export const denoRun = [denoBin, "run", "--allow-ffi", "--allow-env", "--allow-read", "--allow-run"];

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x));
  if (!v.length) return NaN;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A helper process spoken to in JSON lines; every wait for a line is bounded. */
export class LineProc {
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
    try {
      return JSON.parse(line) as T;
    } catch {
      throw new Error(`helper answered ${JSON.stringify(line.slice(0, 200))} to ${what}: ${this.#stderr.slice(-2000)}`);
    }
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

/** Whether some socket is bound to UDP `port` (IPv4 or IPv6). */
export function udpPortBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
  for (const f of ["/proc/net/udp", "/proc/net/udp6"]) {
    const r = spawnSync("cat", [f], { encoding: "utf8" });
    if ((r.stdout ?? "").includes(hex)) return true;
  }
  return false;
}

/** Waits (bounded) until `port` is bound; false if it never was. */
export async function waitUdpBound(port: number, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (udpPortBound(port)) return true;
    await sleep(25);
  }
  return false;
}

let nextPort = 20000 + (Math.floor(Math.random() * 400) * 50);
/** A UDP port on nothing bound right now, for programs that take a fixed port. */
export function freeUdpPort(): number {
  for (let i = 0; i < 200; i++) {
    const p = nextPort++;
    if (nextPort > 40000) nextPort = 20000;
    if (!udpPortBound(p)) return p;
  }
  throw new Error("no free UDP port found");
}

/** What bench/rusage.py reports about one finished command. */
export interface Measured {
  rc: number;
  interrupted: boolean;
  /** CPU seconds of the command (user + system, all threads). */
  cpu: number;
  minflt: number;
  /** CPU seconds of the command's busiest thread (sampled; NaN if unknown). */
  busiestThreadCpu: number;
  stdout: string;
}

/** A command running under bench/rusage.py; `interrupt()` sends it SIGINT (then SIGKILL). */
export interface MeasuredRun {
  interrupt(): void;
  done: Promise<Measured>;
}

export function runMeasured(cmd: string, args: string[], timeoutS: number): MeasuredRun {
  const child = spawn(python, [`${root}/bench/rusage.py`, String(timeoutS), cmd, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
  child.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
  const done = new Promise<Measured>((resolve, reject) => {
    child.on("close", () => {
      try {
        const r = JSON.parse(out.trim().split("\n").pop() ?? "");
        resolve({
          rc: r.rc,
          interrupted: r.interrupted,
          cpu: r.user + r.sys,
          minflt: r.minflt,
          busiestThreadCpu: r.busiest_thread_cpu ?? NaN,
          stdout: r.stdout,
        });
      } catch {
        reject(new Error(`${cmd.split("/").pop()}: no report (${err.slice(-1000)})`));
      }
    });
  });
  return { interrupt: () => child.kill("SIGTERM"), done };
}

/** Load average over 1, 5 and 15 minutes. */
export function loadAverage(): string {
  return (spawnSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).stdout ?? "").split(" ").slice(0, 3).join(" ");
}

/**
 * One tutorial-pair trial: start the receiver on `port`, wait until it is
 * bound, run the sender to completion, give the receiver `graceMs` to see the
 * end heap, then stop it. Returns the heaps it reported ("Received N heaps",
 * else its per-heap lines) and its measured cost.
 */
export async function pairTrial(
  recvCmd: string[],
  sendCmd: string[],
  port: number,
  graceMs = 5000,
): Promise<{ heaps: number; rx: Measured; sendStdout: string }> {
  const rx = runMeasured(recvCmd[0], recvCmd.slice(1), 300);
  await waitUdpBound(port);
  await sleep(300); // the receiver binds before its loop starts; be generous
  const tx = spawnSync(sendCmd[0], sendCmd.slice(1), { timeout: 120_000, encoding: "utf8" });
  const timer = setTimeout(() => rx.interrupt(), graceMs);
  const r = await rx.done;
  clearTimeout(timer);
  const m = /Received (\d+) heaps/.exec(r.stdout);
  return { heaps: m ? Number(m[1]) : (r.stdout.match(/^Timestamp:/gm) ?? []).length, rx: r, sendStdout: tx.stdout ?? "" };
}

/** Runs a sender that prints "X MB/s"; returns X (NaN on failure, with the reason on stderr). */
export function runSender(cmd: string, args: string[], timeoutMs = 120_000): number {
  const r = spawnSync(cmd, args, { timeout: timeoutMs, encoding: "utf8" });
  const m = /([0-9.e+]+) MB\/s/.exec(r.stdout ?? "");
  if (r.status !== 0 || !m) {
    console.error(`  ${cmd.split("/").pop()} ${args.slice(0, 3).join(" ")} failed (${r.status}): ${(r.stderr ?? "").slice(0, 300)}`);
    return NaN;
  }
  return Number(m[1]);
}
