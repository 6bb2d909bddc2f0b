/** Deno.dlopen backend. Only ffi/mod.ts imports this file, and only under Deno. */
import type { AsyncSymbols, Backend, NativeFunction, NativeType, Symbols } from "./symbols.ts";
import { blockingSymbols, symbolDefs } from "./symbols.ts";

// Minimal structural view of the Deno FFI API, so this file type-checks without Deno's lib.
type DenoFfiType = "u32" | "i32" | "f64" | "buffer" | "function" | "void" | "pointer";
type DenoPointer = object | null;
interface DenoFfi {
  dlopen(
    path: string | URL,
    symbols: Record<string, { name?: string; parameters: DenoFfiType[]; result: DenoFfiType; nonblocking?: boolean }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown>; close(): void };
  UnsafePointer: {
    of(value: ArrayBufferView): DenoPointer;
    value(p: DenoPointer): number | bigint;
    create(value: bigint): DenoPointer;
  };
  UnsafePointerView: { getArrayBuffer(p: DenoPointer, length: number, offset?: number): ArrayBuffer };
  UnsafeCallback: new (
    def: { parameters: DenoFfiType[]; result: DenoFfiType },
    fn: (...args: unknown[]) => unknown,
  ) => { pointer: DenoPointer; close(): void };
}

function denoType(t: NativeType): DenoFfiType {
  switch (t) {
    case "u32":
      return "u32";
    case "i32":
      return "i32";
    case "f64":
      return "f64";
    case "buffer":
      return "buffer";
    case "function":
      return "function";
    case "void":
      return "void";
  }
}

export function open(path: string | URL): Backend {
  const D = (globalThis as unknown as { Deno: DenoFfi }).Deno;
  const table: Record<string, { name?: string; parameters: DenoFfiType[]; result: DenoFfiType; nonblocking?: boolean }> =
    {};
  for (const [name, def] of Object.entries(symbolDefs)) {
    table[name] = { parameters: def.args.map(denoType), result: denoType(def.returns) };
  }
  for (const name of blockingSymbols) {
    const def = symbolDefs[name];
    table[`${name}_async`] = {
      name,
      parameters: def.args.map(denoType),
      result: denoType(def.returns),
      nonblocking: true,
    };
  }
  const lib = D.dlopen(path, table);
  const symbols = lib.symbols as unknown as Symbols;
  const asyncSymbols = {} as Record<string, unknown>;
  for (const name of blockingSymbols) asyncSymbols[name] = lib.symbols[`${name}_async`];
  return {
    runtime: "deno",
    path: String(path instanceof URL ? path.pathname : path),
    symbols,
    asyncSymbols: asyncSymbols as AsyncSymbols,
    addressOf(view: ArrayBufferView): bigint {
      return BigInt(D.UnsafePointer.value(D.UnsafePointer.of(view)));
    },
    arrayBufferAt(address: bigint, length: number): ArrayBuffer {
      if (length === 0) return new ArrayBuffer(0);
      return D.UnsafePointerView.getArrayBuffer(D.UnsafePointer.create(address), length);
    },
    createDoorbell(_fn: (handle: number) => void): { pointer: NativeFunction; close(): void } | null {
      // Deno's threadsafe callbacks block the native caller; Deno waits with nonblocking calls instead.
      return null;
    },
    close() {
      lib.close();
    },
  };
}
