/** The native side of receive streams, for src/lifetime.ts (not re-exported by recv/mod.ts). */
import { lib } from "../../ffi/mod.ts";
import type { NativeKind } from "../lifetime.ts";

/** recv.Stream's; chunk streams are receive streams too and spread it. */
export const streamKind: NativeKind = {
  what: "recv.Stream",
  stop: (h) => lib.recvStreamStop(h, "stop"),
  destroy: lib.recvStreamDestroy,
  wait: { waitAsync: lib.nonblocking?.recvStreamWait, setNotify: lib.recvStreamSetNotify, arm: lib.recvStreamArm },
  closedMessage: "stream has been closed",
  reportReclaimed: true,
};
