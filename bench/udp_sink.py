"""A draining UDP sink on 127.0.0.1 for the benchmarks: prints its port, then
reads and discards datagrams until stdin closes; finally prints how many it read.
Reading happens in a thread with a blocking recv_into, so it keeps up as well as
one Python thread can (the kernel drops what it cannot)."""
import socket
import sys
import threading

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sock.bind(("127.0.0.1", 0))
sock.settimeout(0.2)
count = 0
done = threading.Event()


def drain() -> None:
    global count
    buf = bytearray(65536)
    while not done.is_set():
        try:
            sock.recv_into(buf)
            count += 1
        except socket.timeout:
            pass


t = threading.Thread(target=drain, daemon=True)
t.start()
print(sock.getsockname()[1], flush=True)
sys.stdin.buffer.read()
done.set()
t.join()
print(count, flush=True)
