"""spead2 (PyPI) sends tutorial 11's heaps for the chunk-stream interop test.

Heap i carries timestamp i * heap_size (0x1600, immediate) and adc_samples
(0x3300, int8[heap_size]) filled with int8(i * 3 + 1), and with --ant A the
immediate 0x4101 = A (samples then int8(i * 3 + 1 + A)). Heaps in --skip are not
sent; the heaps in --late are sent again at the end (too old by then); the
first heap also carries the descriptors (so its HEAP_LENGTH differs and a
tutorial-12 rule rejects it). Then the end-of-stream heap.

    python chunk_send.py -n HEAPS -H HEAP_SIZE [--skip 5,6] [--late 1] [--rate B/s] [--ant A] host port
"""
import argparse

import numpy as np

import spead2
import spead2.send


def ints(text):
    return [int(x) for x in text.split(",") if x]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--heaps", type=int, default=64)
    parser.add_argument("-H", "--heap-size", type=int, default=8192)
    parser.add_argument("-p", "--packet-size", type=int, default=9000)
    parser.add_argument("--skip", type=ints, default=[])
    parser.add_argument("--late", type=ints, default=[])
    parser.add_argument("--rate", type=float, default=50e6)
    parser.add_argument("--ant", type=int, help="also send item 0x4101 (an antenna index) with this value")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args()

    config = spead2.send.StreamConfig(rate=args.rate, max_heaps=4, max_packet_size=args.packet_size)
    stream = spead2.send.UdpStream(spead2.ThreadPool(), [(args.host, args.port)], config)
    ig = spead2.send.ItemGroup()
    ig.add_item(0x1600, "timestamp", "Index of the first sample", shape=(),
                format=[("u", spead2.Flavour().heap_address_bits)])
    ig.add_item(0x3300, "adc_samples", "ADC converter output", shape=(args.heap_size,), dtype=np.int8)
    if args.ant is not None:
        ig.add_item(0x4101, "ant", "Antenna index", shape=(), format=[("u", spead2.Flavour().heap_address_bits)])
        ig["ant"].value = args.ant
    order = [i for i in range(args.heaps) if i not in args.skip] + args.late
    for i in order:
        ig["timestamp"].value = i * args.heap_size
        ig["adc_samples"].value = np.full(args.heap_size, ((i * 3 + 1 + (args.ant or 0)) + 128) % 256 - 128, np.int8)
        heap = ig.get_heap(descriptors="all" if i == 0 else "none", data="all")
        stream.send_heap(heap)
    stream.send_heap(ig.get_end())
    print("sent", len(order), flush=True)


if __name__ == "__main__":
    main()
