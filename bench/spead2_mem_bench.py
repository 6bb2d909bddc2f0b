"""spead2's side of bench/ffi.ts: MB/s of encoding 1 MiB heaps into memory
(BytesStream, 1472-byte packets) and decoding them back (add_buffer_reader ->
heaps, no pool), median of 5 runs. Prints one JSON line."""
import json
import statistics
import time

import numpy as np

import spead2
import spead2.recv
import spead2.send

SIZE = 1 << 20
N = 64
RUNS = 5


def main() -> None:
    data = (np.arange(SIZE) & 0xFF).astype(np.uint8)
    heap = spead2.send.Heap()
    heap.add_item(spead2.Item(0x1600, "timestamp", "", (), format=[("u", 40)], value=0))
    heap.add_item(spead2.Item(0x3300, "data", "", (SIZE,), dtype=np.uint8, value=data))
    enc, dec = [], []
    pool = spead2.ThreadPool()
    for _ in range(RUNS):
        stream = spead2.send.BytesStream(pool, spead2.send.StreamConfig(max_packet_size=1472))
        t0 = time.perf_counter()
        for _ in range(N):
            stream.send_heap(heap)
        enc.append(N * SIZE / 1e6 / (time.perf_counter() - t0))
        raw = stream.getvalue()
        rx = spead2.recv.Stream(pool, spead2.recv.StreamConfig(), spead2.recv.RingStreamConfig(heaps=8))
        t1 = time.perf_counter()
        rx.add_buffer_reader(raw)
        got = sum(1 for _ in rx)
        dec.append(got * SIZE / 1e6 / (time.perf_counter() - t1))
    print(json.dumps({"encode": statistics.median(enc), "decode": statistics.median(dec), "version": spead2.__version__}))


if __name__ == "__main__":
    main()
