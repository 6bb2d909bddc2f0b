"""The spead2 side of the interop tests (tests/interop.test.ts).

Commands (bytes on stdin/stdout, JSON on stdout):
  cases                       -> JSON list of the item cases (for the TS side to build)
  encode HAB BUG_COMPAT       -> spead2 BytesStream bytes of one heap with every case + an end heap
  decode HAB BUG_COMPAT       -> reads packets on stdin, decodes with spead2 recv + ItemGroup,
                                 prints JSON {name: value-json} of the last values
The case list is the single source of truth for both directions.
"""
import json
import sys

import numpy as np
import spead2
import spead2.recv
import spead2.send

# Each case: id, name, description, shape, and either dtype (numpy, with order) or format.
CASES = [
    dict(id=0x1001, name="scalar_u32", description="a u32 scalar by format", shape=[],
         format=[["u", 32]], value=305419896),
    dict(id=0x1002, name="scalar_u40", description="a u40 timestamp", shape=[],
         format=[["u", 40]], value=1099511627775),
    dict(id=0x1003, name="scalar_f64", description="a float64 scalar by dtype", shape=[],
         dtype="<f8", value=2.5),
    dict(id=0x1004, name="f64_le", description="float64 (3,4) little-endian", shape=[3, 4],
         dtype="<f8", value=[i * 0.25 - 1 for i in range(12)]),
    dict(id=0x1005, name="i16_be", description="int16 big-endian", shape=[5],
         dtype=">i2", value=[-32768, -1, 0, 1, 32767]),
    dict(id=0x1006, name="u8_arr", description="uint8 bytes", shape=[16],
         dtype="|u1", value=list(range(240, 256))),
    dict(id=0x1007, name="f32_fortran", description="float32 (2,3) Fortran order", shape=[2, 3],
         dtype="<f4", order="F", value=[1.5, 2.5, 3.5, 4.5, 5.5, 6.5]),
    dict(id=0x1008, name="text", description="a c8 string", shape=[None],
         format=[["c", 8]], value="hello spead"),
    dict(id=0x1009, name="record", description="a struct format", shape=[2],
         format=[["u", 8], ["f", 32], ["i", 16]], value=[[7, 1.5, -300], [255, -0.25, 12345]]),
    dict(id=0x100A, name="packed_u12", description="bit-packed u12", shape=[4],
         format=[["u", 12]], value=[0xABC, 0xDEF, 0x123, 0x004]),
    dict(id=0x100B, name="u64_be", description="uint64 big-endian", shape=[3],
         dtype=">u8", value=[0, 1, 9007199254740991]),
    dict(id=0x100C, name="i32_2d_le", description="int32 (2,2)", shape=[2, 2],
         dtype="<i4", value=[-2147483648, -5, 6, 2147483647]),
    dict(id=0x100D, name="packed_i12", description="bit-packed i12", shape=[3],
         format=[["i", 12]], value=[-1348, -529, 291]),
    dict(id=0x100E, name="flag", description="a b8 bool", shape=[], format=[["b", 8]], value=True),
]


def to_python_value(case):
    shape = tuple(case["shape"])
    if "dtype" in case:
        arr = np.array(case["value"], dtype=np.dtype(case["dtype"]))
        if shape == ():
            return arr.reshape(())[()]
        # the flat list is the C-order reading of the logical array
        return np.ascontiguousarray(arr.reshape(shape))
    fmt = case["format"]
    if len(fmt) == 1 and fmt[0][0] == "c":
        return case["value"]
    if len(fmt) > 1:
        return [tuple(r) for r in case["value"]]
    if shape == ():
        return case["value"]
    return case["value"]


def value_json(item):
    v = item.value
    if isinstance(v, (bytes, str)):
        return v if isinstance(v, str) else v.decode("ascii")
    if isinstance(v, np.ndarray):
        if v.dtype.names:
            return [[x.item() if hasattr(x, "item") else x for x in r] for r in v.tolist()]
        return np.ravel(v, order="C").tolist()
    if isinstance(v, (list, tuple)):
        return [list(r) if isinstance(r, tuple) else (r.item() if hasattr(r, "item") else r) for r in v]
    if hasattr(v, "item"):
        return v.item()
    return v


def flavour(hab, bug_compat):
    return spead2.Flavour(4, 64, hab, bug_compat)


def case_item_group(hab, bug_compat):
    """A spead2 send ItemGroup holding every case with its value."""
    ig = spead2.send.ItemGroup(flavour=flavour(hab, bug_compat))
    for c in CASES:
        kw = dict(shape=tuple(c["shape"]))
        if "dtype" in c:
            kw["dtype"] = np.dtype(c["dtype"])
            kw["order"] = c.get("order", "C")
        else:
            kw["format"] = [tuple(f) for f in c["format"]]
        ig.add_item(c["id"], c["name"], c["description"], **kw)
        ig[c["name"]].value = to_python_value(c)
    return ig


def encode(hab, bug_compat):
    ig = case_item_group(hab, bug_compat)
    stream = spead2.send.BytesStream(spead2.ThreadPool(), spead2.send.StreamConfig(max_packet_size=1472))
    stream.send_heap(ig.get_heap(descriptors="all", data="all"))
    stream.send_heap(ig.get_end())
    sys.stdout.buffer.write(stream.getvalue())


def options(args):
    """key=value arguments after the positional ones."""
    return dict(a.split("=", 1) for a in args)


def udp_send(hab, bug_compat, ports, n_heaps, heap_size, opts):
    """Sends the cases once, then n_heaps tutorial heaps of heap_size bytes (substream i % len(ports)),
    then one end heap per substream. Options: packet=1472, rate=200e6 (bytes/s), start=0|1, groups=0|2..
    (send tutorial heaps in groups of that size with mode=serial|rr)."""
    ig = case_item_group(hab, bug_compat)
    config = spead2.send.StreamConfig(
        max_packet_size=int(opts.get("packet", 1472)), rate=float(opts.get("rate", 200e6)), max_heaps=8
    )
    endpoints = [("127.0.0.1", p) for p in ports]
    stream = spead2.send.UdpStream(spead2.ThreadPool(), endpoints, config)
    if opts.get("start") == "1":
        stream.send_heap(ig.get_start())
    stream.send_heap(ig.get_heap(descriptors="all", data="all"))
    group = int(opts.get("groups", 0))
    mode = spead2.send.GroupMode.SERIAL if opts.get("mode") == "serial" else spead2.send.GroupMode.ROUND_ROBIN
    pending = []
    if n_heaps > 0:
        ig.add_item(0x3300, "adc_samples", "samples", shape=(heap_size,), dtype=np.int8)
        for i in range(n_heaps):
            ig["adc_samples"].value = np.full(heap_size, i % 100, np.int8)
            ig["scalar_u40"].value = i
            heap = ig.get_heap()
            if group:
                pending.append(spead2.send.HeapReference(heap, substream_index=i % len(ports)))
                if len(pending) == group:
                    stream.send_heaps(pending, mode)
                    pending = []
            else:
                stream.send_heap(heap, substream_index=i % len(ports))
    if pending:
        stream.send_heaps(pending, mode)
    for sub in range(len(ports)):
        stream.send_heap(ig.get_end(), substream_index=sub)


def udp_raw(port, delay_us):
    """Sends every SPEAD packet of the stream on stdin as its own datagram (framed by the packet
    header, 64-XX flavours), with delay_us between datagrams."""
    import socket
    import struct
    import time

    data = sys.stdin.buffer.read()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    off = 0
    sent = 0
    while off + 8 <= len(data):
        n_items = struct.unpack(">H", data[off + 6:off + 8])[0]
        hab = data[off + 3] * 8
        plen = 0
        for i in range(n_items):
            (ptr,) = struct.unpack(">Q", data[off + 8 + 8 * i:off + 16 + 8 * i])
            if (ptr >> hab) & ((1 << (63 - hab)) - 1) == 4:
                plen = ptr & ((1 << hab) - 1)
        size = 8 + 8 * n_items + plen
        sock.sendto(data[off:off + size], ("127.0.0.1", port))
        sent += 1
        off += size
        if delay_us:
            time.sleep(delay_us / 1e6)
    print(sent)


def udp_recv(hab, bug_compat, n_sockets, opts):
    """Receives on n_sockets ephemeral 127.0.0.1 ports (one stream) until one end heap per socket;
    prints READY <ports...> first, then JSON of the values and heap cnts."""
    import socket

    config = spead2.recv.StreamConfig(
        bug_compat=bug_compat,
        max_heaps=8,
        substreams=n_sockets,
        stop_on_stop_item=False,
        allow_out_of_order=opts.get("ooo") == "1",
    )
    stream = spead2.recv.Stream(spead2.ThreadPool(), config, spead2.recv.RingStreamConfig(heaps=64))
    ports = []
    for _ in range(n_sockets):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind(("127.0.0.1", 0))
        stream.add_udp_reader(sock, max_size=int(opts.get("max_size", 9200)))
        ports.append(sock.getsockname()[1])
    print("READY " + " ".join(map(str, ports)), flush=True)
    ig = spead2.ItemGroup()
    cnts = []
    ends = 0
    starts = 0
    for heap in stream:
        if heap.is_end_of_stream():
            ends += 1
            if ends == n_sockets:
                break
            continue
        if heap.is_start_of_stream():
            starts += 1
        cnts.append(heap.cnt)
        ig.update(heap)
        if "adc_samples" in ig:
            v = ig["adc_samples"].value
            if v is not None and not (v == (int(ig["scalar_u40"].value) % 100)).all():
                raise SystemExit("bad samples in heap %d" % heap.cnt)
    stream.stop()
    out = {"_heaps": len(cnts), "_cnts": cnts, "_starts": starts}
    for name in ig.keys():
        if name != "adc_samples":
            out[name] = value_json(ig[name])
    json.dump(out, sys.stdout)


def decode(hab, bug_compat):
    data = sys.stdin.buffer.read()
    config = spead2.recv.StreamConfig(bug_compat=bug_compat, max_heaps=4)
    stream = spead2.recv.Stream(spead2.ThreadPool(), config)
    stream.add_buffer_reader(data)
    ig = spead2.ItemGroup()
    heaps = 0
    for heap in stream:
        heaps += 1
        ig.update(heap)
    out = {"_heaps": heaps}
    for name in ig.keys():
        out[name] = value_json(ig[name])
    json.dump(out, sys.stdout)


def main():
    cmd = sys.argv[1]
    if cmd == "cases":
        json.dump(CASES, sys.stdout)
    elif cmd == "encode":
        encode(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "udp-send":
        ports = [int(p) for p in sys.argv[4].split(",")]
        udp_send(int(sys.argv[2]), int(sys.argv[3]), ports, int(sys.argv[5]), int(sys.argv[6]), options(sys.argv[7:]))
    elif cmd == "udp-raw":
        udp_raw(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "udp-recv":
        udp_recv(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), options(sys.argv[5:]))
    elif cmd == "decode":
        decode(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
