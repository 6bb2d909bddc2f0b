/**
 * The Deno/JSR way to obtain libspead (as @db/sqlite does): a per-version
 * cache, filled by downloading this platform's release asset and verifying its
 * SHA-256 against the checksum the package carries (ffi/release.ts). A file
 * whose checksum does not match is never written to the cache nor loaded.
 *
 * Environment (each optional): `SPEAD_DOWNLOAD_URL` (base URL of the release
 * assets; the asset is `<base>/v<version>/libspead-<key>.so`),
 * `SPEAD_CACHE_DIR` (default `$XDG_CACHE_HOME/spead` or `~/.cache/spead`).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { type Place, readEnv } from "./locate.ts";

/** Where release assets are downloaded from unless `SPEAD_DOWNLOAD_URL` says otherwise. */
export const defaultDownloadUrl = "https://github.com/spead-js/spead/releases/download";

/** What {@link obtainLibrary} needs. */
export interface ObtainOptions {
  /** Platform key, e.g. `linux-x64-gnu`. */
  readonly key: string;
  /** Package version; the cache and the asset URL are per version. */
  readonly version: string;
  /** Expected SHA-256 of the asset, lower-case hex. */
  readonly sha256: string;
  /** Base URL of the release assets. */
  readonly baseUrl: string;
  /** Cache root; the file goes to `<cacheDir>/<version>/libspead-<key>.so`. */
  readonly cacheDir: string;
}

/** The asset's URL. */
export function assetUrl(o: Pick<ObtainOptions, "baseUrl" | "version" | "key">): string {
  return `${o.baseUrl.replace(/\/+$/, "")}/v${o.version}/libspead-${o.key}.so`;
}

/** The cached file's path. */
export function cachePath(o: Pick<ObtainOptions, "cacheDir" | "version" | "key">): string {
  return `${o.cacheDir.replace(/\/+$/, "")}/${o.version}/libspead-${o.key}.so`;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The path of a verified copy of the library: from the cache when its checksum
 * matches (no network), else downloaded, verified and cached. Throws an Error
 * naming the URL and what went wrong (HTTP status, checksum mismatch).
 */
export async function obtainLibrary(o: ObtainOptions): Promise<string> {
  const path = cachePath(o);
  if (existsSync(path)) {
    if (await sha256Hex(readFileSync(path)) === o.sha256) return path;
    rmSync(path, { force: true }); // a damaged or stale copy: fetch it again
  }
  const url = assetUrl(o);
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new Error(`download of ${url} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`download of ${url} failed: HTTP ${response.status} ${response.statusText}`.trimEnd());
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  const got = await sha256Hex(bytes);
  if (got !== o.sha256) {
    throw new Error(`download of ${url} refused: SHA-256 ${got} does not match the expected ${o.sha256}`);
  }
  mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const tmp = `${path}.${Date.now()}.tmp`;
  writeFileSync(tmp, bytes, { mode: 0o644 });
  renameSync(tmp, path); // atomic: a concurrent loader sees the whole file or none
  return path;
}

/** The cache root from the environment (see the module comment). */
export function defaultCacheDir(): string | undefined {
  const explicit = readEnv("SPEAD_CACHE_DIR").value;
  if (explicit) return explicit;
  const xdg = readEnv("XDG_CACHE_HOME").value;
  if (xdg) return `${xdg}/spead`;
  const home = readEnv("HOME").value;
  return home ? `${home}/.cache/spead` : undefined;
}

/** The base URL from the environment, or {@link defaultDownloadUrl}. */
export function downloadUrl(): string {
  return readEnv("SPEAD_DOWNLOAD_URL").value ?? defaultDownloadUrl;
}

/**
 * The download step of the loader (ffi/locate.ts, step 3) as a place: the
 * cached or downloaded path, or why there is none.
 */
export async function placeDownload(
  key: string,
  release: { version: string; checksums: Readonly<Record<string, string>> },
): Promise<Place> {
  const fix = "under Deno, allow the download and cache: --allow-net --allow-read --allow-write --allow-env";
  const where = "download cache";
  const sha256 = release.checksums[key];
  if (!sha256) {
    return { where, path: undefined, note: "this package carries no release checksums (only the JSR package does)", fix: "" };
  }
  const cacheDir = defaultCacheDir();
  if (!cacheDir) {
    return { where, path: undefined, note: "no cache directory (SPEAD_CACHE_DIR, XDG_CACHE_HOME and HOME unset or unreadable)", fix };
  }
  try {
    const path = await obtainLibrary({ key, version: release.version, sha256, baseUrl: downloadUrl(), cacheDir });
    return { where, path, note: "", fix };
  } catch (err) {
    return { where: `${where} ${cacheDir}`, path: undefined, note: err instanceof Error ? err.message : String(err), fix };
  }
}
