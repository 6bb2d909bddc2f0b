/**
 * Issue #8 regressions that need a process of their own: each scenario runs
 * as a child of the current runtime several times, and every run must exit 0
 * (a segfault is exit 139 / signal SIGSEGV). Every child is bounded in time.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { root, runtimeCommand } from "./helpers.ts";

interface Run {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function runFixture(
  fixture: string,
  args: string[],
  timeoutMs = 30_000,
  denoFlags: readonly string[] = ["--allow-run", "--allow-read"],
): Run {
  const [exe, scriptArgs] = runtimeCommand(`${root}/tests/fixtures/${fixture}`, denoFlags);
  const r = spawnSync(exe, [...scriptArgs, ...args], { cwd: root, timeout: timeoutMs, killSignal: "SIGKILL" });
  return { status: r.status, signal: r.signal, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "") };
}

/** Runs the scenario `times` times; every run must exit 0 and print `expect`. */
function repeatClean(fixture: string, args: string[], times: number, expectOut: RegExp): void {
  const failures: string[] = [];
  for (let i = 0; i < times; i++) {
    const r = runFixture(fixture, args);
    if (r.status !== 0 || !expectOut.test(r.stdout)) {
      failures.push(`run ${i + 1}: status ${r.status} signal ${r.signal}\n${r.stdout}${r.stderr.slice(-2000)}`);
    }
  }
  expect(failures).toEqual([]);
}

describe("a JS buffer detached while its send is in flight", () => {
  // Deno used to fail the send with EFAULT (or crash with SIGSEGV in the packetiser's copy)
  // in every run: JS memory is now copied at submit (src/send/item_table.ts).
  test("GSO send of 9000-byte packets from a detached 64 MiB ArrayBuffer", () => {
    repeatClean("detach_in_flight.ts", ["64", "2"], 3, /sent 2 heaps/);
  }, 120_000);
  test("copied packets (no GSO) from a detached 64 MiB ArrayBuffer", () => {
    repeatClean("detach_in_flight.ts", ["64", "2", "nogso"], 3, /sent 2 heaps/);
  }, 120_000);
});

describe("clean exit without close()", () => {
  // Deno used to dlclose libspead under a live UDP reader thread (exit 139 in 3 of 10 runs
  // of the first scenario): the library now pins itself and stops its threads at exit.
  test("leaving a receive loop early while spead2's sender is still sending (stream, pool unclosed)", () => {
    repeatClean("exit_unclosed.ts", ["spead2", "200", "10"], 6, /received 10 heaps/);
  }, 120_000);

  test("receiving to the end of stream from our own sender, nothing closed", () => {
    repeatClean("exit_unclosed.ts", ["ours", "30"], 4, /received \d+ heaps/);
  }, 120_000);
});

describe("objects dropped without close() are reclaimed by GC", () => {
  // Bun used to keep every send stream whose doorbell existed (the callback's closure held the
  // stream): the 256th failed with capacity_exceeded. The doorbells now hold a WeakRef.
  test("300 send streams, 35 receive streams after an async get(), pools, buffers: UDP fds and threads back to baseline", () => {
    const r = runFixture("gc_reclaim.ts", [], 90_000, ["-A", "--v8-flags=--expose-gc"]);
    expect(`${r.status} ${r.signal} ${r.stderr.slice(-1500)}`).toBe("0 null ");
    const result = JSON.parse(r.stdout.trim().split("\n").pop()!);
    expect(result.ok).toBe(true);
    expect(result.after.ours).toBe(0);
    expect(result.after.udpFds).toBe(result.baseline.udpFds);
  }, 120_000);
});
