/**
 * NativeObject (src/lifetime.ts) and the shared waiter (src/waiter.ts) as every
 * native object sees them: a clear error after close, idempotent close and
 * `Symbol.dispose`, waits released by a close, sends settled by a close.
 */
import { describe, expect, test } from "bun:test";
import { MemoryPool, NativeObject, recv, send, SpeadError } from "../mod.ts";

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SpeadError);
    expect((err as SpeadError).code).toBe(code as never);
    return;
  }
  throw new Error(`no ${code} error`);
}

/** Closes after the wait has started; resolves to the error code it ended with (bounded: 2 s). */
async function outcomeOfCloseDuring(wait: Promise<unknown>, close: () => void): Promise<string> {
  const pending = wait.then(
    () => "value",
    (err: unknown) => (err instanceof SpeadError ? err.code : String(err)),
  );
  await new Promise((r) => setTimeout(r, 20));
  close();
  return await Promise.race([pending, new Promise<string>((r) => setTimeout(() => r("still waiting"), 2000))]);
}

describe("NativeObject", () => {
  test("every kind: the handle until close, then a SpeadError naming why; close twice is fine", () => {
    const ring = new recv.ChunkRingbuffer(2);
    const objects: Array<[NativeObject, string]> = [
      [new recv.Stream(), "closed"],
      [new MemoryPool(0, 4096, 1, 1), "closed"],
      [send.allocateBuffer(4096), "released"],
      [ring, "closed"],
      [new recv.Chunk({ data: 4096, present: 1 }), "released"],
      [new send.UdpStream([["127.0.0.1", 9]]), "closed"],
    ];
    for (const [obj, code] of objects) {
      expect(obj).toBeInstanceOf(NativeObject);
      expect(obj.nativeHandle).toBeGreaterThan(0);
      obj.close();
      expectCode(() => obj.nativeHandle, code);
      obj.close();
      obj[Symbol.dispose]();
    }
  });

  test("`using` closes at the end of the block", () => {
    let kept: recv.Stream | undefined;
    {
      using stream = new recv.Stream();
      kept = stream;
      expect(stream.nativeHandle).toBeGreaterThan(0);
    }
    expectCode(() => kept!.nativeHandle, "closed");
    expectCode(() => kept!.stats, "closed");
  });

  test("a get() waiting on the shared waiter ends when its stream or ring is closed", async () => {
    const stream = new recv.Stream();
    expect(await outcomeOfCloseDuring(stream.get(), () => stream.close())).toMatch(/^(closed|stopped)$/);
    expectCode(() => stream.getNowait(), "closed");
    const ring = new recv.ChunkRingbuffer(2);
    expect(await outcomeOfCloseDuring(ring.get(), () => ring.close())).toMatch(/^(closed|stopped)$/);
  });

  test("a send stream's sends settle through the shared waiter, and close settles the rest", async () => {
    const stream = new send.UdpStream([["127.0.0.1", 9]], new send.StreamConfig({ rate: 1e6, maxHeaps: 8 }));
    const heap = new send.Heap();
    heap.addRaw(0x1000, new Uint8Array(8000));
    expect(await stream.asyncSendHeap(heap)).toBeGreaterThan(8000);
    // 4 x 256 KiB at 1 MB/s (far past spead2's 64 KiB burst): later heaps are still queued
    // when close() stops the stream.
    heap.addRaw(0x1001, new Uint8Array(256 * 1024));
    const sends = [1, 2, 3, 4].map(() => stream.asyncSendHeap(heap).then(() => "sent", (err: SpeadError) => err.code));
    stream.close();
    const outcomes = await Promise.all(sends);
    expect(outcomes.every((o) => o === "sent" || o === "stopped")).toBe(true);
    expect(outcomes).toContain("stopped");
    expectCode(() => stream.flush(), "closed");
  });
});
