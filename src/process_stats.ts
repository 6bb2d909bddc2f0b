/** Process counters read by the native core (no /proc access needed in Deno). */
import { lib } from "../ffi/mod.ts";

/** Page faults, open file descriptors and threads of this process. */
export interface ProcessStats {
  /** Minor page faults so far (getrusage). */
  readonly minorFaults: number;
  /** Major page faults so far (getrusage). */
  readonly majorFaults: number;
  /** -1 where the platform cannot say. */
  readonly openFds: number;
  /** Threads of this process; -1 where the platform cannot say. */
  readonly threads: number;
}

const UNKNOWN = 0xffff_ffff_ffff_ffffn;

/** Reads the counters now (getrusage, /proc/self/fd, /proc/self/task). */
export function processStats(): ProcessStats {
  const out = new BigUint64Array(4);
  lib.processStats(out, out.length, "processStats");
  const n = (v: bigint) => (v === UNKNOWN ? -1 : Number(v));
  return { minorFaults: n(out[0]), majorFaults: n(out[1]), openFds: n(out[2]), threads: n(out[3]) };
}
