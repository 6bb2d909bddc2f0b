/**
 * Loads libspead with the backend of the current runtime.
 *
 * Search order (ffi/locate.ts): `SPEAD_LIB_PATH`, the npm platform package
 * (`@spead/linux-x64-gnu`, ...), under Deno the download cache (the JSR
 * package; ffi/download.ts), then a local build `../zig-out/lib/libspead.so`
 * relative to this module (also right for the esbuild bundle in dist/, at the
 * same depth). On failure one `SpeadError("library_not_found")` names every
 * place tried, the platform and the fix. Under Deno this needs `--allow-ffi`.
 */
import { fail, SpeadError, setSystemErrorSource } from "../src/errors.ts";
import { bindLib, type Lib } from "./abi.gen.ts";
import { placeDownload } from "./download.ts";
import { notFoundMessage, type Place, placeLocalBuild, placesBeforeDownload, platformKey } from "./locate.ts";
import { releaseChecksums, releaseVersion } from "./release.ts";
import type { Backend } from "./symbols.ts";

export type { Backend, NativeFunction } from "./symbols.ts";
export { protocol, Status } from "./abi.gen.ts";
export type { Lib, NonblockingLib } from "./abi.gen.ts";

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

async function load(): Promise<Backend> {
  if (!isBun && !isDeno) {
    throw new SpeadError("library_not_found", "unsupported runtime (spead needs Bun or Deno)");
  }
  const open = isBun ? (await import("./bun.ts")).open : (await import("./deno.ts")).open;
  const key = platformKey();
  const tried: Place[] = [];
  const attempt = (place: Place): Backend | undefined => {
    tried.push(place);
    if (!place.path) return undefined;
    try {
      const lib = open(place.path);
      // An explicit override that failed is said, not silently replaced.
      const override = tried[0];
      if (override !== place && override.where === "SPEAD_LIB_PATH" && override.path) {
        console.warn(`spead: SPEAD_LIB_PATH=${override.path} not loaded (${override.note}); using ${place.path}`);
      }
      return lib;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      place.note = msg;
      if (isDeno && /ffi|NotCapable|PermissionDenied/i.test(`${msg} ${(err as Error)?.name ?? ""}`)) {
        throw new SpeadError(
          "library_not_found",
          `Deno needs --allow-ffi to load libspead: run with --allow-ffi.\n${notFoundMessage(key, tried, "Deno")}`,
        );
      }
      return undefined;
    }
  };
  for (const place of placesBeforeDownload(import.meta.url, key)) {
    const lib = attempt(place);
    if (lib) return lib;
  }
  if (isDeno) {
    const lib = attempt(await placeDownload(key, { version: releaseVersion, checksums: releaseChecksums }));
    if (lib) return lib;
  }
  const lib = attempt(placeLocalBuild(import.meta.url));
  if (lib) return lib;
  throw new SpeadError("library_not_found", notFoundMessage(key, tried, isBun ? "Bun" : "Deno"));
}

function readText(
  read: (out: Uint8Array, cap: number, len: Uint32Array) => number,
): string | undefined {
  const out = new Uint8Array(128);
  const len = new Uint32Array(1);
  if (read(out, out.length, len) !== 0) return undefined;
  return new TextDecoder().decode(out.subarray(0, len[0]));
}

/** Wires the native record of failed system calls into SpeadError (src/errors.ts). */
function connectSystemErrors(lib: Backend): void {
  const name = (errno: number) => readText((o, c, l) => lib.symbols.spead_errno_name(errno, o, c, l));
  const errnoOut = new Uint32Array(1);
  setSystemErrorSource(() => {
    const syscall = readText((o, c, l) => lib.symbols.spead_last_error(errnoOut, o, c, l));
    const errno = errnoOut[0];
    if (syscall === undefined || errno === 0) return undefined;
    return { errno: name(errno) ?? `errno ${errno}`, errnoNumber: errno, syscall };
  }, name);
}

/** The loaded native library (one per process). Outside ffi/, call it through {@link lib}. */
export const native: Backend = await load();
connectSystemErrors(native);

/**
 * The typed facade over the library (generated with the symbols: ffi/abi.gen.ts
 * `bindLib`): one method per export with named parameters; a failed call
 * throws a SpeadError naming its status, and the statuses an export reports
 * as results (empty, stopped, ...; zig/abi/table.zig `results`) are returned.
 * The only way src/ calls the library.
 */
export const lib: Lib = bindLib(native.symbols, native.asyncSymbols, fail);

/**
 * At process exit every native thread of the library is stopped and joined,
 * whether or not the program closed its streams and pools (issue #8): Deno
 * tears the runtime down after `unload`, Bun after `exit`. Objects stay valid;
 * the library also pins itself in memory (zig/abi/lifecycle.zig), so a thread
 * can never outlive its code.
 */
function shutdownAtExit(): void {
  native.symbols.spead_shutdown();
}
if (isDeno) {
  (globalThis as unknown as { addEventListener(type: string, fn: () => void): void }).addEventListener(
    "unload",
    shutdownAtExit,
  );
} else {
  (globalThis as unknown as { process: { once(event: string, fn: () => void): void } }).process.once(
    "exit",
    shutdownAtExit,
  );
}
