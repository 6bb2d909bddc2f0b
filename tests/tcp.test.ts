/**
 * SPEAD over TCP on 127.0.0.1 (spead2's tcp_reader / TcpStream): recv.Stream.addTcpReader
 * fed by spead2 (PyPI) `spead2.send.TcpStream` (byte for byte) and by a hand-written
 * client that cuts packets anywhere, closes mid-packet, or sends an oversize packet.
 */
import { describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createHash } from "node:crypto";
import { connect, type Socket } from "node:net";
import { Flavour, recv, send } from "../mod.ts";
import { concat, python, root, runtimeCommand } from "./helpers.ts";

/** The packets of a heap with item 0x1234 = `data` (cnt `cnt`), back to back. */
function heapBytes(cnt: number, data: Uint8Array, packetSize = 1472): Uint8Array {
  const h = new send.Heap(new Flavour());
  h.addRaw(0x1234, data);
  return concat([...new send.PacketGenerator(h, cnt, packetSize)]);
}

function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let j = 0; j < size; j++) out[j] = (j * 13 + seed) & 0xff;
  return out;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function open(port: number): Promise<Socket> {
  const socket = connect({ host: "127.0.0.1", port });
  socket.setNoDelay(true);
  await new Promise<void>((res, rej) => {
    socket.once("connect", res);
    socket.once("error", rej);
  });
  return socket;
}

function write(socket: Socket, bytes: Uint8Array): Promise<void> {
  return new Promise((res, rej) => socket.write(bytes, (e) => (e ? rej(e) : res())));
}

function end(socket: Socket): Promise<void> {
  return new Promise((res) => {
    socket.once("close", () => res());
    socket.end();
  });
}

/** Drains a stream: [cnt, sha256 of item 0x1234] per heap; stats once stopped. */
async function drain(stream: recv.Stream): Promise<{ heaps: [number, string][]; stats: recv.StreamStats }> {
  const heaps: [number, string][] = [];
  for await (const heap of stream) {
    const item = heap.getItems().find((it) => it.id === 0x1234);
    if (item) heaps.push([Number(heap.cnt), sha(item.value)]);
    heap.release();
  }
  return { heaps, stats: stream.stats };
}

/** Stops `stream` if a test hangs, so that its drain ends. */
function watchdog(stream: recv.Stream, ms = 30_000): () => void {
  const t = setTimeout(() => stream.stop(), ms);
  return () => clearTimeout(t);
}

describe("recv.Stream.addTcpReader on 127.0.0.1", () => {
  test("spead2 (PyPI) TcpStream sends heaps; every item arrives byte for byte; closing stops the stream", async () => {
    using stream = new recv.Stream(new recv.StreamConfig({ maxHeaps: 4 }), new recv.RingStreamConfig({ heaps: 8 }));
    const info = stream.addTcpReader(0, { bindHostname: "127.0.0.1" });
    expect(info.port).toBeGreaterThan(0);
    expect(info.bufferSize).toBeGreaterThan(0);
    const cancel = watchdog(stream);
    const child = spawn(python, [`${root}/tests/interop/tcp_send.py`, String(info.port), "40", "8972"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    child.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
    const exited = new Promise<number | null>((res) => child.on("close", res));
    try {
      const { heaps, stats } = await drain(stream);
      expect(await exited, err).toBe(0);
      expect(heaps).toEqual(JSON.parse(out));
      expect(heaps).toHaveLength(40);
      expect(stats.heaps).toBe(40);
      expect(stats.incomplete_heaps_flushed).toBe(0);
      expect(stats.packets_rejected_truncated).toBe(0);
    } finally {
      cancel();
      child.kill("SIGKILL");
    }
  });

  test("packets cut anywhere across writes are carried over", async () => {
    using stream = new recv.Stream();
    const { port } = stream.addTcpReader(0, { bindHostname: "127.0.0.1" });
    const cancel = watchdog(stream);
    const datas = Array.from({ length: 12 }, (_, i) => pattern(500 + i * 3001, i));
    const bytes = concat(datas.map((d, i) => heapBytes(i + 1, d)));
    const drained = drain(stream);
    const socket = await open(port);
    // Pieces of 1 to 2999 bytes: headers, pointers and payloads split at every kind of place.
    let off = 0;
    for (let k = 0; off < bytes.length; k++) {
      const n = Math.min(bytes.length - off, 1 + ((k * 977) % 2999));
      await write(socket, bytes.subarray(off, off + n));
      off += n;
      if (k % 8 === 0) await sleep(1);
    }
    await end(socket);
    const { heaps, stats } = await drained;
    cancel();
    expect(heaps).toEqual(datas.map((d, i) => [i + 1, sha(d)]));
    expect(stats.packets_rejected_truncated).toBe(0);
  });

  test("a peer that closes mid-packet: the cut packet is counted, the stream stops", async () => {
    using stream = new recv.Stream();
    const { port } = stream.addTcpReader(0, { bindHostname: "127.0.0.1" });
    const cancel = watchdog(stream);
    const first = pattern(3000, 1);
    const cut = heapBytes(2, pattern(1000, 2));
    const drained = drain(stream);
    const socket = await open(port);
    await write(socket, concat([heapBytes(1, first), cut.subarray(0, 40)]));
    await end(socket);
    const { heaps, stats } = await drained;
    cancel();
    expect(heaps).toEqual([[1, sha(first)]]);
    expect(stats.packets_rejected_truncated).toBe(1);
  });

  test("an oversize packet and garbage are counted and passed over; the next heap arrives", async () => {
    using stream = new recv.Stream();
    const { port } = stream.addTcpReader(0, { bindHostname: "127.0.0.1", maxSize: 1024 });
    const cancel = watchdog(stream);
    const small = pattern(100, 3);
    const drained = drain(stream);
    const socket = await open(port);
    await write(socket, concat([heapBytes(1, pattern(7000, 1), 4096), new TextEncoder().encode("garbage!"), heapBytes(2, small)]));
    await end(socket);
    const { heaps, stats } = await drained;
    cancel();
    expect(heaps).toEqual([[2, sha(small)]]);
    expect(stats.packets_rejected_oversize).toBe(2); // the heap's two packets over 1024 bytes
    expect(stats.packets_rejected_bad_magic).toBe(1);
  });

  test("stop while waiting for a connection returns promptly; a taken port is an error", () => {
    using stream = new recv.Stream();
    const { port } = stream.addTcpReader(0, { bindHostname: "127.0.0.1" });
    using other = new recv.Stream();
    expect(() => other.addTcpReader(port, { bindHostname: "127.0.0.1" })).toThrow("EADDRINUSE");
    expect(() => other.addTcpReader(0, { bindHostname: "not an address" })).toThrow("invalid_argument");
    expect(() => other.addTcpReader(0, { maxSize: 4 })).toThrow("invalid_argument");
    const t0 = performance.now();
    stream.stop();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect([...stream]).toEqual([]);
    expect(() => stream.addTcpReader(0, { bindHostname: "127.0.0.1" })).toThrow(/stopped|closed/);
  });

  test("IPv6 loopback (skipped without ::1)", async () => {
    using stream = new recv.Stream();
    let port: number;
    try {
      port = stream.addTcpReader(0, { bindHostname: "::1" }).port;
    } catch {
      return;
    }
    const cancel = watchdog(stream);
    const data = pattern(2000, 9);
    const drained = drain(stream);
    const socket = connect({ host: "::1", port });
    await new Promise<void>((res, rej) => {
      socket.once("connect", res);
      socket.once("error", rej);
    });
    await write(socket, heapBytes(7, data));
    await end(socket);
    const { heaps } = await drained;
    cancel();
    expect(heaps).toEqual([[7, sha(data)]]);
  });
});

/** Heap i: item 0x1234 = pattern(size_i, i), sizes from 16 bytes to ~150 kB. */
function sendDatas(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => pattern(16 + ((i * 7919) % 150000), i));
}

function heapOf(data: Uint8Array): send.Heap {
  const h = new send.Heap(new Flavour());
  h.addRaw(0x1234, data);
  return h;
}

describe("send.TcpStream on 127.0.0.1", () => {
  test("spead2 (PyPI) add_tcp_reader receives our heaps byte for byte", async () => {
    const child = spawn(python, [`${root}/tests/interop/tcp_recv.py`, "65536"], { stdio: ["ignore", "pipe", "pipe"] });
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    try {
      let out = "";
      let err = "";
      child.stderr!.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
      const exited = new Promise<number | null>((res) => child.on("close", res));
      const firstLine = new Promise<string>((res) => {
        child.stdout!.on("data", (d: Uint8Array) => {
          out += new TextDecoder().decode(d);
          if (out.includes("\n")) res(out.slice(0, out.indexOf("\n")));
        });
        child.on("close", () => res(""));
      });
      const port = Number(await firstLine);
      expect(port, err).toBeGreaterThan(0);
      const datas = sendDatas(30);
      {
        using stream = new send.TcpStream(["127.0.0.1", port], new send.StreamConfig({ maxPacketSize: 8972, maxHeaps: 8 }));
        // At most maxHeaps in flight (more would be refused with queue_full, as spead2 drops them).
        for (let i = 0; i < datas.length; i += 8) {
          await Promise.all(datas.slice(i, i + 8).map((d, k) => stream.asyncSendHeap(heapOf(d), i + k + 1)));
        }
        stream.sendHeap(heapOf(new Uint8Array(0)), 31); // a sync send too
        expect(stream.stats.heaps).toBe(31);
      } // close: the connection ends, spead2's stream stops
      expect(await exited, err).toBe(0);
      const heaps = JSON.parse(out.slice(out.indexOf("\n") + 1));
      expect(heaps).toEqual(datas.map((d, i) => [i + 1, sha(d)]));
    } finally {
      clearTimeout(killer);
      child.kill("SIGKILL");
    }
  });

  test("to our own reader: large packets, a socket that fills, every heap in order", async () => {
    using rx = new recv.Stream(new recv.StreamConfig({ maxHeaps: 4 }), new recv.RingStreamConfig({ heaps: 4 }));
    const { port } = rx.addTcpReader(0, { bindHostname: "127.0.0.1", maxSize: 65536 });
    const cancel = watchdog(rx);
    const drained = drain(rx);
    const datas = sendDatas(60);
    {
      // A send buffer smaller than a batch: writes are partial and resumed. (Below about one
      // loopback segment, 64 KiB, every write would wait for the peer's delayed ACK.)
      using tx = new send.TcpStream(["127.0.0.1", port], new send.StreamConfig({ maxPacketSize: 65536, maxHeaps: 16 }), {
        bufferSize: 100_000,
      });
      for (let i = 0; i < datas.length; i += 6) {
        await Promise.all(datas.slice(i, i + 6).map((d, k) => tx.asyncSendHeap(heapOf(d), i + k + 1)));
      }
      tx.flush();
    }
    const { heaps, stats } = await drained;
    cancel();
    expect(heaps).toEqual(datas.map((d, i) => [i + 1, sha(d)]));
    expect(stats.packets_rejected_oversize + stats.packets_rejected_truncated).toBe(0);
  });

  test("a refused connection throws with ECONNREFUSED; bad endpoints are refused", () => {
    using rx = new recv.Stream();
    const { port } = rx.addTcpReader(0, { bindHostname: "127.0.0.1" });
    rx.stop(); // the listening socket is closed now
    expect(() => new send.TcpStream(["127.0.0.1", port])).toThrow("ECONNREFUSED");
    expect(() => new send.TcpStream([["127.0.0.1", port], ["127.0.0.1", port]])).toThrow("exactly one endpoint");
    expect(() => new send.TcpStream(["no address", port])).toThrow("invalid_argument");
  });

  test("a TcpStream dropped without close() is named as one in SPEAD_DEBUG's warning", () => {
    const dir = mkdtempSync(`${tmpdir()}/spead-tcp-debug-`);
    try {
      const script = `${dir}/drop.ts`;
      writeFileSync(
        script,
        [
          `import { createServer } from "node:net";`,
          `import { recv, send } from "${root}/mod.ts";`,
          `const rx = new recv.Stream();`,
          `const { port } = rx.addTcpReader(0, { bindHostname: "127.0.0.1" });`,
          `(() => { new send.TcpStream(["127.0.0.1", port]); })();`,
          `const gc = () => ("Bun" in globalThis ? (globalThis as any).Bun.gc(true) : (globalThis as any).gc());`,
          `for (let i = 0; i < 20; i++) { gc(); await new Promise((r) => setTimeout(r, 20)); }`,
          `rx.close();`,
        ].join("\n"),
      );
      const [exe, args] = runtimeCommand(script, ["--allow-net", "--v8-flags=--expose-gc"]);
      const r = spawnSync(exe, args, { encoding: "utf8", timeout: 60_000, env: { ...process.env, SPEAD_DEBUG: "1" } });
      expect(r.status).toBe(0);
      expect(r.stderr).toContain("a send.TcpStream was garbage-collected without close()");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a peer that goes away: later heaps fail with system_error", async () => {
    using rx = new recv.Stream();
    const { port } = rx.addTcpReader(0, { bindHostname: "127.0.0.1" });
    using tx = new send.TcpStream(["127.0.0.1", port]);
    await tx.asyncSendHeap(heapOf(pattern(100, 1)), 1);
    const heap = await rx.get();
    heap.release();
    rx.stop(); // our reader closes its side
    let error: unknown;
    for (let i = 0; i < 50 && error === undefined; i++) {
      try {
        await tx.asyncSendHeap(heapOf(pattern(100000, 2)), 2 + i);
      } catch (e) {
        error = e;
      }
      await sleep(5);
    }
    expect(String(error)).toMatch(/EPIPE|ECONNRESET/);
  });
});

describe("recv.ChunkRingStream.addTcpReader", () => {
  test("heaps over TCP land in their chunks; the peer closing stops the stream", async () => {
    const heapSize = 512;
    const rule = new recv.PlaceRule({ heapBytes: heapSize, timestamp: { item: 0x1600, step: heapSize, heaps: 4 } });
    const dataRing = new recv.ChunkRingbuffer(4);
    const freeRing = new recv.ChunkRingbuffer(4);
    const stream = new recv.ChunkRingStream(
      new recv.StreamConfig({ maxHeaps: 2 }),
      new recv.ChunkStreamConfig({ place: rule, maxChunks: 2 }),
      dataRing,
      freeRing,
    );
    try {
      for (let i = 0; i < 4; i++) stream.addFreeChunk(rule.makeChunk());
      const { port } = stream.addTcpReader(0, { bindHostname: "127.0.0.1" });
      const parts: Uint8Array[] = [];
      for (let i = 0; i < 8; i++) {
        const h = new send.Heap(new Flavour());
        h.addImmediate(0x1600, BigInt(i * heapSize));
        h.addRaw(0x3300, new Uint8Array(heapSize).fill(i + 1));
        parts.push(...new send.PacketGenerator(h, i + 1, 300));
      }
      const socket = await open(port);
      await write(socket, concat(parts));
      await end(socket);
      const chunks: { id: bigint; present: number[]; data: Uint8Array }[] = [];
      for await (const chunk of dataRing) {
        chunks.push({ id: chunk.chunkId, present: Array.from(chunk.present), data: chunk.data.slice() });
        stream.addFreeChunk(chunk);
      }
      expect(chunks.map((c) => c.id)).toEqual([0n, 1n]);
      for (const c of chunks) {
        expect(c.present).toEqual([1, 1, 1, 1]);
        for (let k = 0; k < 4; k++) {
          expect(c.data.subarray(k * heapSize, (k + 1) * heapSize).every((b) => b === Number(c.id) * 4 + k + 1)).toBe(true);
        }
      }
    } finally {
      stream.close();
      dataRing.close();
      freeRing.close();
    }
  });
});
