"""spead2 (PyPI) sends heaps over TCP (spead2.send.TcpStream) to 127.0.0.1:PORT.

Heap i (cnt i + 1) carries item 0x1234: 16 + (i * 7919) % 150000 bytes of
(j * 13 + i) & 0xff. Prints [cnt, sha256 of the item] per heap as JSON once
every heap is sent (16 bytes at least: spead2 sends shorter items as
immediates); closing the stream then closes the connection.
Usage: tcp_send.py PORT N_HEAPS PACKET_SIZE
"""
import hashlib
import json
import sys

import numpy as np
import spead2
import spead2.send


def main() -> None:
    port, n, packet = (int(a) for a in sys.argv[1:4])
    stream = spead2.send.TcpStream(
        spead2.ThreadPool(), [("127.0.0.1", port)], spead2.send.StreamConfig(max_packet_size=packet)
    )
    flavour = spead2.Flavour(4, 64, 48, 0)
    out = []
    for i in range(n):
        size = 16 + (i * 7919) % 150000
        data = ((np.arange(size, dtype=np.uint32) * 13 + i) & 0xFF).astype(np.uint8)
        heap = spead2.send.Heap(flavour)
        heap.add_item(spead2.Item(0x1234, "data", "", shape=(size,), dtype=np.uint8, value=data))
        stream.send_heap(heap, i + 1)
        out.append([i + 1, hashlib.sha256(data.tobytes()).hexdigest()])
    del stream
    print(json.dumps(out))


if __name__ == "__main__":
    main()
