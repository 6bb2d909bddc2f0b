// System-call errors carry the errno name and the operation; argument errors
// name the argument and its range; a failed load names every place tried.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { recv, send, SpeadError } from "../mod.ts";
import { root } from "./helpers.ts";

function thrown(fn: () => unknown): SpeadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpeadError) return err;
    throw err;
  }
  throw new Error("expected a SpeadError");
}

describe("errno-named system errors", () => {
  test("a busy port: EADDRINUSE with the bind address", () => {
    const a = new recv.Stream();
    const b = new recv.Stream();
    try {
      const { port } = a.addUdpReader(0, { bindHostname: "127.0.0.1" });
      const err = thrown(() => b.addUdpReader(port, { bindHostname: "127.0.0.1" }));
      expect(err.code).toBe("system_error");
      expect(err.errno).toBe("EADDRINUSE");
      expect(err.errnoNumber).toBe(98);
      expect(err.syscall).toBe(`bind 127.0.0.1:${port}`);
      expect(err.message).toBe(`EADDRINUSE: bind 127.0.0.1:${port} (addUdpReader)`);
    } finally {
      a.stop();
      b.stop();
    }
  });

  test("an address this host does not have: EADDRNOTAVAIL", () => {
    const s = new recv.Stream();
    try {
      // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a host.
      const err = thrown(() => s.addUdpReader(0, { bindHostname: "192.0.2.1" }));
      expect(err.errno).toBe("EADDRNOTAVAIL");
      expect(err.message.startsWith("EADDRNOTAVAIL: bind 192.0.2.1:0")).toBe(true);
    } finally {
      s.stop();
    }
  });

  test("a datagram too large for UDP: the send's Promise rejects with EMSGSIZE", async () => {
    const rx = new recv.Stream();
    const { port } = rx.addUdpReader(0, { bindHostname: "127.0.0.1" });
    const tx = new send.UdpStream([["127.0.0.1", port]], new send.StreamConfig({ maxPacketSize: 100000 }), {
      disableGso: true,
    });
    try {
      const heap = new send.Heap();
      heap.addRaw(0x1000, new Uint8Array(90000));
      const err = await tx.asyncSendHeap(heap).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(SpeadError);
      expect((err as SpeadError).errno).toBe("EMSGSIZE");
      expect((err as SpeadError).message.startsWith("EMSGSIZE: sendmmsg")).toBe(true);
    } finally {
      tx.close();
      rx.stop();
    }
  });
});

describe("argument errors name the argument and its range", () => {
  test("port above 65535", () => {
    const s = new recv.Stream();
    try {
      const err = thrown(() => s.addUdpReader(100000));
      expect(err.code).toBe("invalid_argument");
      expect(err.message).toBe("invalid_argument: port = 100000 must be an integer in [0, 65535]");
    } finally {
      s.stop();
    }
  });
});

describe("loader errors", () => {
  test("nothing found: one error naming every place, the platform and the fixes", () => {
    // A copy of the library sources with no build output next to it.
    const dir = mkdtempSync(`${tmpdir()}/spead-loader-`);
    try {
      for (const p of ["mod.ts", "ffi", "src"]) cpSync(`${root}/${p}`, `${dir}/${p}`, { recursive: true });
      const script = `${dir}/ffi/mod.ts`;
      const bun = spawnSync(`${root}/node_modules/.bin/bun`, [script], {
        encoding: "utf8",
        timeout: 30_000,
        env: { ...process.env, SPEAD_LIB_PATH: "/nonexistent/libspead.so" },
      });
      expect(bun.status).not.toBe(0);
      expect(bun.stderr).toContain("library_not_found: cannot load libspead for linux-");
      expect(bun.stderr).toContain("SPEAD_LIB_PATH (/nonexistent/libspead.so)");
      expect(bun.stderr).toContain("platform package @spead/linux-");
      expect(bun.stderr).toContain(`local build (${dir}/zig-out/lib/libspead.so)`);
      expect(bun.stderr).toContain("npm install @spead/linux-");
      // Deno without --allow-env: the override is reported as unreadable, not ignored.
      const deno = spawnSync(`${root}/node_modules/.bin/deno`, ["run", "--allow-ffi", "--no-prompt", script], {
        encoding: "utf8",
        timeout: 30_000,
        env: { ...process.env, SPEAD_LIB_PATH: "/nonexistent/libspead.so" },
      });
      expect(deno.status).not.toBe(0);
      expect(deno.stderr).toContain("SPEAD_LIB_PATH: not readable without --allow-env");
      expect(deno.stderr).toContain("download cache: this package carries no release checksums");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
