/** Shared test helpers: hex, the project root, the interop Python. */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

export const root = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
export const python = `${root}/.venv/bin/python`;
export const hasPython = existsSync(python);

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

/** Runs the spead2 interop script; returns stdout bytes. Throws with stderr on failure. */
export function runInterop(args: string[], input?: Uint8Array): Uint8Array {
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
