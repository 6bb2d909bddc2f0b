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
