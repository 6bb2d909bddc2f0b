/** The FFI layer: the symbol table and status codes agree with the Zig sources; loader errors are clear. */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { symbolDefs } from "../ffi/symbols.ts";
import { lib, native, Status } from "../ffi/mod.ts";
import { SpeadError, statusName, statusNames } from "../src/errors.ts";
import { RingStreamConfig, StreamConfig } from "../src/recv/config.ts";
import { configRecord } from "../src/recv/config_record.ts";
import { check } from "../src/errors.ts";
import { root } from "./helpers.ts";

const zigSources = (readdirSync(`${root}/zig`, { recursive: true }) as string[]).filter((f) => f.endsWith(".zig")).map((f) =>
  readFileSync(`${root}/zig/${f}`, "utf8")
);

describe("typed facade (ffi/mod.ts lib, generated with the symbols)", () => {
  test("a failed call throws SpeadError naming the status and the caller's words", () => {
    try {
      lib.flavourCheck(4, 64, 41, 0, "flavour");
      throw new Error("no throw");
    } catch (err) {
      expect(err).toBeInstanceOf(SpeadError);
      expect((err as SpeadError).code).toBe("invalid_flavour");
      expect((err as SpeadError).status).toBe(Status.invalid_flavour);
      expect((err as SpeadError).message).toContain("flavour");
    }
    // without the caller's words the export is named
    expect(() => lib.recvHeapRelease(12345)).toThrow("spead_recv_heap_release");
    expect(lib.flavourCheck(4, 64, 48, 0)).toBeUndefined();
  });

  test("statuses an export reports as results come back; out_handle comes back as the result", () => {
    const handle = lib.chunkRingCreate(2);
    expect(handle).toBeGreaterThan(0);
    const out = new Uint32Array(1);
    expect(lib.chunkRingPop(handle, 0, out)).toBe(Status.empty);
    lib.chunkRingStop(handle);
    expect(lib.chunkRingPop(handle, 0, out)).toBe(Status.stopped);
    lib.chunkRingDestroy(handle);
    // an error that is not a result still throws (a stale handle)
    expect(() => lib.chunkRingPop(handle, 0, out)).toThrow(SpeadError);
    // the end of a stat-name list is a result
    const name = new Uint8Array(64);
    expect(lib.recvStreamStatName(100_000, name, name.length, out)).toBe(Status.invalid_argument);
  });

  test("a receive stream's pops report empty, then stopped, as results", () => {
    const handle = lib.recvStreamCreate(configRecord(new StreamConfig(), new RingStreamConfig(), -1));
    const out = new Uint32Array(1);
    try {
      expect(lib.recvStreamTryPop(handle, out)).toBe(Status.empty);
      lib.recvStreamStop(handle);
      expect(lib.recvStreamTryPop(handle, out)).toBe(Status.stopped);
      expect(lib.recvStreamPop(handle, 0, out)).toBe(Status.stopped);
    } finally {
      lib.recvStreamDestroy(handle);
    }
    expect(() => lib.recvStreamTryPop(handle, out)).toThrow(SpeadError);
  });

  test("nothing outside ffi/ calls the raw symbols: src/ and mod.ts go through the facade", () => {
    const files = [`${root}/mod.ts`, ...(readdirSync(`${root}/src`, { recursive: true }) as string[])
      .filter((f) => f.endsWith(".ts"))
      .map((f) => `${root}/src/${f}`)];
    expect(files.length).toBeGreaterThan(30);
    const offenders = files.filter((f) => /native\.symbols|asyncSymbols/.test(readFileSync(f, "utf8")));
    expect(offenders).toEqual([]);
  });
});

describe("symbol table", () => {
  test("every export of zig/abi/table.zig is in ffi/abi.gen.ts with the same parameters, and nothing else", () => {
    // The generated file itself is checked against the table by zig/abi/gen.zig's test;
    // this checks the table as the source reads, and that the library exports all of it.
    const src = readFileSync(`${root}/zig/abi/table.zig`, "utf8");
    const exported = new Map<string, string[]>();
    for (const m of src.matchAll(/(?:entry|blocking)\("(spead_\w+)", [\w.]+, "([^"]*)"/g)) {
      exported.set(m[1], m[2].split(" ").filter((p) => p.length > 0));
    }
    expect(exported.size).toBeGreaterThan(40);
    const table = new Map(Object.entries(symbolDefs).map(([k, v]) => [k, [...v.params] as string[]]));
    for (const [name, params] of exported) {
      if (!table.has(name)) throw new Error(`${name} is exported by zig/ but missing from ffi/abi.gen.ts`);
      expect(table.get(name)).toEqual(params);
      expect(symbolDefs[name as keyof typeof symbolDefs].args.length as number).toBe(params.length);
      expect(typeof (native.symbols as unknown as Record<string, unknown>)[name]).toBe("function");
    }
    for (const name of table.keys()) {
      if (!exported.has(name)) throw new Error(`${name} is in ffi/abi.gen.ts but not exported by zig/`);
    }
  });

  test("status codes in TS match zig/core/status.zig", () => {
    const src = readFileSync(`${root}/zig/core/status.zig`, "utf8");
    const body = src.slice(src.indexOf("pub const Status = enum(i32) {"));
    const zig = [...body.matchAll(/^\s+(\w+) = (-?\d+),$/gm)].map((m) => [m[1], Number(m[2])] as const);
    expect(zig[0]).toEqual(["ok", 0]);
    for (const [name, code] of zig.slice(1)) expect(statusName(code)).toBe(name as never);
    expect(zig.length - 1).toBe(statusNames.length);
    expect(statusName(-999)).toBe("unknown_status");
  });

  test("native errors become SpeadError with a string code and the status", () => {
    const st = native.symbols.spead_flavour_check(4, 64, 41, 0);
    expect(st).toBe(-4);
    try {
      check(st, "flavour");
      throw new Error("no throw");
    } catch (err) {
      expect(err).toBeInstanceOf(SpeadError);
      expect((err as SpeadError).code).toBe("invalid_flavour");
      expect((err as SpeadError).status).toBe(-4);
    }
    // bad handles and null buffers are statuses, not crashes
    expect(native.symbols.spead_recv_heap_release(12345)).toBe(-1);
    expect(native.symbols.spead_recv_stream_try_pop(0, null)).toBeLessThan(0);
    expect(native.symbols.spead_heap_encode(null, 1, 40, 0, null, 1472, 0, null, 0, null)).toBeLessThan(0);
  });
});

describe("loader", () => {
  const deno = `${root}/node_modules/.bin/deno`;
  test("Deno without --allow-ffi gets an error naming the flag and the paths tried", () => {
    const r = spawnSync(deno, ["run", "--allow-env", "--no-prompt", `${root}/tests/fixtures/load.ts`], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("--allow-ffi");
    expect(r.stderr).toContain("libspead");
  });

  test("SPEAD_LIB_PATH is tried first; a bad one falls back to the build output", () => {
    const r = spawnSync(deno, ["run", "--allow-env", "--allow-ffi", `${root}/tests/fixtures/load.ts`], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, SPEAD_LIB_PATH: `${root}/zig-out/lib/libspead.so` },
    });
    expect(r.stdout).toContain(`loaded deno ${root}/zig-out/lib/libspead.so`);
    const bad = spawnSync(deno, ["run", "--allow-env", "--allow-ffi", `${root}/tests/fixtures/load.ts`], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, SPEAD_LIB_PATH: "/nonexistent/libspead.so" },
    });
    expect(bad.stdout).toContain("loaded deno");
    expect(bad.stderr).toContain("spead: SPEAD_LIB_PATH=/nonexistent/libspead.so not loaded (");
  });
});
