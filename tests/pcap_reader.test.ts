/**
 * recv.Stream.addUdpPcapFileReader: pcap captures of SPEAD over UDP, written
 * here frame by frame (Ethernet, Linux cooked v1/v2, raw IPv4/IPv6; both byte
 * orders), replayed by our reader and, for the link types it reads, by
 * spead2's (PyPI) `add_udp_pcap_file_reader`: the same heaps, byte for byte.
 * Frames that carry no SPEAD datagram are counted and passed over; files that
 * are not captures are refused.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { recv, SpeadError } from "../mod.ts";
import { concat, python } from "./helpers.ts";
import { be16, capture, frame, heapPackets, ipv4, ipv6, type Link, payload, pcapng, udp } from "./pcap_helpers.ts";

const dir = mkdtempSync(`${tmpdir()}/spead-pcap-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Drains a stream: [cnt, sha256 of item 0x1234] per heap, and the final stats. */
async function drain(stream: recv.Stream): Promise<{ heaps: [number, string][]; stats: recv.StreamStats }> {
  const heaps: [number, string][] = [];
  for await (const heap of stream) {
    const item = heap.getItems().find((it) => it.id === 0x1234);
    if (item) heaps.push([Number(heap.cnt), createHash("sha256").update(item.value).digest("hex")]);
    heap.release();
  }
  const stats = stream.stats;
  stream.close();
  return { heaps, stats };
}

/** spead2 (PyPI) replays `path` with a BPF `filter`: [cnt, sha256 of item 0x1234] per heap. */
function spead2Replay(path: string, filter: string): [number, string][] {
  expect(existsSync(python)).toBe(true);
  const script = [
    "import sys, json, hashlib, spead2, spead2.recv",
    "s = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=4))",
    "s.add_udp_pcap_file_reader(sys.argv[1], sys.argv[2])",
    "out = []",
    "for heap in s:",
    "    for it in heap.get_items():",
    "        if it.id == 0x1234: out.append([heap.cnt, hashlib.sha256(bytes(memoryview(it))).hexdigest()])",
    "print(json.dumps(out))",
  ].join("\n");
  const r = spawnSync(python, ["-c", script, path, filter], { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`spead2 pcap reader failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const expected = (s: number, n: number, size: number): [number, string][] =>
  Array.from({ length: n }, (_, i) => [i + 1, createHash("sha256").update(payload(s, i, size)).digest("hex")]);

/** Two streams interleaved on ports 7148 and 7149, with an ARP frame, a TCP segment and a fragment among them. */
function mixedCapture(link: Link, little: boolean): Uint8Array {
  const a = heapPackets(0, 6, 20000, 1472).map((p) => frame(link, ipv4(udp(p, 7148))));
  const b = heapPackets(1, 3, 5000, 1472).map((p) => frame(link, ipv4(udp(p, 7149))));
  const frames: Uint8Array[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (i < a.length) frames.push(a[i]);
    if (i < b.length) frames.push(b[i]);
    if (i === 2) frames.push(frame(link, ipv4(new Uint8Array(30), 6))); // TCP
    if (i === 4) frames.push(frame(link, ipv4(udp(new Uint8Array(64), 7148), 17, 0x2000))); // a first fragment
  }
  if (link === "ethernet") {
    const arp = new Uint8Array(42);
    be16(arp, 12, 0x0806);
    frames.splice(1, 0, arp);
  }
  return capture(frames, link, little);
}

describe("addUdpPcapFileReader", () => {
  for (const link of ["ethernet", "linuxSll"] as const) {
    test(`${link}: one port of two interleaved streams, byte for byte, as spead2 reads it`, async () => {
      const path = `${dir}/mixed-${link}.pcap`;
      writeFileSync(path, mixedCapture(link, link === "ethernet"));
      const stream = new recv.Stream();
      stream.addUdpPcapFileReader(path, { port: 7148 });
      const { heaps, stats } = await drain(stream);
      expect(heaps).toEqual(expected(0, 6, 20000));
      expect(stats.capture_frames_filtered).toBe(heapPackets(1, 3, 5000, 1472).length);
      expect(stats.capture_frames_not_udp).toBe(link === "ethernet" ? 3 : 2);
      expect(stats.capture_frames_truncated).toBe(0);

      // spead2 (PyPI) replays the same file with the same filter as a BPF expression.
      expect(spead2Replay(path, "udp dst port 7148")).toEqual(heaps);
    });
  }

  test("pcapng: two interfaces of different link types, both byte orders, as spead2 reads it", async () => {
    const a = heapPackets(7, 5, 30000, 8972);
    const b = heapPackets(8, 2, 4000, 1472);
    const packets: [number, Uint8Array][] = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (i < a.length) packets.push([0, frame("ethernet", ipv4(udp(a[i], 7148)))]);
      if (i < b.length) packets.push([1, frame("linuxSll", ipv4(udp(b[i], 7149)))]);
    }
    for (const little of [true, false]) {
      const path = `${dir}/two-${little}.pcapng`;
      writeFileSync(path, pcapng(["ethernet", "linuxSll"], packets, little));
      const stream = new recv.Stream();
      stream.addUdpPcapFileReader(path, { port: 7148 });
      const { heaps, stats } = await drain(stream);
      expect(heaps).toEqual(expected(7, 5, 30000));
      expect(stats.capture_frames_filtered).toBe(b.length);
      // spead2 reads pcapng through libpcap.
      expect(spead2Replay(path, "udp dst port 7148")).toEqual(heaps);
    }
  });

  test("every port; cooked v2, raw IPv4 and IPv6; big-endian and nanosecond headers", async () => {
    const packets = heapPackets(2, 4, 9000, 8972);
    const cases: [Link, (p: Uint8Array) => Uint8Array, boolean, boolean][] = [
      ["linuxSll2", (p) => ipv4(udp(p, 9000)), true, true],
      ["raw", (p) => ipv4(udp(p, 9000)), false, false],
      ["raw", (p) => ipv6(udp(p, 9000)), false, true],
      ["linuxSll2", (p) => ipv6(udp(p, 9001)), true, false],
    ];
    for (const [link, wrap, little, nano] of cases) {
      const path = `${dir}/v-${link}-${little}-${nano}.pcap`;
      writeFileSync(path, capture(packets.map((p) => frame(link, wrap(p))), link, little, nano));
      const stream = new recv.Stream();
      stream.addUdpPcapFileReader(path);
      const { heaps, stats } = await drain(stream);
      expect(heaps).toEqual(expected(2, 4, 9000));
      expect(stats.capture_frames_not_udp + stats.capture_frames_filtered + stats.capture_frames_truncated).toBe(0);
    }
  });

  test("snapped frames and a capture cut off mid-record: counted, the rest delivered", async () => {
    const packets = heapPackets(3, 5, 1000, 1472); // one packet per heap
    const frames = packets.map((p) => frame("ethernet", ipv4(udp(p, 7148))));
    const snapped = frames.map((f, i) => (i === 2 ? { bytes: f, keep: 60 } : f));
    const bytes = capture(snapped, "ethernet");
    const path = `${dir}/cut.pcap`;
    writeFileSync(path, bytes.subarray(0, bytes.length - 10)); // into the end heap's record
    const stream = new recv.Stream();
    stream.addUdpPcapFileReader(path);
    const { heaps, stats } = await drain(stream);
    expect(heaps).toEqual(expected(3, 5, 1000).filter(([cnt]) => cnt !== 3));
    expect(stats.capture_frames_truncated).toBe(2);
  });

  test("datagrams that are not SPEAD are counted as the UDP reader counts them", async () => {
    const good = heapPackets(4, 1, 100, 1472);
    const bad = [new TextEncoder().encode("hello, not spead"), new Uint8Array(4)];
    const padded = concat([good[0], new Uint8Array(3)]); // bytes after the packet: a size mismatch
    const frames = [...bad, padded, ...good].map((p) => frame("ethernet", ipv4(udp(p, 7148))));
    const path = `${dir}/bad.pcap`;
    writeFileSync(path, capture(frames, "ethernet"));
    const stream = new recv.Stream();
    stream.addUdpPcapFileReader(path);
    const { heaps, stats } = await drain(stream);
    expect(heaps).toEqual(expected(4, 1, 100));
    expect(stats.packets_rejected_bad_magic).toBe(1);
    expect(stats.packets_rejected_truncated).toBe(1);
    expect(stats.packets_rejected_size_mismatch).toBe(1);
  });

  test("files that are not captures, bad paths and options throw; the stream stays usable", async () => {
    const stream = new recv.Stream();
    const code = (f: () => void): string => {
      try {
        f();
      } catch (e) {
        return e instanceof SpeadError ? e.code : (e as Error).constructor.name;
      }
      return "none";
    };
    const spead = `${dir}/packets.spead`;
    writeFileSync(spead, concat(heapPackets(5, 1, 100, 1472)));
    expect(code(() => stream.addUdpPcapFileReader(spead))).toBe("malformed");
    const brokenNg = `${dir}/x.pcapng`;
    const ng = new Uint8Array(64); // a section header block's type, then no byte-order magic
    new DataView(ng.buffer).setUint32(0, 0x0a0d0d0a, true);
    writeFileSync(brokenNg, ng);
    expect(code(() => stream.addUdpPcapFileReader(brokenNg))).toBe("malformed");
    const nullLink = `${dir}/null.pcap`;
    const g = capture([], "ethernet");
    new DataView(g.buffer).setUint32(20, 0, true); // LINKTYPE_NULL
    writeFileSync(nullLink, g);
    expect(code(() => stream.addUdpPcapFileReader(nullLink))).toBe("malformed");
    expect(code(() => stream.addUdpPcapFileReader(`${dir}/missing.pcap`))).toBe("system_error");
    expect(code(() => stream.addUdpPcapFileReader(""))).toBe("TypeError");
    // spead2's second argument is a BPF string: refused with a pointer to { port }.
    expect(code(() => stream.addUdpPcapFileReader(spead, "udp port 7148" as unknown as recv.PcapFileReaderOptions))).toBe("TypeError");
    expect(code(() => stream.addUdpPcapFileReader(spead, { port: 70000 }))).toBe("invalid_argument");
    // Still usable.
    const path = `${dir}/ok.pcap`;
    writeFileSync(path, capture(heapPackets(6, 2, 3000, 1472).map((p) => frame("ethernet", ipv4(udp(p, 1)))), "ethernet"));
    stream.addUdpPcapFileReader(path);
    const { heaps } = await drain(stream);
    expect(heaps).toEqual(expected(6, 2, 3000));
  });
});
