/**
 * recv.Stream.addFileReader: files of concatenated packets written by our
 * send.BytesStream and by spead2's (PyPI) BytesStream, read back through a
 * mapping; truncated, garbage, empty and missing files are counted or refused,
 * never a crash.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { Flavour, MemoryPool, recv, send, SpeadError } from "../mod.ts";
import { python } from "./helpers.ts";

const dir = mkdtempSync(`${tmpdir()}/spead-file-reader-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The payload of heap `i`: `size` bytes that differ from heap to heap. */
function payload(i: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let j = 0; j < size; j++) out[j] = (i * 31 + j * 7) & 0xff;
  return out;
}

/** `n` heaps of item 0x1234 (`size` bytes each, packets of `packet` bytes), then an end heap. */
function writeOurs(path: string, n: number, size: number, packet = 1472): Uint8Array {
  const tx = new send.BytesStream(new send.StreamConfig({ maxPacketSize: packet }));
  const flavour = new Flavour();
  for (let i = 0; i < n; i++) {
    const h = new send.Heap(flavour);
    h.addRaw(0x1234, payload(i, size));
    tx.sendHeap(h);
  }
  const end = new send.Heap(flavour);
  end.addEnd();
  tx.sendHeap(end);
  const bytes = tx.getValue();
  writeFileSync(path, bytes);
  return bytes;
}

/** Drains a stream; returns each heap's 0x1234 value (copied) and the final stats. */
async function drain(stream: recv.Stream): Promise<{ values: Uint8Array[]; stats: recv.StreamStats }> {
  const values: Uint8Array[] = [];
  for await (const heap of stream) {
    const item = heap.getItems().find((it) => it.id === 0x1234);
    if (item) values.push(item.value.slice());
    heap.release();
  }
  const stats = stream.stats;
  stream.close();
  return { values, stats };
}

describe("addFileReader", () => {
  test("a file from our BytesStream: every heap, in order, byte for byte", async () => {
    const path = `${dir}/ours.spead`;
    writeOurs(path, 40, 20000);
    const pool = new MemoryPool(0, 32768, 8, 8);
    const stream = new recv.Stream(new recv.StreamConfig({ memoryAllocator: pool }), new recv.RingStreamConfig({ heaps: 4 }));
    stream.addFileReader(path);
    const { values, stats } = await drain(stream);
    pool.close();
    expect(values.length).toBe(40);
    for (let i = 0; i < 40; i++) expect(values[i]).toEqual(payload(i, 20000));
    expect(stats.packets_rejected_truncated).toBe(0);
    expect(stats.packets_rejected_bad_magic).toBe(0);
  });

  test("a file written by spead2's BytesStream (PyPI)", async () => {
    expect(existsSync(python)).toBe(true);
    const path = `${dir}/spead2.spead`;
    // spead2 writes the file itself: 12 heaps of 9000 bytes, packets of 1500, then an end heap.
    const script = [
      "import sys, numpy as np, spead2, spead2.send",
      "s = spead2.send.BytesStream(spead2.ThreadPool(), spead2.send.StreamConfig(max_packet_size=1500))",
      "f = spead2.Flavour(4, 64, 48, 0)",
      "for i in range(12):",
      "    h = spead2.send.Heap(f)",
      "    h.add_item(spead2.Item(0x1234, 'x', '', (9000,), np.uint8, value=((np.arange(9000) * 7 + i * 31) % 256).astype(np.uint8)))",
      "    s.send_heap(h)",
      "e = spead2.send.Heap(f); e.add_end(); s.send_heap(e)",
      "open(sys.argv[1], 'wb').write(s.getvalue())",
    ].join("\n");
    const r = spawnSync(python, ["-c", script, path], { encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0) throw new Error(`spead2 writer failed: ${r.stderr}`);
    const stream = new recv.Stream(new recv.StreamConfig({}));
    stream.addFileReader(path);
    const { values } = await drain(stream);
    expect(values.length).toBe(12);
    for (let i = 0; i < 12; i++) expect(values[i]).toEqual(payload(i, 9000));
  });

  test("a truncated file: the heaps before the cut, the cut packet counted", async () => {
    const path = `${dir}/cut.spead`;
    const endOnly = writeOurs(path, 0, 1000).byteLength;
    const bytes = writeOurs(path, 10, 1000); // one packet per heap
    const perHeap = (bytes.byteLength - endOnly) / 10;
    // Cut the sixth heap's packet in half (heaps 0..4 whole).
    truncateSync(path, Math.floor(perHeap * 5.5));
    const stream = new recv.Stream();
    stream.addFileReader(path);
    const { values, stats } = await drain(stream);
    expect(values.length).toBe(5);
    for (let i = 0; i < 5; i++) expect(values[i]).toEqual(payload(i, 1000));
    expect(stats.packets_rejected_truncated).toBe(1);
  });

  test("garbage and empty files stop the stream without heaps", async () => {
    const junk = `${dir}/junk.bin`;
    const noise = new Uint8Array(100_000);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    writeFileSync(junk, noise);
    const a = new recv.Stream();
    a.addFileReader(junk);
    const ra = await drain(a);
    expect(ra.values.length).toBe(0);
    const rejected = Object.entries(ra.stats).filter(([k]) => k.startsWith("packets_rejected_")).reduce((n, [, v]) => n + v, 0);
    expect(rejected).toBe(1);

    const empty = `${dir}/empty.spead`;
    writeFileSync(empty, new Uint8Array(0));
    const b = new recv.Stream();
    b.addFileReader(empty);
    const rb = await drain(b);
    expect(rb.values.length).toBe(0);
    expect(rb.stats.packets).toBe(0);
  });

  test("missing files, directories and bad paths throw; the stream stays usable", async () => {
    const stream = new recv.Stream();
    let err: unknown;
    try {
      stream.addFileReader(`${dir}/no-such-file.spead`);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpeadError);
    expect((err as SpeadError).code).toBe("system_error");
    expect((err as SpeadError).errno).toBe("ENOENT");
    expect((err as SpeadError).syscall).toContain("no-such-file.spead");
    expect(() => stream.addFileReader(dir)).toThrow(SpeadError);
    expect(() => stream.addFileReader("")).toThrow(TypeError);
    expect(() => stream.addFileReader("a\u0000b")).toThrow(SpeadError);
    expect(() => stream.addFileReader(undefined as unknown as string)).toThrow(TypeError);
    const path = `${dir}/after.spead`;
    writeOurs(path, 3, 100);
    stream.addFileReader(path);
    const { values } = await drain(stream);
    expect(values.length).toBe(3);
  });

  test("the mapping is the reader's: unlinking the file, or closing mid-read, is safe", async () => {
    const path = `${dir}/big.spead`;
    writeOurs(path, 400, 16384, 9000);
    const a = new recv.Stream(new recv.StreamConfig({}), new recv.RingStreamConfig({ heaps: 2 }));
    a.addFileReader(path);
    unlinkSync(path); // the mapping keeps the data
    const { values } = await drain(a);
    expect(values.length).toBe(400);
    expect(values[399]).toEqual(payload(399, 16384));

    writeOurs(path, 400, 16384, 9000);
    const b = new recv.Stream(new recv.StreamConfig({}), new recv.RingStreamConfig({ heaps: 2 }));
    b.addFileReader(path);
    const first = await b.get(); // the reader is now blocked on the full ring
    first.release();
    b.close(); // joins the reader and unmaps
    expect(() => b.addFileReader(path)).toThrow(SpeadError);
  });

  test("a file cut short while it is read: the reader stops and counts it (no SIGBUS)", async () => {
    const path = `${dir}/shrinks.spead`;
    const bytes = writeOurs(path, 400, 16384, 9000);
    const stream = new recv.Stream(new recv.StreamConfig({}), new recv.RingStreamConfig({ heaps: 2 }));
    stream.addFileReader(path);
    const first = await stream.get(); // the reader is now blocked on the full ring, near the start
    first.release();
    // At a page boundary, so that the reader's next access past the new end faults.
    truncateSync(path, Math.floor(bytes.byteLength / 4 / 65536) * 65536);
    const { values, stats } = await drain(stream);
    expect(values.length).toBeGreaterThan(0);
    expect(values.length).toBeLessThan(399);
    expect(stats.files_shrunk).toBe(1);
  });

  test("a chunk stream reads a file too", async () => {
    const path = `${dir}/chunks.spead`;
    const flavour = new Flavour();
    const tx = new send.BytesStream();
    for (let i = 0; i < 4; i++) {
      const h = new send.Heap(flavour);
      h.addImmediate(0x1600, BigInt(i * 256)); // timestamp: chunk i >> 1, slot i & 1
      h.addRaw(0x3300, new Uint8Array(256).fill(10 + i));
      tx.sendHeap(h);
    }
    writeFileSync(path, tx.getValue());
    const rule = new recv.PlaceRule({ heapBytes: 256, timestamp: { item: 0x1600, step: 256, heaps: 2 } });
    const dataRing = new recv.ChunkRingbuffer(4);
    const freeRing = new recv.ChunkRingbuffer(4);
    const stream = new recv.ChunkRingStream(new recv.StreamConfig(), new recv.ChunkStreamConfig({ place: rule }), dataRing, freeRing);
    for (let i = 0; i < 4; i++) stream.addFreeChunk(rule.makeChunk());
    stream.addFileReader(path);
    const seen: Array<[bigint, number[], number, number]> = [];
    for await (const chunk of dataRing) {
      seen.push([chunk.chunkId, Array.from(chunk.present), chunk.data[0], chunk.data[256]]);
      stream.addFreeChunk(chunk);
    }
    stream.close();
    dataRing.close();
    freeRing.close();
    expect(seen).toEqual([[0n, [1, 1], 10, 11], [1n, [1, 1], 12, 13]]);
  });
});
