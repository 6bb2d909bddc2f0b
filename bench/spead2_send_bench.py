"""spead2's side of bench/send_matrix.ts (run by it; not a test).

  spead2_send_bench.py sink
      Binds a UDP socket on 127.0.0.1 (ephemeral port) with the smallest
      receive buffer, prints the port, and never reads it: every datagram
      beyond the tiny buffer is dropped by the kernel. Exits when stdin closes
      (or after 15 minutes).

  spead2_send_bench.py run MODE PORT HEAPS HEAP_SIZE PACKET_SIZE
      Sends HEAPS heaps of HEAP_SIZE bytes to 127.0.0.1:PORT at rate 0 with
      spead2.send.asyncio.UdpStream and prints one JSON line
      {"seconds", "bytes", "heaps", "spead2"}. MODE is
        pipeline: two buffers, max_heaps=2, await the slot's previous heap, a
                  heap from ItemGroup.get_heap() each time (tutorial 8, minus
                  the per-heap fill, so the send path is what is timed);
        batch:    tutorial 11: 2 batches of max(1, 512 KiB / HEAP_SIZE)
                  pre-built heaps in HeapReferenceLists, timestamps updated
                  in place, async_send_heaps(..., GroupMode.SERIAL).
      The thread pool has one unpinned thread (our library has no affinity
      control, so neither side is pinned).
"""

import asyncio
import json
import select
import socket
import sys
import time

import numpy as np

import spead2
import spead2.send
import spead2.send.asyncio


def sink() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel rounds up to its minimum
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if ready and not sys.stdin.buffer.read1(4096):
            break
    sock.close()


def item_group(heap_size: int) -> spead2.send.ItemGroup:
    ig = spead2.send.ItemGroup()
    ig.add_item(0x1600, "timestamp", "Index of the first sample", shape=(),
                format=[("u", spead2.Flavour().heap_address_bits)])
    ig.add_item(0x3300, "adc_samples", "ADC converter output", shape=(heap_size,), dtype=np.int8)
    return ig


def done_future() -> asyncio.Future:
    f = asyncio.get_running_loop().create_future()
    f.set_result(0)
    return f


async def pipeline(stream, ig, n_heaps: int, heap_size: int) -> float:
    buffers = [np.ones(heap_size, np.int8) for _ in range(2)]
    futures = [done_future(), done_future()]
    start = time.perf_counter()
    for i in range(n_heaps):
        k = i % 2
        await futures[k]
        ig["timestamp"].value = i * heap_size
        ig["adc_samples"].value = buffers[k]
        futures[k] = stream.async_send_heap(ig.get_heap())
    for f in futures:
        await f
    return time.perf_counter() - start


async def batch(stream, ig, n_heaps: int, heap_size: int, batch_heaps: int) -> float:
    def make(adc, ts, first):
        heaps = []
        for j in range(batch_heaps):
            ig["timestamp"].value = ts[j, ...]
            ig["adc_samples"].value = adc[j, ...]
            descriptors = "all" if first and j == 0 else "none"
            heaps.append(spead2.send.HeapReference(ig.get_heap(descriptors=descriptors, data="all")))
        return spead2.send.HeapReferenceList(heaps)

    slots = []
    for _ in range(2):
        adc = np.ones((batch_heaps, heap_size), np.int8)
        ts = np.ones(batch_heaps, ">u8")
        slots.append({"adc": adc, "ts": ts, "heaps": make(adc, ts, False), "future": done_future()})
    first = make(slots[0]["adc"], slots[0]["ts"], True)
    start = time.perf_counter()
    for i in range(0, n_heaps, batch_heaps):
        slot = slots[(i // batch_heaps) % 2]
        end = min(i + batch_heaps, n_heaps)
        await slot["future"]
        slot["ts"][: end - i] = np.arange(i * heap_size, end * heap_size, heap_size)
        heaps = slot["heaps"] if i else first
        if end - i < batch_heaps:
            heaps = heaps[: end - i]
        slot["future"] = stream.async_send_heaps(heaps, spead2.send.GroupMode.SERIAL)
    for slot in slots:
        await slot["future"]
    return time.perf_counter() - start


async def run(mode: str, port: int, n_heaps: int, heap_size: int, packet_size: int) -> None:
    batch_heaps = max(1, 512 * 1024 // heap_size)
    max_heaps = 2 * batch_heaps if mode == "batch" else 2
    config = spead2.send.StreamConfig(rate=0.0, max_heaps=max_heaps, max_packet_size=packet_size)
    stream = spead2.send.asyncio.UdpStream(spead2.ThreadPool(1), [("127.0.0.1", port)], config)
    ig = item_group(heap_size)
    if mode == "pipeline":
        seconds = await pipeline(stream, ig, n_heaps, heap_size)
    elif mode == "batch":
        seconds = await batch(stream, ig, n_heaps, heap_size, batch_heaps)
    else:
        raise SystemExit(f"unknown mode {mode}")
    await stream.async_send_heap(ig.get_end())
    print(json.dumps({"seconds": seconds, "bytes": n_heaps * heap_size, "heaps": n_heaps,
                      "spead2": spead2.__version__}), flush=True)


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "sink":
        sink()
    elif len(sys.argv) == 7 and sys.argv[1] == "run":
        mode, port, heaps, heap_size, packet_size = sys.argv[2], *map(int, sys.argv[3:])
        asyncio.run(run(mode, port, heaps, heap_size, packet_size))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
