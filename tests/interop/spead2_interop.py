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


def udp_send(hab, bug_compat, port, n_heaps, heap_size):
    """Sends the cases once, then n_heaps tutorial heaps of heap_size bytes, then an end heap."""
    ig = case_item_group(hab, bug_compat)
    config = spead2.send.StreamConfig(max_packet_size=1472, rate=200e6)
    stream = spead2.send.UdpStream(spead2.ThreadPool(), [("127.0.0.1", port)], config)
    stream.send_heap(ig.get_heap(descriptors="all", data="all"))
    if n_heaps > 0:
        ig.add_item(0x3300, "adc_samples", "samples", shape=(heap_size,), dtype=np.int8)
        for i in range(n_heaps):
            ig["adc_samples"].value = np.full(heap_size, i % 100, np.int8)
            ig["scalar_u40"].value = i
            stream.send_heap(ig.get_heap())
    stream.send_heap(ig.get_end())


def udp_recv(hab, bug_compat):
    """Receives on an ephemeral 127.0.0.1 port until a stop item; prints READY <port> first."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    config = spead2.recv.StreamConfig(bug_compat=bug_compat, max_heaps=4)
    stream = spead2.recv.Stream(spead2.ThreadPool(), config, spead2.recv.RingStreamConfig(heaps=64))
    stream.add_udp_reader(sock)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    ig = spead2.ItemGroup()
    heaps = 0
    cnts = []
    for heap in stream:
        heaps += 1
        cnts.append(heap.cnt)
        ig.update(heap)
    out = {"_heaps": heaps, "_cnts": cnts}
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
        udp_send(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    elif cmd == "udp-recv":
        udp_recv(int(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "decode":
        decode(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
