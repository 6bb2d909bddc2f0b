/** Reading named counters from the native core (recv streams, send streams, pools). */
import { Status } from "../ffi/mod.ts";

/** A facade `*_stat_name` method: ok, or invalid_argument past the last name. */
type NameFn = (index: number, out: Uint8Array, cap: number, outLen: Uint32Array) => number;
/** A facade `*_stats` method (throws on failure). */
type StatsFn = (handle: number, out: BigUint64Array, cap: number, outN: Uint32Array, what: string) => void;

/** Reads every stat name once (the native side owns the order). */
export function statNames(nameAt: NameFn): string[] {
  const names: string[] = [];
  const buf = new Uint8Array(64);
  const len = new Uint32Array(1);
  for (let i = 0; i < 256; i++) {
    if (nameAt(i, buf, buf.length, len) !== Status.ok) break;
    names.push(new TextDecoder().decode(buf.subarray(0, len[0])));
  }
  return names;
}

/** A lazily built, cached name list plus a reader that turns the counters into a record. */
export function statsReader(nameAt: NameFn, read: StatsFn, what: string): (handle: number) => Record<string, number> {
  let names: string[] | undefined;
  return (handle) => {
    names ??= statNames(nameAt);
    const out = new BigUint64Array(Math.max(1, names.length));
    const n = new Uint32Array(1);
    read(handle, out, out.length, n, what);
    const stats: Record<string, number> = {};
    for (let i = 0; i < Math.min(n[0], names.length); i++) stats[names[i]] = Number(out[i]);
    return stats;
  };
}
