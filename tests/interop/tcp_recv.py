"""spead2 (PyPI) receives heaps over TCP (recv.Stream.add_tcp_reader) on 127.0.0.1.

Prints the listening port on the first line, then, once the sender closes the
connection (which stops the stream), [cnt, sha256 of item 0x1234] per heap as
JSON. Usage: tcp_recv.py MAX_SIZE
"""
import hashlib
import json
import socket
import sys

import spead2
import spead2.recv


def main() -> None:
    max_size = int(sys.argv[1])
    stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=4))
    # A listening socket of our own, so that the port is known before any connection.
    acceptor = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    acceptor.bind(("127.0.0.1", 0))
    acceptor.listen(1)
    stream.add_tcp_reader(acceptor, max_size)
    print(acceptor.getsockname()[1], flush=True)
    acceptor.close()
    out = []
    for heap in stream:
        for item in heap.get_items():
            if item.id == 0x1234:
                out.append([heap.cnt, hashlib.sha256(bytes(memoryview(item))).hexdigest()])
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
