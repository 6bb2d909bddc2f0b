/**
 * Errors raised by the library. Native status codes (see docs/ABI.md) become a
 * {@link SpeadError} whose `code` is a stable string.
 */

/** Stable string codes, one per native status plus JS-side conditions. */
export type SpeadErrorCode =
  | "invalid_handle"
  | "buffer_too_small"
  | "invalid_argument"
  | "invalid_flavour"
  | "capacity_exceeded"
  | "out_of_memory"
  | "malformed"
  | "empty"
  | "stopped"
  | "packet_too_small"
  | "invalid_cnt"
  | "queue_full"
  | "system_error"
  | "invalid_state"
  | "released"
  | "closed"
  | "unknown_status";

/** Native status numbers in ABI order: index i is status -(i+1). */
export const statusNames: readonly SpeadErrorCode[] = [
  "invalid_handle",
  "buffer_too_small",
  "invalid_argument",
  "invalid_flavour",
  "capacity_exceeded",
  "out_of_memory",
  "malformed",
  "empty",
  "stopped",
  "packet_too_small",
  "invalid_cnt",
  "queue_full",
  "system_error",
  "invalid_state",
];

/** An error from the SPEAD library; `code` is stable and machine-readable. */
export class SpeadError extends Error {
  readonly code: SpeadErrorCode;
  /** The native status number, when the error came from the native core. */
  readonly status: number | undefined;

  constructor(code: SpeadErrorCode, message: string, status?: number) {
    super(`${code}: ${message}`);
    this.name = "SpeadError";
    this.code = code;
    this.status = status;
  }
}

/** Raised by `get()`/iteration when the stream has stopped (spead2's `Stopped`). */
export class Stopped extends SpeadError {
  constructor(message = "stream has stopped") {
    super("stopped", message);
    this.name = "Stopped";
  }
}

/** Raised by `getNowait()` when no heap is ready (spead2's `Empty`). */
export class Empty extends SpeadError {
  constructor(message = "no heap is ready") {
    super("empty", message);
    this.name = "Empty";
  }
}

/** Maps a native status to its code name. */
export function statusName(status: number): SpeadErrorCode {
  const name = statusNames[-status - 1];
  return name ?? "unknown_status";
}

/** Throws a {@link SpeadError} (or Stopped/Empty) unless `status` is 0. */
export function check(status: number, what: string): void {
  if (status === 0) return;
  const code = statusName(status);
  if (code === "stopped") throw new Stopped(`${what}: stream has stopped`);
  if (code === "empty") throw new Empty(`${what}: nothing ready`);
  throw new SpeadError(code, `${what} failed (status ${status})`, status);
}
