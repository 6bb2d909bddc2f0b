/** Process counters read by the native core (no /proc access needed in Deno). */
import { ProcessCountersView } from "../ffi/abi.gen.ts";
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
  const out = new ProcessCountersView();
  lib.processStats(out.bytes, "processStats");
  const n = (v: bigint) => (v === UNKNOWN ? -1 : Number(v));
  return {
    minorFaults: n(out.minor_fault_count),
    majorFaults: n(out.major_fault_count),
    openFds: n(out.fd_count),
    threads: n(out.thread_count),
  };
}
