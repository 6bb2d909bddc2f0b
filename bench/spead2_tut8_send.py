"""spead2's tutorial 8 sender, as the Python tutorial program does it, for bench/send.ts.

  spead2_tut8_send.py [-n HEAPS] [-p PACKET_SIZE] [-H HEAP_SIZE] HOST PORT

Two State objects each hold a sample buffer and the future of the last heap sent
from it; heap i waits for states[i % 2]'s previous send, refills the buffer
with i, and sends a heap referring to it (max_heaps=2, rate 0). Prints
"<x> MB/s" like the tutorial, then sends the end heap.
"""
import argparse
import asyncio
import time

import numpy as np

import spead2
import spead2.send
import spead2.send.asyncio


class State:
    def __init__(self, heap_size: int) -> None:
        self.adc_samples = np.ones(heap_size, np.int8)
        self.future = asyncio.get_running_loop().create_future()
        self.future.set_result(0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--heaps", type=int, default=1000)
    parser.add_argument("-p", "--packet-size", type=int)
    parser.add_argument("-H", "--heap-size", type=int, default=1024 * 1024)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args()

    thread_pool = spead2.ThreadPool(1)
    config = spead2.send.StreamConfig(rate=0.0, max_heaps=2)
    if args.packet_size is not None:
        config.max_packet_size = args.packet_size
    stream = spead2.send.asyncio.UdpStream(thread_pool, [(args.host, args.port)], config)
    heap_size = args.heap_size
    ig = spead2.send.ItemGroup()
    ig.add_item(0x1600, "timestamp", "Index of the first sample", shape=(), format=[("u", spead2.Flavour().heap_address_bits)])
    ig.add_item(0x3300, "adc_samples", "ADC converter output", shape=(heap_size,), dtype=np.int8)

    states = [State(heap_size) for _ in range(2)]
    start = time.perf_counter()
    for i in range(args.heaps):
        state = states[i % len(states)]
        await state.future
        state.adc_samples.fill(((i + 128) % 256) - 128)
        ig["timestamp"].value = i * heap_size
        ig["adc_samples"].value = state.adc_samples
        state.future = stream.async_send_heap(ig.get_heap())
    for state in states:
        await state.future
    elapsed = time.perf_counter() - start
    print(f"{heap_size * args.heaps / elapsed / 1e6:.2f} MB/s")
    await stream.async_send_heap(ig.get_end())


if __name__ == "__main__":
    asyncio.run(main())
