/** Chunk stream groups: members filling the same chunks, LOSSY and LOSSLESS eviction, stop, no leaks. */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { Flavour, recv, send } from "../mod.ts";
import { concat, python, root } from "./helpers.ts";

const F40 = new Flavour();
const ANT_ID = 0x4101;

function antHeap(cnt: bigint, timestamp: bigint, ant: number, samples: Uint8Array) {
  const h = new send.Heap(F40);
  h.addImmediate(0x1600, timestamp);
  h.addImmediate(ANT_ID, BigInt(ant));
  h.addRaw(0x3300, samples);
  return [...new send.PacketGenerator(h, cnt, 9000)];
}

/** Heap slot (t, ant) = t * 2 + ant: two members, one antenna each. */
function rule(heapSize: number, timeHeaps: number): recv.PlaceRule {
  return new recv.PlaceRule({
    heapBytes: heapSize,
    timestamp: { item: 0x1600, step: heapSize, heaps: timeHeaps },
    axes: [{ item: ANT_ID, count: 2 }],
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Open fds and the library's threads (named `spead-*`, zig/recv/udp.zig and others) of
 * this process, through a child `sh` (Deno wants --allow-all for /proc/self). Only our
 * threads are counted: the runtime starts GC and compiler threads of its own when it
 * likes (more under load and under forced collections).
 */
function counts(): { fds: number; threads: number } {
  const out = spawnSync(
    "sh",
    ["-c", `ls /proc/${process.pid}/fd | wc -l; cat /proc/${process.pid}/task/*/comm 2>/dev/null | grep -c '^spead-'`],
    { encoding: "utf8" },
  ).stdout.trim().split("\n").map(Number);
  return { fds: out[0], threads: out[1] };
}

describe("recv.ChunkStreamRingGroup", () => {
  test("two members on two UDP ports fill the same chunks (spead2 senders, LOSSLESS)", async () => {
    const heapSize = 8192;
    const timeHeaps = 4;
    const nHeaps = 32;
    const place = rule(heapSize, timeHeaps);
    const dataRing = new recv.ChunkRingbuffer(4);
    const freeRing = new recv.ChunkRingbuffer(8);
    const group = new recv.ChunkStreamRingGroup(
      new recv.ChunkStreamGroupConfig({ maxChunks: 4, evictionMode: recv.EvictionMode.LOSSLESS }),
      dataRing,
      freeRing,
    );
    for (let i = 0; i < 8; i++) group.addFreeChunk(place.makeChunk());
    const ports: number[] = [];
    for (let m = 0; m < 2; m++) {
      const member = group.emplaceBack(new recv.StreamConfig({ maxHeaps: 4 }), new recv.ChunkStreamConfig({ place, maxChunks: 4 }));
      expect(member.index).toBe(m);
      ports.push(member.addUdpReader(0, { bindHostname: "127.0.0.1" }).port);
    }
    expect(group.length).toBe(2);
    const { spawn } = await import("node:child_process");
    const children = ports.map((port, ant) =>
      spawn(python, [
        `${root}/tests/interop/chunk_send.py`,
        "-n",
        String(nHeaps),
        "-H",
        String(heapSize),
        "--ant",
        String(ant),
        "--rate",
        "30e6",
        "127.0.0.1",
        String(port),
      ], { stdio: ["ignore", "pipe", "pipe"] })
    );
    const timer = setTimeout(() => {
      for (const c of children) c.kill("SIGKILL");
      group.stop();
    }, 30_000);
    try {
      const chunks = [];
      for await (const chunk of dataRing) {
        chunks.push({ id: chunk.chunkId, present: Array.from(chunk.present), data: chunk.data.slice() });
        group.addFreeChunk(chunk);
      }
      expect(chunks.map((c) => Number(c.id))).toEqual([...Array(nHeaps / timeHeaps).keys()]);
      for (const c of chunks) {
        for (let tt = 0; tt < timeHeaps; tt++) {
          for (let ant = 0; ant < 2; ant++) {
            const i = Number(c.id) * timeHeaps + tt;
            const slot = tt * 2 + ant;
            expect(c.present[slot]).toBe(i === 0 ? 0 : 1); // heap 0 carries descriptors: rejected
            if (i === 0) continue;
            const row = c.data.subarray(slot * heapSize, (slot + 1) * heapSize);
            expect(row.every((b) => b === ((i * 3 + 1 + ant) & 0xff))).toBe(true);
          }
        }
      }
      for (const m of group) expect(m.stats.rejected_heaps).toBe(2); // heap 0 and the end heap
    } finally {
      clearTimeout(timer);
      for (const c of children) c.kill("SIGKILL");
      group.close();
      dataRing.close();
      freeRing.close();
    }
  });

  test("LOSSY: a silent member cannot hold the group back; LOSSLESS: it does, until stop", async () => {
    const heapSize = 1024;
    // Two rounds; the second must leave no more fds or threads than the first did
    // (the runtime starts helper threads of its own on first use). Each round starts
    // two reader threads and a socket per group, two groups a round: a leak shows as +2
    // or more (the slack of 1 is for the runtimes' own lazily opened fds).
    let afterFirst = { fds: 0, threads: 0 };
    const modes = [recv.EvictionMode.LOSSY, recv.EvictionMode.LOSSLESS, recv.EvictionMode.LOSSY, recv.EvictionMode.LOSSLESS];
    for (const [round, mode] of modes.entries()) {
      const place = rule(heapSize, 2);
      const dataRing = new recv.ChunkRingbuffer(16);
      const freeRing = new recv.ChunkRingbuffer(16);
      const group = new recv.ChunkStreamRingGroup(new recv.ChunkStreamGroupConfig({ maxChunks: 2, evictionMode: mode }), dataRing, freeRing);
      for (let i = 0; i < 16; i++) group.addFreeChunk(place.makeChunk());
      const busy = group.emplaceBack(new recv.StreamConfig(), new recv.ChunkStreamConfig({ place }));
      const silent = group.emplaceBack(new recv.StreamConfig(), new recv.ChunkStreamConfig({ place }));
      silent.addUdpReader(0, { bindHostname: "127.0.0.1" }); // bound, never sent to
      const parts: Uint8Array[] = [];
      for (let t = 0; t < 12; t++) parts.push(...antHeap(BigInt(t + 1), BigInt(t * heapSize), 0, new Uint8Array(heapSize).fill(t)));
      busy.addBufferReader(concat(parts));
      for (let i = 0; i < 1000 && mode === recv.EvictionMode.LOSSY && dataRing.qsize() < 4; i++) await sleep(5);
      if (mode === recv.EvictionMode.LOSSLESS) await sleep(100);
      if (mode === recv.EvictionMode.LOSSY) {
        expect(dataRing.qsize()).toBeGreaterThanOrEqual(4);
        const first = await dataRing.get();
        expect(first.chunkId).toBe(0n);
        expect(Array.from(first.present)).toEqual([1, 0, 1, 0]);
        expect(first.data[heapSize * 2]).toBe(1);
        first.release(); // JS may keep or free what it took, whatever the group does
      } else {
        expect(dataRing.qsize()).toBe(0);
      }
      const held = mode === recv.EvictionMode.LOSSY ? await dataRing.get() : null;
      // The count sees our threads: at least the silent member's UDP reader is running.
      expect(counts().threads).toBeGreaterThan(afterFirst.threads);
      group.stop(); // while JS holds a chunk; stop on a member would do the same
      const rest = [];
      for await (const c of dataRing) rest.push(c);
      if (mode === recv.EvictionMode.LOSSLESS) expect(rest).toEqual([]);
      for (const c of rest) c.release();
      held?.release();
      expect(() => group.emplaceBack(new recv.StreamConfig(), new recv.ChunkStreamConfig({ place }))).toThrow();
      group.close();
      dataRing.close();
      freeRing.close();
      if (round === 1) afterFirst = counts();
    }
    // A leak stays; what other suites of the same process start and stop meanwhile (Deno runs
    // every file in one process) comes and goes: wait up to 2 s for the counts to settle.
    let after = counts();
    for (let i = 0; i < 40 && (after.fds > afterFirst.fds + 1 || after.threads > afterFirst.threads); i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = counts();
    }
    expect(after.fds).toBeLessThanOrEqual(afterFirst.fds + 1);
    expect(after.threads).toBeLessThanOrEqual(afterFirst.threads);
  });
});
