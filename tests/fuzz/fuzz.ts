/**
 * Fuzzes the receive path from TypeScript, under Bun or Deno: mutated SPEAD
 * packets go through `recv.Stream.addBufferReader` (copied from a JS buffer, or
 * read in place from a `send.allocateBuffer` buffer), every heap that comes out
 * through `ItemGroup.update` (values read), and mutated numpy headers through
 * the header parser. Only `SpeadError` (with its subclasses `Stopped` and
 * `Empty`) may be thrown; any other exception type is a finding, and so is a
 * crash of the process, a stream that does not stop (a hang) or a heap whose
 * received length exceeds its declared length.
 *
 * The fuzz loop runs in a child process so that a crash is seen and reported
 * with the seed and the case that crashed (re-run to find it exactly). Cases
 * are generated from (seed, case index) alone, so any case can be replayed:
 *
 *   bun tests/fuzz/fuzz.ts [--seconds 15] [--packets N] [--seed 1]
 *   deno run --allow-ffi --allow-env --allow-read --allow-run tests/fuzz/fuzz.ts [same flags]
 *   ... --first-case K --cases 1          (replay one case)
 *
 * Mutations: bit flips, byte and truncation damage, field-targeted changes of
 * the header (magic, version, widths, item count) and of item pointers (mode
 * bit, ID, value; HEAP_CNT, HEAP_LENGTH, PAYLOAD_OFFSET, PAYLOAD_LENGTH set to
 * edge values), numpy-header text damage in descriptors, and duplicated,
 * dropped, swapped, reversed and shuffled packets. Seeds are heaps made by our
 * sender over several flavours, packet sizes and item types (numpy and legacy
 * formats, bit-packed, strings, structs, Fortran order, descriptors).
 *
 * Prints packets fed, heaps, exceptions by type, crashes, hangs and RSS, and
 * exits 1 on any finding. scripts/test.sh runs it for a short budget per runtime.
 */
import { spawn } from "node:child_process";
import { writeSync } from "node:fs";
import process from "node:process";
import { Flavour, ItemGroup, recv, send, SpeadError } from "../../mod.ts";
import { DType, formatNumpyHeader, parseNumpyHeader } from "../../src/dtype/mod.ts";

declare const Deno: { args: string[] } | undefined;
const argv: string[] = typeof Deno !== "undefined" ? Deno.args : process.argv.slice(2);

function flag(name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} wants a non-negative number, not ${argv[i + 1]}`);
  return v;
}

// ---------------------------------------------------------------------------
// Deterministic randomness: every case has its own generator.

/** sfc32: small, fast and good enough for fuzzing; 32-bit state words. */
class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number, stream: number) {
    this.#a = seed >>> 0;
    this.#b = stream >>> 0;
    this.#c = (seed * 0x9e3779b1) >>> 0;
    this.#d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }
}

// ---------------------------------------------------------------------------
// Seed heaps from our own sender

type ItemSpec = {
  id: number;
  name: string;
  shape: Array<number | null>;
  dtype?: string | Array<[string, string]>;
  order?: "C" | "F";
  format?: Array<[string, number]>;
  value: () => unknown;
};

const ITEMS: ItemSpec[] = [
  { id: 0x1001, name: "scalar_u32", shape: [], format: [["u", 32]], value: () => 305419896 },
  { id: 0x1002, name: "timestamp", shape: [], format: [["u", 40]], value: () => 1099511627775 },
  { id: 0x1003, name: "scalar_f64", shape: [], dtype: "<f8", value: () => 2.5 },
  { id: 0x1004, name: "f64_le", shape: [3, 4], dtype: "<f8", value: () => Float64Array.from({ length: 12 }, (_, i) => i * 0.25 - 1) },
  { id: 0x1005, name: "i16_be", shape: [5], dtype: ">i2", value: () => Int16Array.from([-32768, -1, 0, 1, 32767]) },
  { id: 0x1006, name: "u8_arr", shape: [16], dtype: "|u1", value: () => Uint8Array.from({ length: 16 }, (_, i) => 240 + i) },
  { id: 0x1007, name: "f32_fortran", shape: [2, 3], dtype: "<f4", order: "F", value: () => Float32Array.from([1.5, 2.5, 3.5, 4.5, 5.5, 6.5]) },
  { id: 0x1008, name: "text", shape: [null], format: [["c", 8]], value: () => "hello spead" },
  { id: 0x1009, name: "record", shape: [2], format: [["u", 8], ["f", 32], ["i", 16]], value: () => [[7, 1.5, -300], [255, -0.25, 12345]] },
  { id: 0x100a, name: "packed_u12", shape: [4], format: [["u", 12]], value: () => [0xabc, 0xdef, 0x123, 0x004] },
  { id: 0x100b, name: "u64_be", shape: [3], dtype: ">u8", value: () => BigUint64Array.from([0n, 1n, 9007199254740991n]) },
  { id: 0x100c, name: "packed_i12", shape: [3], format: [["i", 12]], value: () => [-1348, -529, 291] },
  { id: 0x100d, name: "flag", shape: [], format: [["b", 8]], value: () => true },
  { id: 0x100e, name: "samples", shape: [1024], dtype: "i1", value: () => Int8Array.from({ length: 1024 }, (_, i) => i - 512) },
  { id: 0x100f, name: "pair", shape: [2], dtype: [["a", "<u2"], ["b", ">f4"]], value: () => [[1, 2.5], [3, -1]] },
  { id: 0x1010, name: "var_u16", shape: [null], format: [["u", 16]], value: () => [1, 2, 3, 4, 5, 6, 7] },
];

const SEED_FLAVOURS: Array<[number, number]> = [[48, 0], [40, 0], [56, 0], [24, 0], [40, 7]];
const PACKET_SIZES = [1472, 9000, 256, 96, 64];

/** One seed: the packets of each heap of a short stream (start, data, end). */
type Seed = { heaps: Uint8Array[][]; flavour: string; packetSize: number };

/** Splits concatenated packets at their PAYLOAD_LENGTH (the bytes are our sender's). */
function splitPackets(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at + 8 <= bytes.length) {
    const addressBits = bytes[at + 3] * 8;
    const n = view.getUint16(at + 6);
    let payload = 0;
    for (let i = 0; i < n; i++) {
      const word = view.getBigUint64(at + 8 + 8 * i);
      const id = Number((word >> BigInt(addressBits)) & ((1n << BigInt(63 - addressBits)) - 1n));
      if ((word >> 63n) === 1n && id === 4) payload = Number(word & ((1n << BigInt(addressBits)) - 1n));
    }
    const size = 8 + 8 * n + payload;
    out.push(bytes.slice(at, at + size));
    at += size;
  }
  return out;
}

function buildSeeds(): { seeds: Seed[]; skipped: string[] } {
  const seeds: Seed[] = [];
  const skipped: string[] = [];
  for (const [hab, bugCompat] of SEED_FLAVOURS) {
    const flavour = new Flavour(4, 64, hab, bugCompat);
    for (const packetSize of PACKET_SIZES) {
      const ig = new send.ItemGroup(null, flavour);
      for (const [k, spec] of ITEMS.entries()) {
        try {
          const item = ig.addItem({
            // SPEAD-64-56 has 7 ID bits.
            id: hab === 56 ? 0x20 + k : spec.id,
            name: spec.name,
            description: `seed item ${spec.name}`,
            shape: spec.shape,
            ...(spec.dtype !== undefined ? { dtype: spec.dtype, order: spec.order ?? "C" } : { format: spec.format as never }),
          });
          item.value = spec.value() as never;
        } catch (err) {
          if (seeds.length === 0) skipped.push(`${spec.name}: ${(err as Error).message}`);
        }
      }
      const heaps: Uint8Array[][] = [];
      const config = new send.StreamConfig({ maxPacketSize: packetSize });
      const parts = [ig.getStart(), ig.getHeap({ descriptors: "all", data: "all" })];
      for (const [name, spec] of [["timestamp", 123456789], ["scalar_u32", 7]] as const) {
        const item = ig.get(name);
        if (item) item.value = spec as never;
      }
      parts.push(ig.getHeap(), ig.getEnd());
      for (const heap of parts) {
        const out = new send.BytesStream(config);
        out.sendHeap(heap);
        heaps.push(splitPackets(out.getValue()));
      }
      seeds.push({ heaps, flavour: `SPEAD-64-${hab}/${bugCompat}`, packetSize });
    }
  }
  return { seeds, skipped };
}

// ---------------------------------------------------------------------------
// Mutations

const EDGE_VALUES = [0n, 1n, 7n, 8n, 0xffn, 0x100n, 0xffffn, 0x1_0000n, 0xffff_ffffn, 1n << 39n, (1n << 40n) - 1n, 1n << 47n];

/** Pointer-word positions of a packet (header n_items, clipped to the bytes). */
function pointerCount(p: Uint8Array): number {
  if (p.length < 8) return 0;
  return Math.min((p[6] << 8) | p[7], Math.floor((p.length - 8) / 8));
}

function addressBitsOf(p: Uint8Array): number {
  const bits = p.length >= 4 ? p[3] * 8 : 48;
  return bits > 0 && bits < 64 ? bits : 48;
}

function readWord(p: Uint8Array, i: number): bigint {
  return new DataView(p.buffer, p.byteOffset + 8 + 8 * i, 8).getBigUint64(0);
}

function writeWord(p: Uint8Array, i: number, w: bigint): void {
  new DataView(p.buffer, p.byteOffset + 8 + 8 * i, 8).setBigUint64(0, BigInt.asUintN(64, w));
}

/** Index of the pointer with this (immediate) ID, or -1. */
function findSpecial(p: Uint8Array, id: number): number {
  const hab = BigInt(addressBitsOf(p));
  for (let i = 0; i < pointerCount(p); i++) {
    const w = readWord(p, i);
    if ((w >> 63n) === 1n && Number((w >> hab) & ((1n << (63n - hab)) - 1n)) === id) return i;
  }
  return -1;
}

function edgeValue(rng: Rng, p: Uint8Array, hab: bigint): bigint {
  const mask = (1n << hab) - 1n;
  const payload = BigInt(Math.max(0, p.length - 8 - 8 * pointerCount(p)));
  const choices = [...EDGE_VALUES, mask, mask - 1n, payload, payload + 1n, payload - 1n, payload * 2n, BigInt(rng.u32())];
  return rng.pick(choices) & mask;
}

const HEADER_TOKENS = ["(", ")", "[", "]", "{", "}", "'", ",", ":", " ", "0", "9", "-1", "True", "False", "None",
  "'descr'", "'shape'", "'fortran_order'", "'<u2'", "'>f8'", "'|S5'", "'V3'", "'<c16'", "'O'", "\\", "\"", "1e9",
  "99999999999999999999", "[('a', '<u2')]", "('x', '<i4', (2,))", "\u00ff", "\u0000"];

/** Damages numpy header text inside a packet (finds the first `{'` in the payload). */
function mutateHeaderText(rng: Rng, p: Uint8Array): boolean {
  let start = -1;
  for (let i = 8; i + 1 < p.length; i++) {
    if (p[i] === 0x7b && p[i + 1] === 0x27) {
      start = i;
      break;
    }
  }
  if (start < 0) return false;
  const at = start + rng.below(Math.min(80, p.length - start));
  const token = new TextEncoder().encode(rng.pick(HEADER_TOKENS));
  // Overwrite in place: the lengths stay right, so the descriptor still decodes.
  for (let i = 0; i < token.length && at + i < p.length; i++) p[at + i] = token[i];
  return true;
}

/** One field-targeted or blind mutation of a packet; returns a mutated copy. */
function mutatePacket(rng: Rng, input: Uint8Array): Uint8Array<ArrayBuffer> {
  let p = input.slice();
  const hab = BigInt(addressBitsOf(p));
  const n = pointerCount(p);
  switch (rng.below(10)) {
    case 0: // bit flip anywhere
      if (p.length) p[rng.below(p.length)] ^= 1 << rng.below(8);
      break;
    case 1: // header byte: magic, version, widths, item count
      if (p.length >= 8) p[rng.below(8)] = rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 0x53, 0xff, rng.below(256)]);
      break;
    case 2: // truncation
      p = p.slice(0, rng.below(p.length + 1));
      break;
    case 3:
    case 4: { // a special item set to an edge value
      const i = findSpecial(p, rng.pick([1, 2, 3, 4, 4, 3, 2]));
      if (i >= 0) writeWord(p, i, (readWord(p, i) & ~((1n << hab) - 1n)) | edgeValue(rng, p, hab));
      break;
    }
    case 5: // an item pointer: mode bit, ID or value
      if (n > 0) {
        const i = rng.below(n);
        const w = readWord(p, i);
        const idMask = (1n << (63n - hab)) - 1n;
        const which = rng.below(3);
        if (which === 0) writeWord(p, i, w ^ (1n << 63n));
        else if (which === 1) {
          const id = BigInt(rng.pick([0, 1, 2, 3, 4, 5, 6, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x1001, 0x100a, rng.u32()])) & idMask;
          writeWord(p, i, (w & ~(idMask << hab)) | (id << hab));
        } else writeWord(p, i, (w & ~((1n << hab) - 1n)) | edgeValue(rng, p, hab));
      }
      break;
    case 6: // payload bytes
      if (p.length > 8 + 8 * n) {
        const at = 8 + 8 * n + rng.below(p.length - 8 - 8 * n);
        p[at] = rng.pick([0, 0xff, 0x80, 0x7f, rng.below(256)]);
      }
      break;
    case 7: // numpy header text in a descriptor
      if (!mutateHeaderText(rng, p) && p.length) p[rng.below(p.length)] ^= 0xff;
      break;
    case 8: { // item count changed (more or fewer pointers than present)
      if (p.length >= 8) {
        const count = rng.pick([0, 1, n - 1, n + 1, n + 8, 0xffff]);
        p[6] = (count >> 8) & 0xff;
        p[7] = count & 0xff;
      }
      break;
    }
    default: { // random bytes over a run
      const len = 1 + rng.below(16);
      const at = rng.below(Math.max(1, p.length));
      for (let i = at; i < Math.min(p.length, at + len); i++) p[i] = rng.below(256);
    }
  }
  return p;
}

/** Sequence-level mutations of the packet list, in place. */
function mutateOrder(rng: Rng, packets: Uint8Array[]): void {
  if (packets.length === 0) return;
  const i = rng.below(packets.length);
  switch (rng.below(6)) {
    case 0: // duplicate
      packets.splice(rng.below(packets.length + 1), 0, packets[i].slice());
      break;
    case 1: // drop
      packets.splice(i, 1);
      break;
    case 2: { // swap with a neighbour
      const j = Math.min(packets.length - 1, i + 1);
      [packets[i], packets[j]] = [packets[j], packets[i]];
      break;
    }
    case 3: { // reverse a run
      const j = Math.min(packets.length, i + 2 + rng.below(8));
      const run = packets.slice(i, j).reverse();
      packets.splice(i, run.length, ...run);
      break;
    }
    case 4: // shuffle everything
      for (let k = packets.length - 1; k > 0; k--) {
        const m = rng.below(k + 1);
        [packets[k], packets[m]] = [packets[m], packets[k]];
      }
      break;
    default: // a packet of another heap's cnt: interleave by moving one far
      packets.push(packets.splice(i, 1)[0]);
  }
}

// ---------------------------------------------------------------------------
// Numpy headers

const HEADER_DTYPES = ["<u2", ">f8", "|u1", "<c8", "|S5", "|b1", ">i8", "<f4,>i2", "u1,u1,u1"];

function baseHeaders(): string[] {
  const out: string[] = [];
  for (const d of HEADER_DTYPES) {
    try {
      out.push(formatNumpyHeader(DType.from(d), [2, 3], "C"), formatNumpyHeader(DType.from(d), [], "F"));
    } catch {
      // a dtype this build does not know: the others still seed the fuzzer
    }
  }
  out.push("{'descr': [('a', '<u2'), ('', '|V2'), ('b', [('c', '>f4')])], 'fortran_order': False, 'shape': (1,)}");
  return out;
}

function mutateHeader(rng: Rng, base: string): string {
  let s = base;
  const steps = 1 + rng.below(4);
  for (let k = 0; k < steps; k++) {
    const at = rng.below(s.length + 1);
    switch (rng.below(6)) {
      case 0:
        s = s.slice(0, at) + rng.pick(HEADER_TOKENS) + s.slice(at);
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + 1 + rng.below(8));
        break;
      case 2:
        s = s.slice(0, at) + rng.pick(HEADER_TOKENS) + s.slice(at + 1);
        break;
      case 3: { // nesting, sometimes deep enough to exhaust a recursive parser
        const depth = rng.pick([2, 16, 200, 5000, 100000]);
        const [o, c] = rng.pick([["(", ")"], ["[", "]"], ["{", "}"]]);
        s = s.slice(0, at) + o.repeat(depth) + c.repeat(depth) + s.slice(at);
        break;
      }
      case 4: // duplicate a span
        s = s.slice(0, at) + s.slice(at, at + rng.below(30)) + s.slice(at);
        break;
      default:
        s = s.slice(0, rng.below(s.length + 1));
    }
  }
  return s;
}

// ---------------------------------------------------------------------------
// The child: the fuzz loop

type Counts = {
  cases: number;
  packets: number;
  bytes: number;
  heaps: number;
  incompleteHeaps: number;
  nativeBufferCases: number;
  itemsDecoded: number;
  headers: number;
  streamPackets: number;
  exceptions: Record<string, number>;
  findings: string[];
  hangs: number;
  rssStartMiB: number;
  rssMaxMiB: number;
  rssMiB: number;
};

function rssMiB(): number {
  return Math.round(process.memoryUsage().rss / 2 ** 20);
}

function emit(obj: unknown): void {
  // Synchronous, so the last line before a crash is not lost in a buffer.
  writeSync(1, JSON.stringify(obj) + "\n");
}

function describeError(err: unknown): string {
  if (err instanceof SpeadError) return `${err.name}:${err.code}`;
  if (err instanceof Error) return err.constructor?.name ?? err.name;
  return typeof err;
}

function noteError(counts: Counts, err: unknown, where: string, caseIndex: number): void {
  const kind = describeError(err);
  counts.exceptions[`${where} ${kind}`] = (counts.exceptions[`${where} ${kind}`] ?? 0) + 1;
  if (!(err instanceof SpeadError) && counts.findings.length < 20) {
    const e = err as Error;
    counts.findings.push(`case ${caseIndex} ${where}: ${kind}: ${String(e?.message ?? e).slice(0, 300)}\n${String(e?.stack ?? "").split("\n").slice(1, 6).join("\n")}`);
  }
}

/** Reads a decoded value the way a user would (sums a few elements), so lazy decoding happens. */
function touch(v: unknown): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v & 0xffn);
  if (typeof v === "string") return v.length;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (ArrayBuffer.isView(v)) {
    const a = v as unknown as ArrayLike<number | bigint>;
    let s = 0;
    for (let i = 0; i < Math.min(a.length, 64); i++) s += Number(a[i]) || 0;
    return s + a.length;
  }
  if (Array.isArray(v)) return v.slice(0, 64).reduce((s: number, x) => s + touch(x), v.length);
  return 1;
}

function runCase(seeds: Seed[], headers: string[], seed: number, index: number, counts: Counts): void {
  const rng = new Rng(seed, index);
  const base = rng.pick(seeds);
  // Mostly one stream (start, data, end); sometimes only some heaps.
  let packets = base.heaps.flat().map((p) => p.slice());
  const mutations = rng.pick([0, 1, 1, 2, 3, 5, 8, 20]);
  for (let m = 0; m < mutations; m++) {
    if (packets.length === 0) break;
    if (rng.chance(0.25)) mutateOrder(rng, packets);
    else {
      const i = rng.below(packets.length);
      packets[i] = mutatePacket(rng, packets[i]);
    }
  }
  if (rng.chance(0.05)) packets = packets.slice(0, rng.below(packets.length + 1));
  const total = packets.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of packets) {
    bytes.set(p, at);
    at += p.length;
  }
  counts.cases++;
  counts.packets += packets.length;
  counts.bytes += total;

  const config = new recv.StreamConfig({
    maxHeaps: 1 + rng.below(4),
    allowOutOfOrder: rng.chance(0.3),
    allowUnsizedHeaps: !rng.chance(0.1),
    stopOnStopItem: !rng.chance(0.1),
    maxHeapLength: rng.chance(0.2) ? 4096 : undefined,
  });
  const ring = new recv.RingStreamConfig({ heaps: 1 + rng.below(4), contiguousOnly: !rng.chance(0.2) });
  let stream: InstanceType<typeof recv.Stream>;
  // A third of the cases read a native buffer in place (the zero-copy reader),
  // released by JS at once half of those times: the reader must keep it alive.
  let native: ReturnType<typeof send.allocateBuffer> | null = null;
  try {
    stream = new recv.Stream(config, ring);
    if (total > 0 && rng.chance(1 / 3)) {
      native = send.allocateBuffer(total);
      native.bytes.set(bytes);
      stream.addBufferReader(native.bytes.subarray(0, total));
      counts.nativeBufferCases++;
      if (rng.chance(0.5)) {
        native.release();
        native = null;
      }
    } else {
      stream.addBufferReader(bytes);
    }
  } catch (err) {
    native?.release();
    noteError(counts, err, "stream", index);
    return;
  }
  const ig = new ItemGroup();
  ig.onWarning = () => {};
  try {
    for (;;) {
      let heap;
      try {
        heap = stream.getBlocking(10_000);
      } catch (err) {
        if (err instanceof SpeadError && err.code === "stopped") break;
        if (err instanceof SpeadError && err.code === "empty") {
          counts.hangs++;
          counts.findings.push(`case ${index}: the stream neither delivered nor stopped within 10 s`);
          break;
        }
        throw err;
      }
      counts.heaps++;
      try {
        if (heap.constructor.name === "IncompleteHeap") counts.incompleteHeaps++;
        if (heap.isComplete() && heap.receivedLength !== heap.heapLength) {
          counts.findings.push(`case ${index}: complete heap ${heap.cnt} has ${heap.receivedLength} of ${heap.heapLength} bytes`);
        }
        const updated = ig.update(heap);
        for (const item of updated.values()) {
          touch(item.value);
          counts.itemsDecoded++;
        }
      } catch (err) {
        noteError(counts, err, "update", index);
      } finally {
        heap.release();
      }
    }
    counts.streamPackets += stream.stats.packets;
  } catch (err) {
    noteError(counts, err, "receive", index);
  } finally {
    stream.close();
    native?.release();
  }

  // Numpy headers straight into the parser, a few per case.
  for (let k = 0; k < 4; k++) {
    counts.headers++;
    try {
      parseNumpyHeader(mutateHeader(rng, rng.pick(headers)));
    } catch (err) {
      noteError(counts, err, "numpy-header", index);
    }
  }
}

function child(): void {
  const seconds = flag("seconds", 15);
  const maxPackets = flag("packets", Infinity);
  const seed = flag("seed", 1);
  const first = flag("first-case", 0);
  const maxCases = flag("cases", Infinity);
  const trace = argv.includes("--trace");
  // Undecodable descriptors are reported through console.warn; count them instead.
  let warnings = 0;
  console.warn = () => void warnings++;
  const { seeds, skipped } = buildSeeds();
  const headers = baseHeaders();
  const counts: Counts = {
    cases: 0, packets: 0, bytes: 0, heaps: 0, incompleteHeaps: 0, nativeBufferCases: 0, itemsDecoded: 0, headers: 0, streamPackets: 0,
    exceptions: {}, findings: [], hangs: 0, rssStartMiB: rssMiB(), rssMaxMiB: 0, rssMiB: 0,
  };
  if (skipped.length) emit({ type: "note", skipped });
  emit({ type: "ready", case: first });
  const start = Date.now();
  let lastReport = start;
  let index = first;
  while (Date.now() - start < seconds * 1000 && counts.packets < maxPackets && index - first < maxCases) {
    if (trace) emit({ type: "case", case: index });
    runCase(seeds, headers, seed, index, counts);
    index++;
    if (Date.now() - lastReport >= 500) {
      lastReport = Date.now();
      counts.rssMiB = rssMiB();
      counts.rssMaxMiB = Math.max(counts.rssMaxMiB, counts.rssMiB);
      emit({ type: "progress", case: index, counts, warnings });
    }
  }
  counts.rssMiB = rssMiB();
  counts.rssMaxMiB = Math.max(counts.rssMaxMiB, counts.rssMiB);
  emit({ type: "done", case: index, counts, warnings });
}

// ---------------------------------------------------------------------------
// The parent: runs children, sees crashes, pins down the crashing case

type ChildResult = { lines: Array<Record<string, unknown>>; code: number | null; signal: string | null; stderr: string };

function runtimeArgs(extra: string[]): [string, string[]] {
  const script = new URL(import.meta.url).pathname;
  if ("Bun" in globalThis) return [process.execPath, [script, ...extra]];
  return [process.execPath, ["run", "--allow-ffi", "--allow-env", "--allow-read", script, ...extra]];
}

function runChild(args: string[], timeoutMs: number): Promise<ChildResult> {
  const [exe, exeArgs] = runtimeArgs(["--child", ...args]);
  return new Promise((resolve) => {
    const proc = spawn(exe, exeArgs, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stderr = "";
    proc.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    proc.stderr!.on("data", (d: Uint8Array) => (stderr = (stderr + new TextDecoder().decode(d)).slice(-4000)));
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    proc.on("close", (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      const lines = out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ lines, code, signal, stderr });
    });
  });
}

function addCounts(total: Counts, c: Counts): void {
  for (const k of ["cases", "packets", "bytes", "heaps", "incompleteHeaps", "nativeBufferCases", "itemsDecoded", "headers", "streamPackets", "hangs"] as const) {
    total[k] += c[k];
  }
  for (const [k, v] of Object.entries(c.exceptions)) total.exceptions[k] = (total.exceptions[k] ?? 0) + v;
  total.findings.push(...c.findings);
  total.rssStartMiB = total.rssStartMiB || c.rssStartMiB;
  total.rssMaxMiB = Math.max(total.rssMaxMiB, c.rssMaxMiB);
  total.rssMiB = c.rssMiB;
}

async function parent(): Promise<number> {
  const seconds = flag("seconds", 15);
  const maxPackets = flag("packets", Infinity);
  const seed = flag("seed", 1);
  let nextCase = flag("first-case", 0);
  const maxCases = flag("cases", Infinity);
  const runtime = "Bun" in globalThis ? "Bun" : "Deno";
  const total: Counts = {
    cases: 0, packets: 0, bytes: 0, heaps: 0, incompleteHeaps: 0, nativeBufferCases: 0, itemsDecoded: 0, headers: 0, streamPackets: 0,
    exceptions: {}, findings: [], hangs: 0, rssStartMiB: 0, rssMaxMiB: 0, rssMiB: 0,
  };
  const crashes: string[] = [];
  const start = Date.now();
  const left = () => seconds - (Date.now() - start) / 1000;
  while (left() > 0.5 && total.packets < maxPackets && total.cases < maxCases) {
    const budget = left();
    const args = ["--seconds", budget.toFixed(1), "--seed", String(seed), "--first-case", String(nextCase)];
    if (Number.isFinite(maxPackets)) args.push("--packets", String(maxPackets - total.packets));
    if (Number.isFinite(maxCases)) args.push("--cases", String(maxCases - total.cases));
    const r = await runChild(args, (budget + 60) * 1000);
    for (const line of r.lines) if (line.type === "note") console.log(`note: seed items skipped: ${JSON.stringify(line.skipped)}`);
    const last = [...r.lines].reverse().find((l) => l.type === "progress" || l.type === "done");
    if (last) addCounts(total, last.counts as Counts);
    const ready = r.lines.find((l) => l.type === "ready");
    if (!ready) {
      // The child died before it could fuzz: a set-up failure, not a fuzz case.
      crashes.push(`${runtime} child failed before fuzzing (${r.signal ?? `exit code ${r.code}`}):\n${r.stderr.slice(-2000)}`);
      break;
    }
    const reached = (last ?? ready).case as number;
    if (r.code === 0 && last?.type === "done") break;
    // A crash (signal or non-zero exit) or a child killed at its deadline: find the case.
    const what = r.signal ? `signal ${r.signal}` : `exit code ${r.code}`;
    const window = Math.max(200, Math.ceil(((last?.counts as Counts | undefined)?.cases ?? 0) / Math.max(1, seconds) * 2));
    const traced = await runChild(["--seconds", "120", "--seed", String(seed), "--first-case", String(reached), "--cases", String(window), "--trace"], 180_000);
    const tracedCases = traced.lines.filter((l) => l.type === "case");
    const crashedCase = tracedCases.length ? (tracedCases[tracedCases.length - 1].case as number) : reached;
    const reproduced = traced.code !== 0 || traced.signal !== null;
    crashes.push(
      `${runtime} child died (${what}) after case ${reached}; ` +
        (reproduced
          ? `reproduced at seed ${seed} case ${crashedCase}: re-run with --seed ${seed} --first-case ${crashedCase} --cases 1`
          : `not reproduced in cases ${reached}..${reached + window} of seed ${seed}`) +
        `\n${r.stderr.split("\n").slice(-12).join("\n")}`,
    );
    nextCase = reproduced ? crashedCase + 1 : reached + window;
  }
  const elapsed = (Date.now() - start) / 1000;
  const nonSpead = Object.entries(total.exceptions).filter(([k]) => !k.includes("SpeadError") && !k.includes("Stopped") && !k.includes("Empty"));
  console.log(`fuzz (${runtime}, seed ${seed}): ${elapsed.toFixed(1)} s, ${total.cases} cases ` +
    `(${total.nativeBufferCases} from native buffers), ${total.packets} packets fed ` +
    `(${(total.bytes / 2 ** 20).toFixed(1)} MiB; ${total.streamPackets} accepted by streams), ${total.heaps} heaps ` +
    `(${total.incompleteHeaps} incomplete), ${total.itemsDecoded} item values decoded, ${total.headers} numpy headers`);
  console.log(`exceptions by type: ${JSON.stringify(total.exceptions)}`);
  console.log(`RSS: ${total.rssStartMiB} MiB at start, ${total.rssMaxMiB} MiB max, ${total.rssMiB} MiB at end`);
  console.log(`crashes: ${crashes.length}, hangs: ${total.hangs}, non-SpeadError exception types: ${nonSpead.length}`);
  for (const c of crashes) console.log(`CRASH: ${c}`);
  for (const f of total.findings) console.log(`FINDING: ${f}`);
  return crashes.length + total.findings.length > 0 ? 1 : 0;
}

if (argv.includes("--child")) child();
else process.exitCode = await parent();
