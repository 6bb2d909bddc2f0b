/**
 * Loads libspead with the backend of the current runtime.
 *
 * Search order: `SPEAD_LIB_PATH` (an absolute path to the shared library), then
 * the build output `../zig-out/lib/libspead.<ext>` relative to this module
 * (also right for the esbuild bundle in dist/, which sits at the same depth).
 * Under Deno this needs `--allow-ffi` (and `--allow-env` to honour SPEAD_LIB_PATH).
 */
import type { Backend } from "./symbols.ts";

export type { Backend, NativeFunction } from "./symbols.ts";

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

interface DenoRuntime {
  build: { os: string };
  env: { get(key: string): string | undefined };
  permissions: { querySync(desc: { name: string; variable?: string }): { state: string } };
}

function platformExt(): string {
  const os = isDeno
    ? (globalThis as unknown as { Deno: DenoRuntime }).Deno.build.os
    : (globalThis as unknown as { process?: { platform: string } }).process?.platform ?? "linux";
  if (os === "darwin") return "dylib";
  if (os === "windows" || os === "win32") return "dll";
  return "so";
}

function envOverride(): string | undefined {
  if (isDeno) {
    const D = (globalThis as unknown as { Deno: DenoRuntime }).Deno;
    const perm = D.permissions.querySync({ name: "env", variable: "SPEAD_LIB_PATH" });
    if (perm.state !== "granted") return undefined;
    return D.env.get("SPEAD_LIB_PATH") || undefined;
  }
  return (globalThis as unknown as { process?: { env: Record<string, string | undefined> } }).process?.env
    .SPEAD_LIB_PATH || undefined;
}

function candidates(): string[] {
  const ext = platformExt();
  const out: string[] = [];
  const env = envOverride();
  if (env) out.push(env);
  const dir = ext === "dll" ? "bin" : "lib";
  const file = ext === "dll" ? "spead.dll" : `libspead.${ext}`;
  out.push(decodeURIComponent(new URL(`../zig-out/${dir}/${file}`, import.meta.url).pathname));
  return out;
}

async function load(): Promise<Backend> {
  if (!isBun && !isDeno) {
    throw new Error("spead: unsupported runtime (needs Bun or Deno)");
  }
  const tried: string[] = [];
  const open = isBun ? (await import("./bun.ts")).open : (await import("./deno.ts")).open;
  for (const path of candidates()) {
    try {
      return open(path);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      tried.push(`  ${path}: ${msg}`);
      if (isDeno && /ffi|NotCapable|PermissionDenied/i.test(`${msg} ${(err as Error)?.name ?? ""}`)) {
        throw new Error(
          `spead: Deno needs --allow-ffi to load libspead (and --allow-env to honour SPEAD_LIB_PATH).\n` +
            tried.join("\n"),
        );
      }
    }
  }
  throw new Error(
    `spead: cannot load libspead. Tried (SPEAD_LIB_PATH, then the build output):\n${tried.join("\n")}\n` +
      `Build it with \`bash scripts/setup.sh && zig build\` or set SPEAD_LIB_PATH.`,
  );
}

/** The loaded native library (one per process). */
export const native: Backend = await load();
