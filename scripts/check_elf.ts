/**
 * Checks a packaged libspead without running it (scripts/pack.sh runs this for
 * every target, so the arm64 library is checked on an x86-64 machine):
 * the ELF header (64-bit little-endian shared object for the expected
 * machine), no debug sections (stripped), every export of ffi/symbols.ts
 * defined in the dynamic symbol table, and the glibc floor (no symbol version
 * newer than the one given, e.g. 2.17 as manylinux2014).
 *
 *     bun scripts/check_elf.ts <libspead.so> <x64|arm64> <glibc floor>
 */
import { readFileSync } from "node:fs";
import { symbolDefs } from "../ffi/symbols.ts";

const machines: Record<string, number> = { x64: 62, arm64: 183 };

interface Section {
  name: string;
  type: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

function cstr(b: Uint8Array, at: number): string {
  let end = at;
  while (end < b.length && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(at, end));
}

function versionLess(a: string, b: string): boolean {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x !== y) return x < y;
  }
  return false;
}

/** Returns the problems found (empty when the library passes). */
export function checkElf(path: string, arch: string, glibcFloor: string): string[] {
  const b = new Uint8Array(readFileSync(path));
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const problems: string[] = [];
  if (cstr(b.subarray(0, 4), 0) !== "\x7fELF") return [`${path}: not an ELF file`];
  if (b[4] !== 2) problems.push("not ELF64");
  if (b[5] !== 1) problems.push("not little-endian");
  const type = v.getUint16(16, true);
  if (type !== 3) problems.push(`e_type ${type}, not a shared object (3)`);
  const machine = v.getUint16(18, true);
  if (machine !== machines[arch]) problems.push(`e_machine ${machine}, expected ${machines[arch]} (${arch})`);
  const shoff = Number(v.getBigUint64(40, true));
  const shentsize = v.getUint16(58, true);
  const shnum = v.getUint16(60, true);
  const shstrndx = v.getUint16(62, true);
  const sections: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      name: String(v.getUint32(o, true)),
      type: v.getUint32(o + 4, true),
      offset: Number(v.getBigUint64(o + 24, true)),
      size: Number(v.getBigUint64(o + 32, true)),
      link: v.getUint32(o + 40, true),
      entsize: Number(v.getBigUint64(o + 56, true)),
    });
  }
  const names = sections[shstrndx];
  for (const s of sections) s.name = cstr(b, names.offset + Number(s.name));
  const debug = sections.filter((s) => s.name.startsWith(".debug")).map((s) => s.name);
  if (debug.length) problems.push(`not stripped: ${debug.join(", ")}`);

  const dynsym = sections.find((s) => s.name === ".dynsym");
  if (!dynsym) return [...problems, "no .dynsym"];
  const dynstr = sections[dynsym.link];
  const defined = new Set<string>();
  for (let o = dynsym.offset; o < dynsym.offset + dynsym.size; o += dynsym.entsize) {
    const name = cstr(b, dynstr.offset + v.getUint32(o, true));
    const info = b[o + 4];
    const shndx = v.getUint16(o + 6, true);
    if (shndx !== 0 && (info >> 4) === 1 && (info & 0xf) === 2) defined.add(name); // GLOBAL FUNC
  }
  const missing = Object.keys(symbolDefs).filter((n) => !defined.has(n));
  if (missing.length) problems.push(`exports missing: ${missing.join(", ")}`);

  // Versions the library needs (SHT_GNU_verneed = 0x6ffffffe).
  const verneed = sections.find((s) => s.type === 0x6ffffffe);
  const needed: string[] = [];
  if (verneed) {
    const strs = sections[verneed.link];
    let o = verneed.offset;
    for (;;) {
      const cnt = v.getUint16(o + 2, true);
      const aux = v.getUint32(o + 8, true);
      const next = v.getUint32(o + 12, true);
      let a = o + aux;
      for (let i = 0; i < cnt; i++) {
        needed.push(cstr(b, strs.offset + v.getUint32(a + 8, true)));
        a += v.getUint32(a + 12, true);
      }
      if (next === 0) break;
      o += next;
    }
  }
  const glibc = needed.filter((n) => n.startsWith("GLIBC_")).map((n) => n.slice(6));
  const tooNew = glibc.filter((ver) => versionLess(glibcFloor, ver));
  if (tooNew.length) problems.push(`needs glibc newer than ${glibcFloor}: GLIBC_${tooNew.join(", GLIBC_")}`);
  if (!problems.length) {
    const newest = glibc.reduce((m, x) => (versionLess(m, x) ? x : m), "0");
    console.log(
      `${path}: ELF64 ${arch} shared object, stripped, ${defined.size} exports (all ${
        Object.keys(symbolDefs).length
      } of ffi/symbols.ts), newest glibc symbol GLIBC_${newest} <= ${glibcFloor}`,
    );
  }
  return problems;
}

if (import.meta.main) {
  const [path, arch, floor] = (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
  if (!path || !machines[arch] || !floor) {
    console.error("usage: bun scripts/check_elf.ts <libspead.so> <x64|arm64> <glibc floor>");
    (globalThis as unknown as { process: { exit(c: number): never } }).process.exit(2);
  }
  const problems = checkElf(path, arch, floor);
  for (const p of problems) console.error(`${path}: ${p}`);
  (globalThis as unknown as { process: { exitCode: number } }).process.exitCode = problems.length ? 1 : 0;
}
