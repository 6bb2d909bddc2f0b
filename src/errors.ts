/**
 * Errors raised by the library. Native status codes (see docs/ABI.md) become a
 * {@link SpeadError} whose `code` is a stable string.
 */

import { statusNames as nativeStatusNames, type StatusName } from "../ffi/abi.gen.ts";

/** Stable string codes, one per native status ({@link NativeErrorCode}) plus JS-side conditions. */
export type SpeadErrorCode = NativeErrorCode | "released" | "closed" | "library_not_found" | "unknown_status";

/** The codes of the native core's error statuses (docs/ABI.md), one per status. */
export type NativeErrorCode =
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
  | "invalid_state";

// Spelled out above so the documented API names no generated type; tsc fails here if
// ffi/abi.gen.ts (generated from the Zig status table) gains or loses a status.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const nativeCodesMatchGenerated: Same<NativeErrorCode, Exclude<StatusName, "ok">> = true;
void nativeCodesMatchGenerated;

/** Native status numbers in ABI order: index i is status -(i+1). */
export const statusNames: readonly SpeadErrorCode[] = nativeStatusNames;

/** A failed system call behind a `system_error`, as Node and Bun describe theirs. */
export interface SystemCallFailure {
  /** The errno's symbolic name, e.g. `"EADDRINUSE"`. */
  readonly errno: string;
  /** The errno number (Linux). */
  readonly errnoNumber: number;
  /** The call and what it concerned, e.g. `"bind 127.0.0.1:8888"`. */
  readonly syscall: string;
}

/**
 * An error from the SPEAD library; `code` is stable and machine-readable.
 * Errors from a system call (`code === "system_error"`) also carry the errno's
 * name and the call, and their message starts with them:
 * `EADDRINUSE: bind 127.0.0.1:8888 (addUdpReader)`.
 */
export class SpeadError extends Error {
  /** Stable, machine-readable reason (see {@link SpeadErrorCode}). */
  readonly code: SpeadErrorCode;
  /** The native status number, when the error came from the native core. */
  readonly status: number | undefined;
  /** The errno's symbolic name (`"EADDRINUSE"`) when a system call failed. */
  readonly errno: string | undefined;
  /** The errno number when a system call failed. */
  readonly errnoNumber: number | undefined;
  /** The failed call and its address (`"bind 127.0.0.1:8888"`), when known. */
  readonly syscall: string | undefined;

  /** Builds the error; with `failure` the message starts with the errno name and the call. */
  constructor(code: SpeadErrorCode, message: string, status?: number, failure?: SystemCallFailure) {
    super(failure ? `${failure.errno}: ${failure.syscall}${message ? ` (${message})` : ""}` : `${code}: ${message}`);
    this.name = "SpeadError";
    this.code = code;
    this.status = status;
    this.errno = failure?.errno;
    this.errnoNumber = failure?.errnoNumber;
    this.syscall = failure?.syscall;
  }
}

/**
 * Reads the native record of the calling thread's last failed system call
 * (set by ffi/mod.ts once the library is loaded, so this file needs no FFI).
 */
let systemFailure: (() => SystemCallFailure | undefined) | undefined;
/** Names an errno number (`90` -> `"EMSGSIZE"`). */
let errnoNamer: ((errno: number) => string | undefined) | undefined;

/** Called once by the loader (ffi/mod.ts). */
export function setSystemErrorSource(
  last: () => SystemCallFailure | undefined,
  name: (errno: number) => string | undefined,
): void {
  systemFailure = last;
  errnoNamer = name;
}

/** The symbolic name of a Linux errno (`"EMSGSIZE"`), or `errno N` when unknown. */
export function errnoName(errno: number): string {
  return errnoNamer?.(errno) ?? `errno ${errno}`;
}

/**
 * The error for an argument outside its allowed range, naming both:
 * `invalid_argument: port = 100000 must be an integer in [0, 65535]`.
 */
export function rangeError(name: string, value: unknown, range: string): SpeadError {
  return new SpeadError("invalid_argument", `${name} = ${String(value)} must be ${range}`);
}

/** How an argument is named in errors: its class, or its type (`a Flavour`, `a string`). */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") {
    const name = (value as { constructor?: { name?: string } }).constructor?.name;
    return name && name !== "Object" ? `a ${name}` : "an options object";
  }
  return `a ${typeof value}`;
}

/**
 * Returns `value` if it is an instance of `cls`; else throws
 * `invalid_argument: config must be a send.StreamConfig, not a ThreadPool`.
 */
export function checkInstance<T>(name: string, value: unknown, cls: abstract new (...args: never[]) => T, form: string): T {
  if (!(value instanceof cls)) throw new SpeadError("invalid_argument", `${name} must be ${form}, not ${describeValue(value)}`);
  return value;
}

/**
 * Returns `value` if it is absent or a plain options object (`{ ... }`); else
 * throws naming the argument: `options must be { maxPacketSize, ... }, not a number`.
 */
export function checkOptions<T extends object>(name: string, value: T | undefined, form: string): T | undefined {
  if (value === undefined) return undefined;
  const proto = value !== null && typeof value === "object" ? Object.getPrototypeOf(value) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new SpeadError("invalid_argument", `${name} must be ${form}, not ${describeValue(value)}`);
  }
  return value;
}

/** Returns `value` if it is an integer in [min, max]; else throws {@link rangeError}. */
export function checkInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw rangeError(name, value, `an integer in [${min}, ${max}]`);
  }
  return value;
}

/** Raised by `get()`/iteration when the stream has stopped (spead2's `Stopped`). */
export class Stopped extends SpeadError {
  /** A `stopped` error with an optional message. */
  constructor(message = "stream has stopped") {
    super("stopped", message);
    this.name = "Stopped";
  }
}

/**
 * Yields what `get` gives until it throws {@link Stopped}, which ends the
 * iteration; any other error propagates. The `for await` / `batches()` form
 * of every ring (streams, chunk rings).
 */
export async function* untilStopped<T>(get: () => Promise<T>): AsyncGenerator<T, void, undefined> {
  for (;;) {
    try {
      yield await get();
    } catch (err) {
      if (err instanceof Stopped) return;
      throw err;
    }
  }
}

/** {@link untilStopped} for a synchronous `get` (the `for ... of` form of every ring). */
export function* untilStoppedSync<T>(get: () => T): Generator<T, void, undefined> {
  for (;;) {
    try {
      yield get();
    } catch (err) {
      if (err instanceof Stopped) return;
      throw err;
    }
  }
}

/** Raised by `getNowait()` when no heap is ready (spead2's `Empty`). */
export class Empty extends SpeadError {
  /** An `empty` error with an optional message. */
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

/**
 * Throws the error of a failed native call: a {@link SpeadError} naming the
 * status and `what` (Stopped / Empty for those two; a `system_error` with the
 * errno and the call). The typed facade (ffi/mod.ts `lib`) calls this for
 * every status that is not a result of the export.
 */
export function fail(status: number, what: string): never {
  const code = statusName(status);
  if (code === "stopped") throw new Stopped(`${what}: stream has stopped`);
  if (code === "empty") throw new Empty(`${what}: nothing ready`);
  if (code === "system_error") {
    const failure = systemFailure?.();
    if (failure) throw new SpeadError(code, what, status, failure);
  }
  throw new SpeadError(code, `${what} failed (status ${status})`, status);
}

/** Throws as {@link fail} unless `status` is 0. */
export function check(status: number, what: string): void {
  if (status !== 0) fail(status, what);
}
