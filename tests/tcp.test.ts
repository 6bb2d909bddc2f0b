/**
 * SPEAD over TCP on 127.0.0.1 (spead2's tcp_reader / TcpStream): recv.Stream.addTcpReader
 * fed by spead2 (PyPI) `spead2.send.TcpStream` (byte for byte) and by a hand-written
 * client that cuts packets anywhere, closes mid-packet, or sends an oversize packet.
 */
import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { connect, type Socket } from "node:net";
import { Flavour, recv, send } from "../mod.ts";
import { concat, python, root } from "./helpers.ts";

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
