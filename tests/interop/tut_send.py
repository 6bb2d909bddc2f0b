"""A spead2 stand-in for the tutorial senders (tut_2 / tut_8), for testing the receivers.

Sends N heaps of tutorial 2's items -- timestamp (0x1600, u40, immediate) and
adc_samples (0x3300, int8[heap_size]) -- to host:port over UDP, then an
end-of-stream heap. Heap i has timestamp i * heap_size, and adc_samples
either filled with int8(i) (tut_8's data: power = int8(i)**2 exactly) or, with
--random, uniform integers in [-100, 100) (tut_2's data: power about 3333.5).
Descriptors go in the first heap only (ItemGroup.get_heap()). Prints
"{MB/s:.2f} MB/s" as tut_8 does.

    python tut_send.py [-n HEAPS] [-H HEAP_SIZE] [-p PACKET_SIZE] [--rate B/s] [--random] [--seed S] host port
"""
import argparse
import time

import numpy as np

import spead2
import spead2.send


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--heaps", type=int, default=10)
    parser.add_argument("-p", "--packet-size", type=int)
    parser.add_argument("-H", "--heap-size", type=int, default=1024 * 1024)
    parser.add_argument("--rate", type=float, default=100e6, help="bytes per second (0 = unlimited)")
    parser.add_argument("--random", action="store_true", help="tut_2's random samples instead of int8(i)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("host", type=str)
    parser.add_argument("port", type=int)
    args = parser.parse_args()

    config = spead2.send.StreamConfig(rate=args.rate, max_heaps=2)
    if args.packet_size is not None:
        config.max_packet_size = args.packet_size
    stream = spead2.send.UdpStream(spead2.ThreadPool(), [(args.host, args.port)], config)
    heap_size = args.heap_size
    item_group = spead2.send.ItemGroup()
    item_group.add_item(0x1600, "timestamp", "Index of the first sample", shape=(),
                        format=[("u", spead2.Flavour().heap_address_bits)])
    item_group.add_item(0x3300, "adc_samples", "ADC converter output", shape=(heap_size,), dtype=np.int8)

    rng = np.random.default_rng(args.seed)
    samples = np.empty(heap_size, np.int8)
    start = time.perf_counter()
    for i in range(args.heaps):
        if args.random:
            samples = rng.integers(-100, 100, size=heap_size, dtype=np.int8)
        else:
            samples.fill((i + 128) % 256 - 128)  # int8(i), wrapping as a C cast does
        item_group["timestamp"].value = i * heap_size
        item_group["adc_samples"].value = samples
        stream.send_heap(item_group.get_heap())  # blocking: the buffer can be refilled afterwards
    elapsed = time.perf_counter() - start
    print(f"{heap_size * args.heaps / elapsed / 1e6:.2f} MB/s", flush=True)
    stream.send_heap(item_group.get_end())


if __name__ == "__main__":
    main()
