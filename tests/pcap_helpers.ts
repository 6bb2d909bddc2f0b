/**
 * Builders of pcap captures for the tests (tests/pcap_reader.test.ts,
 * tests/cli.test.ts): SPEAD packets from our packet generator wrapped in
 * UDP, IPv4/IPv6 and link headers, in a classic pcap file.
 */
import { Flavour, send } from "../mod.ts";
import { concat } from "./helpers.ts";

export const LINK = { ethernet: 1, raw: 101, linuxSll: 113, linuxSll2: 276 } as const;
export type Link = keyof typeof LINK;

/** The payload of heap `i` of stream `s`. */
export function payload(s: number, i: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let j = 0; j < size; j++) out[j] = (s * 101 + i * 31 + j * 7) & 0xff;
  return out;
}

/** The packets (UDP payloads) of `n` heaps of item 0x1234 from stream `s` (cnts 1..n), then an end heap. */
export function heapPackets(s: number, n: number, size: number, packet: number): Uint8Array[] {
  const flavour = new Flavour();
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const h = new send.Heap(flavour);
    h.addRaw(0x1234, payload(s, i, size));
    for (const p of new send.PacketGenerator(h, i + 1, packet)) out.push(p);
  }
  const end = new send.Heap(flavour);
  end.addEnd();
  for (const p of new send.PacketGenerator(end, n + 1, packet)) out.push(p);
  return out;
}

export const be16 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint16(at, v);

/** A UDP datagram to `port` carrying `data`. */
export function udp(data: Uint8Array, port: number): Uint8Array {
  const d = new Uint8Array(8 + data.length);
  be16(d, 0, 40000);
  be16(d, 2, port);
  be16(d, 4, d.length);
  d.set(data, 8);
  return d;
}

/** An IPv4 packet around `body` (`protocol`, optional fragment word). */
export function ipv4(body: Uint8Array, protocol = 17, fragment = 0x4000): Uint8Array {
  const p = new Uint8Array(20 + body.length);
  p[0] = 0x45;
  be16(p, 2, p.length);
  be16(p, 6, fragment);
  p[8] = 64;
  p[9] = protocol;
  p.set([127, 0, 0, 1, 127, 0, 0, 1], 12);
  p.set(body, 20);
  return p;
}

/** An IPv6 packet around a UDP datagram. */
export function ipv6(body: Uint8Array): Uint8Array {
  const p = new Uint8Array(40 + body.length);
  p[0] = 0x60;
  be16(p, 4, body.length);
  p[6] = 17;
  p[7] = 64;
  p[23] = 1;
  p[39] = 1;
  p.set(body, 40);
  return p;
}

/** Wraps an IP packet in `link`'s header (ethertype by IP version). */
export function frame(link: Link, ip: Uint8Array): Uint8Array {
  const type = ip[0] >> 4 === 6 ? 0x86dd : 0x0800;
  if (link === "raw") return ip;
  const header = new Uint8Array(link === "ethernet" ? 14 : link === "linuxSll" ? 16 : 20);
  be16(header, link === "ethernet" ? 12 : link === "linuxSll" ? 14 : 0, type);
  return concat([header, ip]);
}

/** A capture file of `frames` (each maybe cut to `keep` bytes). */
export function capture(frames: readonly (Uint8Array | { bytes: Uint8Array; keep: number })[], link: Link, little = true, nano = false): Uint8Array {
  const parts: Uint8Array[] = [];
  const g = new Uint8Array(24);
  const gv = new DataView(g.buffer);
  gv.setUint32(0, nano ? 0xa1b23c4d : 0xa1b2c3d4, little);
  gv.setUint16(4, 2, little);
  gv.setUint16(6, 4, little);
  gv.setUint32(16, 262144, little);
  gv.setUint32(20, LINK[link], little);
  parts.push(g);
  for (const f of frames) {
    const bytes = f instanceof Uint8Array ? f : f.bytes;
    const keep = f instanceof Uint8Array ? bytes.length : f.keep;
    const r = new Uint8Array(16);
    const rv = new DataView(r.buffer);
    rv.setUint32(0, 1_700_000_000, little);
    rv.setUint32(8, keep, little);
    rv.setUint32(12, bytes.length, little);
    parts.push(r, bytes.subarray(0, keep));
  }
  return concat(parts);
}


/** One pcapng block of `type` around `body` (padded to 4 bytes). */
function block(type: number, body: Uint8Array, little: boolean): Uint8Array {
  const padded = (body.length + 3) & ~3;
  const b = new Uint8Array(12 + padded);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, little);
  v.setUint32(4, b.length, little);
  b.set(body, 8);
  v.setUint32(b.length - 4, b.length, little);
  return b;
}

/**
 * A pcapng file: one section in the given byte order, an interface per entry of
 * `links`, then one enhanced packet block per `[interface, frame]`.
 */
export function pcapng(links: readonly Link[], packets: readonly [number, Uint8Array][], little = true): Uint8Array {
  const shb = new Uint8Array(16);
  const sv = new DataView(shb.buffer);
  sv.setUint32(0, 0x1a2b3c4d, little);
  sv.setUint16(4, 1, little);
  sv.setBigInt64(8, -1n, little);
  const parts = [block(0x0a0d0d0a, shb, little)];
  for (const link of links) {
    const idb = new Uint8Array(8);
    const iv = new DataView(idb.buffer);
    iv.setUint16(0, LINK[link], little);
    iv.setUint32(4, 262144, little);
    parts.push(block(1, idb, little));
  }
  for (const [iface, frame] of packets) {
    const epb = new Uint8Array(20 + frame.length);
    const ev = new DataView(epb.buffer);
    ev.setUint32(0, iface, little);
    ev.setUint32(12, frame.length, little);
    ev.setUint32(16, frame.length, little);
    epb.set(frame, 20);
    parts.push(block(6, epb, little));
  }
  return concat(parts);
}
