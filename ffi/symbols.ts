/**
 * Types of the FFI layer over the generated table (ffi/abi.gen.ts, from
 * zig/abi/table.zig; see docs/ABI.md). Each runtime
 * backend (ffi/bun.ts, ffi/deno.ts) maps these neutral types onto its own FFI
 * types through an exhaustive switch, so adding a type here fails to compile
 * until both backends handle it.
 */

/** Neutral FFI types; the ABI uses nothing else. */
export type NativeType = "u32" | "i32" | "f64" | "buffer" | "function" | "void";

export interface SymbolDef {
  readonly args: readonly NativeType[];
  readonly returns: "u32" | "i32" | "f64" | "void";
}

export { blockingSymbols, symbolDefs } from "./abi.gen.ts";
export type { Symbols } from "./abi.gen.ts";
import type { blockingSymbols, Symbols, symbolDefs } from "./abi.gen.ts";

export type SymbolName = keyof typeof symbolDefs;
export type BlockingSymbolName = (typeof blockingSymbols)[number];

/** An opaque native function pointer created by a backend (Bun JSCallback / Deno UnsafeCallback). */
export interface NativeFunction {
  readonly __nativeFunction: true;
}

/** Promise-returning variants of the blocking exports (Deno only). */
export type AsyncSymbols = {
  [K in BlockingSymbolName]: (...args: Parameters<Symbols[K]>) => Promise<number>;
};

/** What a runtime backend provides; raw pointers never leave it except as bigint addresses. */
export interface Backend {
  readonly runtime: "bun" | "deno";
  readonly path: string;
  readonly symbols: Symbols;
  /** Deno: nonblocking variants of blocking calls; Bun: undefined (Bun uses the doorbell). */
  readonly asyncSymbols: AsyncSymbols | undefined;
  /** Address of the first byte of a view's data, as an integer. Cache it for long-lived buffers. */
  addressOf(view: ArrayBufferView): bigint;
  /** A zero-copy ArrayBuffer over native memory. The caller owns the lease. */
  arrayBufferAt(address: bigint, length: number): ArrayBuffer;
  /**
   * A native function pointer `void (*)(u32)` that native threads may call; the
   * JS function runs later on the JS thread (Bun threadsafe JSCallback). Deno
   * returns null: it waits with nonblocking calls instead.
   */
  createDoorbell(fn: (handle: number) => void): { pointer: NativeFunction; close(): void } | null;
  close(): void;
}
