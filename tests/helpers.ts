/** Shared test helpers: hex, the project root, the interop Python. */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { Flavour, send } from "../mod.ts";

export const root = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
export const python = `${root}/.venv/bin/python`;

/**
 * The command that runs a TS script under the runtime running the tests:
 * `[executable, args]` (Deno gets the flags the library needs, plus `denoFlags`).
 */
export function runtimeCommand(script: string, denoFlags: readonly string[] = []): [string, string[]] {
  const exe = (globalThis as unknown as { process: { execPath: string } }).process.execPath;
  if ("Bun" in globalThis) return [exe, [script]];
  // -A (which Deno needs to read /proc/self) may not be combined with --allow-ffi / --allow-env.
  const allow = denoFlags.includes("-A") ? [] : ["--allow-ffi", "--allow-env"];
  return [exe, ["run", ...allow, ...denoFlags, script]];
}

/** Hex string -> bytes; whitespace and `|` separators are ignored. */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/[\s|]/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Runs the spead2 interop script; returns stdout bytes. Throws with stderr on
 * failure. The interop tests are never skipped: scripts/setup.sh installs spead2.
 */
export function runInterop(args: string[], input?: Uint8Array): Uint8Array {
  if (!existsSync(python)) throw new Error(`${python} is missing: run scripts/setup.sh (it installs spead2 and numpy)`);
  const r = spawnSync(python, [`${root}/tests/interop/spead2_interop.py`, ...args], {
    input,
    maxBuffer: 64 << 20,
    timeout: 60_000,
  });
  if (r.status !== 0) {
    throw new Error(`interop ${args.join(" ")} failed (${r.status}): ${r.stderr?.toString()}`);
  }
  return new Uint8Array(r.stdout);
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** A running interop child: resolves `ready` with the first stdout line, `done` with all stdout. */
export interface InteropChild {
  ready: Promise<string>;
  done: Promise<string>;
  kill(): void;
}

/** Starts the spead2 interop script asynchronously (for receivers that must run while we send). */
export async function startInterop(args: string[], timeoutMs = 30_000): Promise<InteropChild> {
  const { spawn } = await import("node:child_process");
  const child = spawn(python, [`${root}/tests/interop/spead2_interop.py`, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let readyResolve: (line: string) => void = () => {};
  const ready = new Promise<string>((r) => (readyResolve = r));
  child.stdout!.on("data", (d: Uint8Array) => {
    out += new TextDecoder().decode(d);
    const nl = out.indexOf("\n");
    if (nl >= 0) readyResolve(out.slice(0, nl));
  });
  child.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const done = new Promise<string>((resolve, reject) => {
    child.on("close", (code: number | null) => {
      clearTimeout(timer);
      readyResolve("");
      if (code === 0) resolve(out.slice(out.indexOf("\n") + 1));
      else reject(new Error(`interop ${args.join(" ")} exited ${code}: ${err}`));
    });
  });
  return { ready, done, kill: () => child.kill("SIGKILL") };
}

/** One interop case (tests/interop/spead2_interop.py CASES). */
export interface Case {
  id: number;
  name: string;
  description: string;
  shape: Array<number | null>;
  dtype?: string;
  order?: "C" | "F";
  format?: Array<[string, number]>;
  value: unknown;
}

/** The interop cases, from the Python side (the single source of truth). */
export function loadCases(): Case[] {
  return JSON.parse(new TextDecoder().decode(runInterop(["cases"])));
}

/** The value to assign on our side for a case (C-order flat arrays in the dtype's typed array). */
export function ourValue(c: Case): unknown {
  if (c.format && c.format.length > 1) return (c.value as unknown[][]).map((r) => [...r]);
  if (c.dtype && Array.isArray(c.value)) {
    const v = c.value as number[];
    switch (c.dtype.slice(1)) {
      case "f8":
        return Float64Array.from(v);
      case "f4":
        return Float32Array.from(v);
      case "i2":
        return Int16Array.from(v);
      case "u1":
        return Uint8Array.from(v);
      case "i4":
        return Int32Array.from(v);
      case "u8":
        return BigUint64Array.from(v.map((x) => BigInt(x)));
    }
  }
  if (c.format && c.shape.length > 0 && Array.isArray(c.value)) return c.value;
  return c.value;
}




/** A send.ItemGroup holding every case with its value. */
export function caseItemGroup(cases: readonly Case[], flavour: Flavour): send.ItemGroup {
  const ig = new send.ItemGroup(null, flavour);
  for (const c of cases) {
    ig.addItem({
      id: c.id,
      name: c.name,
      description: c.description,
      shape: c.shape,
      ...(c.dtype ? { dtype: c.dtype, order: c.order ?? "C" } : { format: c.format as never }),
      value: ourValue(c) as never,
    });
  }
  return ig;
}

/** Plain JSON-comparable form of a decoded value. */
export function plainValue(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, (x) => Number(x));
  if (Array.isArray(v)) return v.map(plainValue);
  return v;
}

export function valuesMatch(actual: unknown, expected: unknown): boolean {
  if (typeof expected === "number" && typeof actual === "number") {
    return Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected));
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    return expected.length === actual.length && expected.every((e, i) => valuesMatch(actual[i], e));
  }
  return actual === expected;
}

