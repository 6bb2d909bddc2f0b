"""spead2's tutorial 9 receiver (memory pool), as the Python tutorial program
does it, for bench/tut_pair.ts: prints "Timestamp: ... Power: ..." per heap and
"Received N heaps" at the stop heap. Power uses numpy (the tutorial uses numba)."""
import argparse

import numpy as np

import spead2
import spead2.recv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--heap-size", type=int, default=1024 * 1024)
    parser.add_argument("--bind", default="")
    parser.add_argument("port", type=int)
    args = parser.parse_args()

    thread_pool = spead2.ThreadPool()
    config = spead2.recv.StreamConfig(max_heaps=2)
    ring_config = spead2.recv.RingStreamConfig(heaps=2)
    pool_heaps = config.max_heaps + ring_config.heaps + 1
    config.memory_allocator = spead2.MemoryPool(
        lower=0, upper=args.heap_size + 8192, max_free=pool_heaps, initial=pool_heaps
    )
    stream = spead2.recv.Stream(thread_pool, config, ring_config)
    stream.add_udp_reader(args.port, bind_hostname=args.bind)
    ig = spead2.ItemGroup()
    n_heaps = 0
    for heap in stream:
        ig.update(heap)
        if "timestamp" in ig and ig["adc_samples"].value is not None:
            samples = ig["adc_samples"].value.astype(np.int64)
            power = float(np.mean(samples * samples))
            n_heaps += 1
            print(f"Timestamp: {ig['timestamp'].value:<10} Power: {power:.2f}", flush=True)
    print(f"Received {n_heaps} heaps", flush=True)


if __name__ == "__main__":
    main()
