/**
 * Where libspead comes from, in order (ffi/mod.ts opens the first that loads):
 *
 * 1. `SPEAD_LIB_PATH`, an explicit path to the shared library;
 * 2. the platform package of an npm install (`@spead/linux-x64-gnu`, ...),
 *    an optional dependency of `spead` chosen by npm/Bun/Deno from `os`/`cpu`;
 * 3. under Deno, the per-version cache, filled by a checksum-verified download
 *    of the release asset for this platform (ffi/download.ts; the JSR package);
 * 4. a local build, `../zig-out/lib/libspead.so` next to this module (a
 *    checkout after `scripts/zig build`); only when this module is a file, so a
 *    URL import never becomes a bogus local path.
 *
 * Each place either yields a path or says why not; the loader's error lists them all.
 */
import { createRequire } from "node:module";
import { platformPackages } from "./platforms.ts";

/** One place the loader looked, and what it found. */
export interface Place {
  /** Short name of the place ("SPEAD_LIB_PATH", "platform package", ...). */
  readonly where: string;
  /** The path to try, or undefined when the place gave none. */
  readonly path: string | undefined;
  /** Why no path, or why it failed to load (filled in by the loader). */
  note: string;
  /** The fix to print when this place is the one the user should use. */
  readonly fix: string;
}

interface RuntimeInfo {
  readonly isDeno: boolean;
  readonly os: string;
  readonly arch: string;
}

interface DenoEnv {
  build: { os: string; arch: string };
  env: { get(key: string): string | undefined };
  permissions: { querySync(desc: { name: string; variable?: string }): { state: string } };
}

function deno(): DenoEnv | undefined {
  return (globalThis as unknown as { Deno?: DenoEnv }).Deno;
}

/** The runtime, OS and CPU, in Node's names (`linux`, `x64`, `arm64`). */
export function runtimeInfo(): RuntimeInfo {
  const D = deno();
  if (D) {
    const arch = D.build.arch === "x86_64" ? "x64" : D.build.arch === "aarch64" ? "arm64" : D.build.arch;
    return { isDeno: true, os: D.build.os, arch };
  }
  const p = (globalThis as unknown as { process?: { platform: string; arch: string } }).process;
  return { isDeno: false, os: p?.platform ?? "unknown", arch: p?.arch ?? "unknown" };
}

/** This platform's key, as in the platform packages' names: `linux-x64-gnu`. */
export function platformKey(info: RuntimeInfo = runtimeInfo()): string {
  return info.os === "linux" ? `linux-${info.arch}-gnu` : `${info.os}-${info.arch}`;
}

/**
 * Reads an environment variable. Under Deno without `--allow-env` for it, the
 * result says so (`denied`), so that an override is reported, never ignored.
 */
export function readEnv(name: string): { value: string | undefined; denied: boolean } {
  const D = deno();
  if (D) {
    // The prompt state counts as not granted: the loader never prompts.
    if (D.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return { value: undefined, denied: true };
    }
    return { value: D.env.get(name) || undefined, denied: false };
  }
  const env = (globalThis as unknown as { process?: { env: Record<string, string | undefined> } }).process?.env;
  return { value: env?.[name] || undefined, denied: false };
}

function fromEnv(): Place {
  const { value, denied } = readEnv("SPEAD_LIB_PATH");
  return {
    where: "SPEAD_LIB_PATH",
    path: value,
    note: denied ? "not readable without --allow-env (run with --allow-env=SPEAD_LIB_PATH)" : "not set",
    fix: "set SPEAD_LIB_PATH to the path of libspead.so",
  };
}

function fromPlatformPackage(moduleUrl: string, key: string): Place {
  const name = platformPackages[key];
  const fix = name ? `install the platform package: npm install ${name} (or bun add ${name})` : "";
  if (!name) {
    return {
      where: "platform package",
      path: undefined,
      note: `none is built for ${key} (served: ${Object.keys(platformPackages).join(", ")})`,
      fix,
    };
  }
  if (!moduleUrl.startsWith("file:")) {
    return { where: `platform package ${name}`, path: undefined, note: "not looked for (this module is not a file)", fix };
  }
  try {
    const path = createRequire(moduleUrl).resolve(`${name}/libspead.so`);
    return { where: `platform package ${name}`, path, note: "", fix };
  } catch {
    return { where: `platform package ${name}`, path: undefined, note: "not installed", fix };
  }
}

function fromLocalBuild(moduleUrl: string): Place {
  const fix = "build it in a checkout: bash scripts/setup.sh && scripts/zig build";
  if (!moduleUrl.startsWith("file:")) {
    return { where: "local build", path: undefined, note: `not looked for (this module is ${moduleUrl})`, fix };
  }
  const path = decodeURIComponent(new URL("../zig-out/lib/libspead.so", moduleUrl).pathname);
  return { where: "local build", path, note: "", fix };
}

/**
 * The places to try before any download, in order. `moduleUrl` is the
 * `import.meta.url` of the module that stands at ffi/ depth (ffi/mod.ts, or a
 * file of the bundle in dist/).
 */
export function placesBeforeDownload(moduleUrl: string, key: string): Place[] {
  return [fromEnv(), fromPlatformPackage(moduleUrl, key)];
}

/** The last resort: a build in the checkout. */
export function placeLocalBuild(moduleUrl: string): Place {
  return fromLocalBuild(moduleUrl);
}

/**
 * The one error message for a failed load: the platform, every place tried
 * with what happened there, and the fix.
 */
export function notFoundMessage(key: string, places: readonly Place[], runtime: string): string {
  const lines = places.map((p) => `  - ${p.where}${p.path ? ` (${p.path})` : ""}: ${p.note}`);
  const fixes = [...new Set(places.map((p) => p.fix).filter((f) => f))];
  return `cannot load libspead for ${key} under ${runtime}. Tried, in order:\n${lines.join("\n")}\n` +
    `Fix: ${fixes.join("; or ")}.`;
}
