// The Deno/JSR loader's download path (ffi/download.ts) against a local HTTP
// server on 127.0.0.1: a good checksum is cached and loaded, a bad one is
// refused, a missing asset is a clear error, and a cache hit needs no server.
import { describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { assetUrl, cachePath, obtainLibrary } from "../ffi/download.ts";
import { platformKey } from "../ffi/locate.ts";
import { root } from "./helpers.ts";

const version = "0.0.0-test";
const key = platformKey();
const library = readFileSync(`${root}/zig-out/lib/libspead.so`);

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Serves `files` (path -> bytes) on 127.0.0.1; counts requests. */
async function serve(files: Record<string, Uint8Array>): Promise<{ server: Server; base: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const body = files[req.url ?? ""];
    if (!body) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(body.byteLength) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return { server, base: `http://127.0.0.1:${address.port}/releases`, requests };
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe("download cache (JSR loader)", () => {
  test("good checksum: downloaded, verified, cached; then a cache hit with no server", async () => {
    const cacheDir = mkdtempSync(`${tmpdir()}/spead-cache-`);
    const bytes = new Uint8Array(library);
    const { server, base, requests } = await serve({ [`/releases/v${version}/libspead-${key}.so`]: bytes });
    try {
      const sha = await sha256(bytes);
      const options = { key, version, sha256: sha, baseUrl: base, cacheDir };
      expect(assetUrl(options)).toBe(`${base}/v${version}/libspead-${key}.so`);
      const path = await obtainLibrary(options);
      expect(path).toBe(cachePath(options));
      expect(await sha256(new Uint8Array(readFileSync(path)))).toBe(sha);
      expect(requests.length).toBe(1);
      await close(server);
      // The server is gone: the cached copy is verified and used.
      expect(await obtainLibrary(options)).toBe(path);
      expect(requests.length).toBe(1);
    } finally {
      server.listening && (await close(server));
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  test("bad checksum: refused, nothing cached", async () => {
    const cacheDir = mkdtempSync(`${tmpdir()}/spead-cache-`);
    const { server, base } = await serve({ [`/releases/v${version}/libspead-${key}.so`]: new Uint8Array(library) });
    try {
      const options = { key, version, sha256: "0".repeat(64), baseUrl: base, cacheDir };
      const err = await obtainLibrary(options).then(() => undefined, (e: unknown) => e as Error);
      expect(err?.message).toContain(`download of ${base}/v${version}/libspead-${key}.so refused: SHA-256`);
      expect(err?.message).toContain(`does not match the expected ${"0".repeat(64)}`);
      expect(existsSync(cachePath(options))).toBe(false);
    } finally {
      await close(server);
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  test("missing asset: a clear error naming the URL and the HTTP status", async () => {
    const cacheDir = mkdtempSync(`${tmpdir()}/spead-cache-`);
    const { server, base } = await serve({});
    try {
      const options = { key, version, sha256: "0".repeat(64), baseUrl: base, cacheDir };
      const err = await obtainLibrary(options).then(() => undefined, (e: unknown) => e as Error);
      expect(err?.message).toBe(`download of ${base}/v${version}/libspead-${key}.so failed: HTTP 404 Not Found`);
    } finally {
      await close(server);
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  test("the whole loader under Deno: a JSR-style copy with checksums downloads, caches and loads the library", async () => {
    const dir = mkdtempSync(`${tmpdir()}/spead-jsr-`);
    const bytes = new Uint8Array(library);
    const { server, base, requests } = await serve({ [`/releases/v${version}/libspead-${key}.so`]: bytes });
    try {
      // What scripts/pack.sh stages for JSR: the sources, with release.ts filled in; no local build.
      for (const p of ["mod.ts", "ffi", "src"]) cpSync(`${root}/${p}`, `${dir}/pkg/${p}`, { recursive: true });
      writeFileSync(
        `${dir}/pkg/ffi/release.ts`,
        `export const releaseVersion: string = "${version}";\n` +
          `export const releaseChecksums: Readonly<Record<string, string>> = { "${key}": "${await sha256(bytes)}" };\n`,
      );
      writeFileSync(
        `${dir}/main.ts`,
        `import { native } from "./pkg/ffi/mod.ts";\nconsole.log("loaded " + native.path);\n`,
      );
      const env = { PATH: "/usr/bin:/bin", HOME: `${dir}/home`, SPEAD_DOWNLOAD_URL: base, SPEAD_CACHE_DIR: `${dir}/cache` };
      const args = ["run", "--allow-ffi", "--allow-env", "--allow-net=127.0.0.1", "--allow-read", "--allow-write", `${dir}/main.ts`];
      const deno = `${root}/node_modules/.bin/deno`;
      // spawnSync would block this process's event loop, and with it the server: run the child asynchronously.
      const first = await runAsync(deno, args, env);
      expect(first.stdout).toBe(`loaded ${dir}/cache/${version}/libspead-${key}.so\n`);
      expect(requests.length).toBe(1);
      await close(server);
      const second = spawnSync(deno, args, { encoding: "utf8", env, timeout: 60_000 });
      expect(second.stdout).toBe(first.stdout); // from the cache: the server is gone
    } finally {
      server.listening && (await close(server));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a URL import (as from JSR)", () => {
  test("the library comes from the download; no local path is made up from the URL", async () => {
    const dir = mkdtempSync(`${tmpdir()}/spead-url-`);
    const bytes = new Uint8Array(library);
    const files: Record<string, Uint8Array> = { [`/releases/v${version}/libspead-${key}.so`]: bytes };
    try {
      for (const p of ["mod.ts", "ffi", "src"]) cpSync(`${root}/${p}`, `${dir}/pkg/${p}`, { recursive: true });
      const served = (withChecksum: boolean) => {
        const release = `export const releaseVersion: string = "${version}";\n` +
          `export const releaseChecksums: Readonly<Record<string, string>> = ${withChecksum ? `{ "${key}": "SHA" }` : "{}"};\n`;
        return release;
      };
      const sha = await sha256(bytes);
      const { server, base } = await serve(files);
      const origin = base.replace(/\/releases$/, "");
      // Every source file of the copy, under /pkg/ and /bare/ (the latter without checksums).
      const addTree = (prefix: string, withChecksum: boolean) => {
        const walk = (rel: string) => {
          for (const entry of readdirSync(`${dir}/pkg/${rel}`, { withFileTypes: true })) {
            const path = rel ? `${rel}/${entry.name}` : entry.name;
            if (entry.isDirectory()) walk(path);
            else files[`/${prefix}/${path}`] = new TextEncoder().encode(readFileSync(`${dir}/pkg/${path}`, "utf8"));
          }
        };
        walk("");
        files[`/${prefix}/ffi/release.ts`] = new TextEncoder().encode(served(withChecksum).replace("SHA", sha));
      };
      addTree("pkg", true);
      addTree("bare", false);
      for (const prefix of ["pkg", "bare"]) {
        writeFileSync(
          `${dir}/${prefix}.ts`,
          `import { native } from "${origin}/${prefix}/ffi/mod.ts";\nconsole.log("loaded " + native.path);\n`,
        );
      }
      const env = {
        PATH: "/usr/bin:/bin",
        HOME: `${dir}/home`,
        DENO_DIR: `${dir}/deno-dir`,
        SPEAD_DOWNLOAD_URL: base,
        SPEAD_CACHE_DIR: `${dir}/cache`,
      };
      const flags = ["run", "--allow-ffi", "--allow-env", "--allow-net=127.0.0.1", "--allow-import=127.0.0.1", "--allow-read", "--allow-write"];
      const deno = `${root}/node_modules/.bin/deno`;
      try {
        const good = await runAsync(deno, [...flags, `${dir}/pkg.ts`], env);
        expect(good.stdout).toBe(`loaded ${dir}/cache/${version}/libspead-${key}.so\n`);
        const bare = await runAsync(deno, [...flags, `${dir}/bare.ts`], env, false);
        expect(bare.stdout).toBe("");
        expect(bare.stderr).toContain(`local build: not looked for (this module is ${origin}/bare/ffi/mod.ts)`);
        expect(bare.stderr).not.toContain("zig-out");
      } finally {
        await close(server);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function runAsync(
  exe: string,
  args: string[],
  env: Record<string, string>,
  mustSucceed = true,
): Promise<{ stdout: string; stderr: string }> {

  const child = spawn(exe, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Uint8Array) => (stdout += new TextDecoder().decode(b)));
  child.stderr.on("data", (b: Uint8Array) => (stderr += new TextDecoder().decode(b)));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  await new Promise((resolve) => child.on("close", resolve));
  clearTimeout(timer);
  if (mustSucceed && !stdout) throw new Error(`child failed: ${stderr}`);
  return { stdout, stderr };
}
