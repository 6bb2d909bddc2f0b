"""spead2's side of bench/recv.ts (run by it; not a test). Two long-lived roles,
driven by JSON lines on stdin, answering JSON lines on stdout, so that Python
start-up is paid once per bench rather than once per run. Both exit when stdin
closes, or after 10 minutes.

  spead2_recv_bench.py sender
      {"port", "heaps", "heap_size", "packet_size", "rate"} -> {"seconds", "heaps"}
      Sends HEAPS heaps of one int8 item of HEAP_SIZE bytes (no descriptors,
      so every heap's payload is exactly HEAP_SIZE) to 127.0.0.1:PORT with
      spead2.send.asyncio.UdpStream at RATE bytes/s (0 = unlimited; spead2
      counts packet bytes, headers included), then an end-of-stream heap.
      Tutorial 11's scheme: 2 batches of max(1, 512 KiB / HEAP_SIZE)
      pre-built heaps, async_send_heaps(..., GroupMode.SERIAL), each batch
      re-sent once its previous send completes; cnts are assigned by the stream.

  spead2_recv_bench.py receiver
      {"cmd": "listen", "heap_size", "max_heaps", "ring_heaps", "pool_heaps", "pool", "warm", "until"} -> {"port", "rcvbuf"}
          A recv.Stream(StreamConfig(max_heaps, memory_allocator=MemoryPool(0,
          heap_size + 8192, pool_heaps, pool_heaps)), RingStreamConfig(ring_heaps))
          (spead2's default allocator instead of the pool when POOL is false)
          with a UDP reader on 127.0.0.1 (ephemeral port, SO_RCVBUF 8 MiB
          requested as spead2's add_udp_reader(port) does; reported as rcvbuf). A thread iterates the stream and counts heaps without
          touching their data (each heap is dropped, returning its buffer).
          Minor page faults (getrusage, whole process) are read once the
          WARM-th heap has been dropped and again once the UNTIL-th has (or when
          iteration ends, if fewer arrive).
      {"cmd": "wait", "timeout"} -> {"heaps", "first", "last", "stopped", "cpu", "faults", "fault_heaps", "stats"}
          Waits up to TIMEOUT seconds for the end-of-stream heap, then stops
          the stream (a lost end heap must not hang the bench) and reports,
          with the process's CPU seconds (user + system, all threads) since
          listen, and the minor faults over the FAULT_HEAPS heaps after warm-up
          (null when fewer than WARM heaps arrived).
      {"cmd": "info"} -> versions and machine facts for the table header.

  Both roles speak the same receiver protocol as bench/recv.ts --child, which
  drives our receiver under Bun and under Deno.
"""

import asyncio
import json
import logging
import os
import platform
import resource
import select
import socket
import sys
import threading
import time

import numpy as np

import spead2
import spead2.recv
import spead2.send
import spead2.send.asyncio

DEADLINE = time.monotonic() + 600
# Dropped heaps are the point of some runs; spead2's per-heap warnings would flood stderr.
logging.getLogger("spead2").setLevel(logging.ERROR)


def lines():
    """JSON commands from stdin until it closes (bounded by DEADLINE)."""
    buf = b""
    while time.monotonic() < DEADLINE:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if not ready:
            continue
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def send_run(port, heaps, heap_size, packet_size, rate):
    batch_heaps = max(1, (512 * 1024) // heap_size)
    batches = 2
    config = spead2.send.StreamConfig(rate=float(rate), max_heaps=batches * batch_heaps,
                                      max_packet_size=packet_size)
    stream = spead2.send.asyncio.UdpStream(spead2.ThreadPool(1), [("127.0.0.1", port)], config)
    ig = spead2.send.ItemGroup()
    ig.add_item(0x3300, "adc_samples", "ADC converter output", shape=(heap_size,), dtype=np.int8)
    ig["adc_samples"].value = np.ones(heap_size, np.int8)
    heap = ig.get_heap(descriptors="none", data="all")
    lists = [spead2.send.HeapReferenceList([spead2.send.HeapReference(heap) for _ in range(batch_heaps)])
             for _ in range(batches)]
    futures = [None] * batches
    sent = 0
    start = time.perf_counter()
    i = 0
    while sent < heaps:
        b = i % batches
        if futures[b] is not None:
            await futures[b]
        n = min(batch_heaps, heaps - sent)
        refs = lists[b] if n == batch_heaps else spead2.send.HeapReferenceList(
            [spead2.send.HeapReference(heap) for _ in range(n)])
        futures[b] = stream.async_send_heaps(refs, spead2.send.GroupMode.SERIAL)
        sent += n
        i += 1
    for f in futures:
        if f is not None:
            await f
    seconds = time.perf_counter() - start
    await stream.async_send_heap(ig.get_end())
    return {"seconds": seconds, "heaps": sent}


def sender():
    for cmd in lines():
        reply(asyncio.run(send_run(cmd["port"], cmd["heaps"], cmd["heap_size"], cmd["packet_size"], cmd["rate"])))


class Receiver:
    def __init__(self, heap_size, max_heaps, ring_heaps, pool_heaps, pool=True, warm=0, until=0):
        self.rusage = resource.getrusage(resource.RUSAGE_SELF)
        if pool:
            allocator = spead2.MemoryPool(lower=0, upper=heap_size + 8192, max_free=pool_heaps, initial=pool_heaps)
            config = spead2.recv.StreamConfig(max_heaps=max_heaps, memory_allocator=allocator)
        else:
            config = spead2.recv.StreamConfig(max_heaps=max_heaps)
        self.warm = warm
        self.until = until
        self.faults0 = None
        self.faults1 = None
        self.stream = spead2.recv.Stream(spead2.ThreadPool(1), config,
                                         spead2.recv.RingStreamConfig(heaps=ring_heaps))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A socket handed to add_udp_reader keeps its buffer size, so ask for
        # spead2's default (8 MiB) here, as add_udp_reader(port) would.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.stream.add_udp_reader(sock)  # spead2 dups the descriptor
        sock.close()
        self.heaps = 0
        self.first = None
        self.last = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        n = 0
        now = time.perf_counter
        warm = self.warm
        until = self.until
        for heap in self.stream:
            t = now()
            if n == 0:
                self.first = t
            self.last = t
            n += 1
            del heap  # back to the pool without touching the data
            if n == warm:
                self.faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if n == until and self.faults0 is not None:
                self.faults1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        if self.faults1 is None:
            self.faults1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self.heaps = n

    def wait(self, timeout):
        self.thread.join(timeout)
        stopped = not self.thread.is_alive()
        if not stopped:
            self.stream.stop()
            self.thread.join(5)
        r0, r1 = self.rusage, resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        st = self.stream.stats
        stats = {name: getattr(st, name) for name in
                 ("heaps", "incomplete_heaps_evicted", "incomplete_heaps_flushed", "packets", "worker_blocked")}
        measured = self.faults0 is not None and self.faults1 is not None
        return {"heaps": self.heaps, "first": self.first, "last": self.last, "stopped": stopped, "cpu": cpu,
                "faults": self.faults1 - self.faults0 if measured else None,
                "fault_heaps": min(self.heaps, self.until) - self.warm if measured else 0, "stats": stats}


def receiver():
    rx = None
    for cmd in lines():
        if cmd["cmd"] == "listen":
            rx = Receiver(cmd["heap_size"], cmd["max_heaps"], cmd["ring_heaps"], cmd["pool_heaps"],
                          cmd.get("pool", True), cmd.get("warm", 0), cmd.get("until", 0))
            reply({"port": rx.port, "rcvbuf": rx.rcvbuf})
        elif cmd["cmd"] == "wait":
            reply(rx.wait(cmd["timeout"]))
            rx = None
        elif cmd["cmd"] == "info":
            model = ""
            try:
                with open("/proc/cpuinfo") as f:
                    model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
                with open("/proc/sys/net/core/rmem_max") as f:
                    rmem_max = int(f.read())
            except OSError:
                rmem_max = None
            reply({"loadavg": os.getloadavg()[0], "runtime": f"spead2 {spead2.__version__}, Python {platform.python_version()}",
                   "spead2": spead2.__version__, "python": platform.python_version(), "cpu": model,
                   "cpus": os.cpu_count(), "rmem_max": rmem_max, "kernel": platform.release()})


if __name__ == "__main__":
    {"sender": sender, "receiver": receiver}[sys.argv[1]]()
